"""lsm-scaling: train a data arm, a parameter arm and fit scaling laws.

usage: lsm-scaling --config=trainer/configs/scaling.py --workdir=SWEEP
           --config.data_dir=PIPELINE_OUTPUT [--config.KEY=VALUE ...]

The runs (trainer/configs/scaling.py says why each arm is built as it is): the data
arm trains one size on the first N subjects of the train split in subject-hash order
(nested subsets: every larger set contains the smaller ones; the hash order is a
fixed pseudo-random order), each subject's first windows in time; the parameter arm
trains every size on the same subjects for a fixed number of tokens per parameter;
a comparison run takes the data arm's largest window count from fewer subjects.
Each training subset is written once to SWEEP/data/NAME (its valid and test splits
point at the original shards, so every run is validated on the same windows). Each
run trains with trainer.train.train_and_evaluate in SWEEP/runs/NAME, stops early when
validation stops improving, and records its best validation loss, validation curve,
parameters, training FLOPs and windows in run.json; a run with a run.json is not
trained again (a changed plan for it is an error), one without resumes from its
checkpoints. The fits (scaling_law.fit_sweep: data, parameters, compute) and log-log
plots go to SWEEP/scaling.json, SWEEP/scaling.md and SWEEP/scaling_*.png.

Training FLOPs are XLA's cost analysis of the compiled train step (forward, backward
and optimiser update, as compiled) times the steps run; where the backend reports no
cost, 6 x parameters x (encoder tokens) per window is used and the run says so.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from schemas import manifest as manifest_lib
from trainer import cli
from trainer import paths
from schemas import record as record_lib

FLAGS = flags.FLAGS
RUN_RESULT = "run.json"


class SweepError(cli.CommandError, ValueError):
  """A sweep setting or state that cannot be used; lsm-scaling prints it as one line."""


def define_flags() -> None:
  """Flags are defined when the command runs, not on import, so lsm-train, lsm-eval
  and lsm-scaling can be imported into one process (tests) without clashing."""
  flags.DEFINE_string("workdir", None, "Sweep directory (data subsets, runs, fits).")
  config_flags.DEFINE_config_file("config", None, "Sweep config, e.g. "
                                  "trainer/configs/scaling.py.", lock_config=True)


def _ints(text: str) -> list[int]:
  return sorted({int(x) for x in str(text).split(",") if x.strip()})


def train_subjects(data_dir: str) -> tuple[list[str], dict[str, list[bytes]]]:
  """Subject hashes of the train split in sorted order, and each subject's records in
  time order (by window start)."""
  from array_record.python.array_record_module import ArrayRecordReader
  by_subject: dict[str, list[tuple[int, bytes]]] = {}
  for path, n in manifest_lib.shards(data_dir, "train"):
    if not n:
      continue
    reader = ArrayRecordReader(path)
    try:
      for i, data in enumerate(reader.read_all()):
        try:
          record = record_lib.decode(data)
        except record_lib.RecordError as e:
          raise record_lib.RecordError(f"{path} record {i}: {e}") from None
        by_subject.setdefault(record["subject"], []).append((int(record["start"]), data))
    finally:
      reader.close()
  return sorted(by_subject), {subject: [data for _, data in sorted(pairs, key=lambda p: p[0])]
                              for subject, pairs in by_subject.items()}


def choose_windows(records: dict[str, list[bytes]], subjects: list[str],
                   per_subject: int = 0, total: int = 0) -> list[bytes]:
  """The training windows of a run: each subject's first `per_subject` windows in time
  (0 = all), or, with `total`, `total` windows taken round-robin over the subjects (one
  window of each in turn), so a few subjects give as many windows as many would.
  Raises ValueError when the subjects hold fewer than `total` windows."""
  if not total:
    return [data for subject in subjects
            for data in records[subject][:per_subject or None]]
  chosen, depth = [], 0
  while len(chosen) < total:
    row = [records[s][depth] for s in subjects if depth < len(records[s])]
    if not row:
      raise SweepError(f"{len(subjects)} subjects hold {len(chosen)} windows; the "
                       f"comparison run needs {total}")
    chosen += row[:total - len(chosen)]
    depth += 1
  return chosen


def subset_data_dir(data_dir: str, out_dir: str, subjects: list[str],
                    windows: list[bytes]) -> tuple[str, int]:
  """Writes a pipeline-like directory whose train split holds `windows` (of
  `subjects`); returns (its path, train windows). Kept when already written (resume)."""
  from array_record.python.array_record_module import ArrayRecordWriter
  manifest_path = os.path.join(out_dir, manifest_lib.MANIFEST_NAME)
  if os.path.exists(manifest_path):
    manifest = manifest_lib.load(out_dir)
    return out_dir, sum(e["records"] for e in manifest["datasets"]["pretrain"]["train"])
  os.makedirs(out_dir, exist_ok=True)
  manifest = manifest_lib.load(data_dir)
  name = manifest_lib.shard_name("train", 0, 1)
  writer = ArrayRecordWriter(os.path.join(out_dir, name), "group_size:1")
  for data in windows:
    writer.write(data)
  writer.close()
  pretrain = {split: [{**e, "path": os.path.abspath(os.path.join(data_dir, e["path"]))}
                      for e in entries]
              for split, entries in manifest["datasets"]["pretrain"].items()}
  pretrain["train"] = [{"path": name, "records": len(windows)}]
  manifest = {**manifest, "datasets": {"pretrain": pretrain},
              "subset": {"source": os.path.abspath(data_dir), "train_subjects": subjects}}
  manifest.pop("transform_dir", None)
  with open(manifest_path + ".tmp", "w") as f:
    json.dump(manifest, f, indent=1)
  os.replace(manifest_path + ".tmp", manifest_path)
  return out_dir, len(windows)


def run_config(sweep: ml_collections.ConfigDict, size: str, data_dir: str,
               steps: int) -> ml_collections.ConfigDict:
  """trainer/configs/mae.py's config of `size` with the sweep's overrides and a run of
  `steps` steps evaluated evals_per_run times (and checkpointed at each evaluation)."""
  from trainer.configs import mae
  config = mae.get_config(size)
  config.data_dir = data_dir
  config.mask.strategy = sweep.mask_strategy
  flat = {}

  def flatten(prefix, node):
    for key, value in node.items():
      if isinstance(value, ml_collections.ConfigDict):
        flatten(prefix + key + ".", value)
      else:
        flat[prefix + key] = value
  flatten("", sweep.train)
  for key, value in flat.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    if leaf not in node:
      raise SweepError(f"sweep override train.{key}: trainer/configs/mae.py has no {key}")
    node[leaf] = value
  config.num_train_steps = steps
  config.eval_every_steps = config.checkpoint_every_steps = max(
      1, math.ceil(steps / sweep.evals_per_run))
  config.early_stopping_evals = sweep.early_stopping_evals
  return config


def token_steps(sweep: ml_collections.ConfigDict, size: str) -> int:
  """Steps that show a model of `size` tokens_per_parameter data tokens (windows x
  patches) per parameter, at least min_steps."""
  from trainer import models
  from trainer.configs import mae
  model = models.ModelConfig.from_config(mae.get_config(size).model)
  tokens_per_step = sweep.train.batch_size * model.num_tokens
  return max(sweep.min_steps, math.ceil(sweep.tokens_per_parameter * models.count_params(model)
                                        / tokens_per_step))


def plan(sweep: ml_collections.ConfigDict, available: int) -> list[dict[str, Any]]:
  """The sweep's runs: name, arms, size, subjects, windows per subject (0 = all), total
  windows (0 = per subject) and steps. Raises ValueError when the train split has too
  few subjects."""
  from trainer.configs import mae
  counts = _ints(sweep.subjects)
  sizes = [s.strip() for s in sweep.model_sizes.split(",") if s.strip()]
  unknown = [s for s in sizes + [sweep.data_size] if s not in mae.SIZES]
  if unknown:
    raise SweepError(f"config.model_sizes / config.data_size: unknown size {unknown[0]!r}; "
                     f"expected one of {list(mae.SIZES)}")
  for name, low in (("windows_per_subject", 0), ("fewer_subjects", 0), ("evals_per_run", 1),
                    ("early_stopping_evals", 0), ("min_steps", 1), ("data_steps", 1)):
    if sweep[name] < low:
      raise SweepError(f"config.{name}={sweep[name]}: must be at least {low}")
  if sweep.tokens_per_parameter <= 0:
    raise SweepError(f"config.tokens_per_parameter={sweep.tokens_per_parameter}: must be "
                     "positive")
  if counts and counts[0] < 1:
    raise SweepError(f"config.subjects={sweep.subjects}: every count must be at least 1")
  if sweep.fewer_subjects and counts and counts[-1] // sweep.fewer_subjects < 1:
    raise SweepError(f"config.fewer_subjects={sweep.fewer_subjects}: 1/{sweep.fewer_subjects} "
                     f"of {counts[-1]} subjects is less than one subject")
  wanted = max(counts[-1] if counts else 0, sweep.param_subjects if sizes else 0)
  if wanted > available:
    raise SweepError(f"{sweep.data_dir}: the train split has {available} subjects, the "
                     f"sweep asks for up to {wanted} (config.subjects={sweep.subjects}, "
                     f"config.param_subjects={sweep.param_subjects})")
  cap = sweep.windows_per_subject
  runs = [dict(name=f"{sweep.data_size}_s{n}_w{cap}", arms=["data"], size=sweep.data_size,
               subjects=n, per_subject=cap, total=0, steps=sweep.data_steps)
          for n in counts]
  runs += [dict(name=f"{size}_s{sweep.param_subjects}", arms=["params"], size=size,
                subjects=sweep.param_subjects, per_subject=0, total=0,
                steps=token_steps(sweep, size)) for size in sizes]
  if sweep.fewer_subjects and counts:
    runs.append(dict(name=f"{sweep.data_size}_s{counts[-1] // sweep.fewer_subjects}"
                          f"_as_s{counts[-1]}_w{cap}",
                     arms=["fewer_subjects"], size=sweep.data_size,
                     subjects=counts[-1] // sweep.fewer_subjects, per_subject=0,
                     total=-1, steps=sweep.data_steps))  # total: the largest data run's
  return runs


def train_run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains one run (or resumes it) and returns its result: best validation loss, the
  validation curve in FLOPs, parameters, steps."""
  from trainer import input_pipeline, train
  started = time.perf_counter()
  result = train.train_and_evaluate(config, workdir)
  if "best_valid_loss" not in result:
    raise SweepError(f"{workdir}: no validation loss (is the valid split empty?)")
  params = int(result["parameters"])
  steps = int(result["step"])
  flops_per_step = float(result["flops_per_step"])
  source = "xla_cost_analysis"
  if flops_per_step <= 0:
    flops_per_step = 6.0 * params * input_pipeline.encoder_tokens(config) * config.batch_size
    source = "analytic_6ND_encoder_tokens"
  return {"params": params, "steps": steps, "batch_size": int(config.batch_size),
          "windows_seen": steps * config.batch_size, "flops_per_step": flops_per_step,
          "flops": flops_per_step * steps, "flops_source": source,
          "val_loss": float(result["best_valid_loss"]), "best_step": int(result["best_step"]),
          "stopped_early": bool(result["stopped_early"]),
          "curve": [[flops_per_step * s, float(loss)] for s, loss in result["valid_history"]],
          "seconds": round(time.perf_counter() - started, 1)}


def fewer_subjects(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
  """LSM's "same hours, fewer subjects": the comparison run against the data run with
  as many windows (positive relative_change: fewer subjects did worse)."""
  few = next((r for r in runs if "fewer_subjects" in r["arms"]), None)
  if few is None:
    return None
  many = next(r for r in runs if "data" in r["arms"]
              and r["train_windows"] == few["train_windows"] and r["size"] == few["size"])
  return {"windows": few["train_windows"], "hours": few["train_windows"] * 5,
          "fewer": {k: few[k] for k in ("name", "train_subjects", "val_loss")},
          "more": {k: many[k] for k in ("name", "train_subjects", "val_loss")},
          "relative_change": (few["val_loss"] - many["val_loss"]) / many["val_loss"]}


def sweep(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains every missing run of the plan, fits, and writes SWEEP/scaling.{json,md}."""
  from trainer import report, scaling_law
  if not config.data_dir:
    raise SweepError("config.data_dir is empty: pass --config.data_dir=PIPELINE_OUTPUT")
  hashes, records = train_subjects(config.data_dir)
  planned_runs = plan(config, len(hashes))
  # Every subset first, so a run that cannot be filled stops the sweep before any training.
  subsets = []
  largest_data_run = 0
  for planned in planned_runs:
    subjects = hashes[:planned["subjects"]]
    if planned["total"] < 0:
      planned["total"] = largest_data_run
    try:
      windows = choose_windows(records, subjects, planned["per_subject"], planned["total"])
    except SweepError as e:
      raise SweepError(f"config.fewer_subjects={config.fewer_subjects}: {e}") from None
    if "data" in planned["arms"]:
      largest_data_run = max(largest_data_run, len(windows))
    subsets.append((subjects, *subset_data_dir(config.data_dir, os.path.join(
        workdir, "data", planned["name"]), subjects, windows)))
  settings = {"mask_strategy": config.mask_strategy, "evals_per_run": config.evals_per_run,
              "early_stopping_evals": config.early_stopping_evals,
              "train": config.train.to_dict()}
  runs = []
  for planned, (subjects, data_dir, count) in zip(planned_runs, subsets):
    planned = {**planned, "settings": settings}
    run_dir = os.path.join(workdir, "runs", planned["name"])
    done = os.path.join(run_dir, RUN_RESULT)
    if paths.exists(done):
      run = json.loads(paths.read_text(done))
      if run["plan"] != planned:
        raise SweepError(f"{done} was trained for {run['plan']}, the sweep now plans "
                         f"{planned}: use a new --workdir (or delete {run_dir})")
      logging.info("%s: finished before, not retrained", run_dir)
    else:
      run = {"name": planned["name"], "arms": planned["arms"], "size": planned["size"],
             "train_subjects": len(subjects), "train_windows": count,
             "train_hours": count * 5, "plan": planned}
      run.update(train_run(run_config(config, planned["size"], data_dir, planned["steps"]),
                           run_dir))
      paths.write_text(done, json.dumps(run, indent=1))
      logging.info("%s: %s", run_dir, {k: v for k, v in run.items() if k != "curve"})
    runs.append(run)
  fits = scaling_law.fit_sweep(runs, out_dir=workdir)
  figures = {}
  for axis, fit in fits.items():
    fit["figure"] = os.path.relpath(fit["figure"], workdir)
    figures[f"{axis} scaling"] = fit["figure"]
  seconds = sum(r["seconds"] for r in runs)
  budget = (f"{len(runs)} runs of batch {config.train.batch_size} ({config.mask_strategy} "
            f"masking), early stopping after {config.early_stopping_evals} evaluations "
            f"without a lower validation loss; {seconds / 60:.1f} minutes of training in all "
            f"(as recorded by each run, resumed runs count their last session only).")
  results = report.build_results({}, {}, budget_note=budget, scaling=fits, figures=figures,
                                 meta={"data": os.path.abspath(config.data_dir),
                                       "train_subjects_available": len(hashes)})
  results["runs"] = runs
  results["fewer_subjects"] = fewer_subjects(runs)
  text = report.render_markdown(results).replace("# LSM evaluation report",
                                                 "# LSM scaling sweep", 1)
  text += "\n" + "\n".join(runs_table(runs, results["fewer_subjects"])) + "\n"
  for name, content in (("scaling.json", json.dumps(results, indent=1, allow_nan=False)),
                        ("scaling.md", text)):
    paths.write_text(paths.join(workdir, name), content + "\n")
  return results


def runs_table(runs: list[dict[str, Any]], comparison: dict[str, Any] | None) -> list[str]:
  """Markdown lines: every run, then the same-hours comparison."""
  rows = [[r["name"], ", ".join(r["arms"]), f"{r['params']:,}", str(r["train_subjects"]),
           str(r["train_windows"]), f"{r['best_step']} / {r['steps']}", f"{r['flops']:.3g}",
           f"{r['val_loss']:.4f}", str(r["seconds"])] for r in runs]
  lines = (["## Runs", "", "| run | arm | params | subjects | train windows | best step / "
            "steps | training FLOPs | best valid loss | seconds |", "|" + "---|" * 9]
           + ["| " + " | ".join(row) + " |" for row in rows])
  if comparison:
    lines += ["", "## Same hours, fewer subjects", "",
              f"{comparison['windows']} training windows ({comparison['hours']} hours): "
              f"{comparison['fewer']['train_subjects']} subjects reach validation loss "
              f"{comparison['fewer']['val_loss']:.4f}, {comparison['more']['train_subjects']} "
              f"subjects {comparison['more']['val_loss']:.4f} "
              f"({100 * comparison['relative_change']:+.1f}% with fewer subjects)."]
  return lines


def _main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  results = sweep(FLAGS.config, FLAGS.workdir)
  for axis, fit in results["scaling"].items():
    logging.info("%s", fit.get("error") or
                 f"{axis} scaling: c = {fit['c']:.3f} {fit['c_ci']}, R^2 {fit['r2']}")
  print(os.path.join(FLAGS.workdir, "scaling.md"))


def main() -> None:
  define_flags()
  flags.mark_flags_as_required(["config", "workdir"])
  cli.run(_main, __name__, "lsm-scaling")


if __name__ == "__main__":
  main()
