"""lsm-scaling: train a grid of model and data sizes and fit scaling laws.

usage: lsm-scaling --config=trainer/configs/scaling.py --workdir=SWEEP
           --config.data_dir=PIPELINE_OUTPUT [--config.KEY=VALUE ...]

For each number of training subjects the train split is cut to the first N subjects
in subject-hash order (nested subsets: every larger set contains the smaller ones;
the hash order is a fixed pseudo-random order) and written once to
SWEEP/data/subjects_N (its valid and test splits point at the original shards, so
every run is validated on the same windows). Each (model size, subjects) run trains
with trainer.train.train_and_evaluate in SWEEP/runs/SIZE_sN and records its final
validation loss, parameters, training FLOPs and windows seen in run.json; a run with
a run.json is not trained again, a run without one resumes from its checkpoints.
The fits (scaling_law.fit_sweep: data, parameters, compute) and log-log plots go to
SWEEP/scaling.json, SWEEP/scaling.md and SWEEP/scaling_*.png.

Training FLOPs are XLA's cost analysis of the compiled train step (forward, backward
and optimiser update, as compiled) times the steps run; where the backend reports no
cost, 6 x parameters x (encoder tokens) per window is used and the run says so.
"""

from __future__ import annotations

import json
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


def define_flags() -> None:
  """Flags are defined when the command runs, not on import, so lsm-train, lsm-eval
  and lsm-scaling can be imported into one process (tests) without clashing."""
  flags.DEFINE_string("workdir", None, "Sweep directory (data subsets, runs, fits).")
  config_flags.DEFINE_config_file("config", None, "Sweep config, e.g. "
                                  "trainer/configs/scaling.py.", lock_config=True)


def _ints(text: str) -> list[int]:
  return sorted({int(x) for x in str(text).split(",") if x.strip()})


def train_subjects(data_dir: str) -> tuple[list[str], dict[str, list[bytes]]]:
  """Subject hashes of the train split in sorted order, and each subject's records."""
  from array_record.python.array_record_module import ArrayRecordReader
  by_subject: dict[str, list[bytes]] = {}
  for path, n in manifest_lib.shards(data_dir, "train"):
    if not n:
      continue
    reader = ArrayRecordReader(path)
    try:
      for i, data in enumerate(reader.read_all()):
        try:
          subject = record_lib.decode(data)["subject"]
        except record_lib.RecordError as e:
          raise record_lib.RecordError(f"{path} record {i}: {e}") from None
        by_subject.setdefault(subject, []).append(data)
    finally:
      reader.close()
  return sorted(by_subject), by_subject


def subset_data_dir(data_dir: str, out_dir: str, subjects: list[str],
                    records: dict[str, list[bytes]]) -> tuple[str, int]:
  """Writes a pipeline-like directory whose train split holds only `subjects`; returns
  (its path, train windows). Kept when already written (resume)."""
  from array_record.python.array_record_module import ArrayRecordWriter
  manifest_path = os.path.join(out_dir, manifest_lib.MANIFEST_NAME)
  if os.path.exists(manifest_path):
    manifest = manifest_lib.load(out_dir)
    return out_dir, sum(e["records"] for e in manifest["datasets"]["pretrain"]["train"])
  os.makedirs(out_dir, exist_ok=True)
  manifest = manifest_lib.load(data_dir)
  name = manifest_lib.shard_name("train", 0, 1)
  writer = ArrayRecordWriter(os.path.join(out_dir, name), "group_size:1")
  count = 0
  for subject in subjects:
    for data in records[subject]:
      writer.write(data)
      count += 1
  writer.close()
  pretrain = {split: [{**e, "path": os.path.abspath(os.path.join(data_dir, e["path"]))}
                      for e in entries]
              for split, entries in manifest["datasets"]["pretrain"].items()}
  pretrain["train"] = [{"path": name, "records": count}]
  manifest = {**manifest, "datasets": {"pretrain": pretrain},
              "subset": {"source": os.path.abspath(data_dir), "train_subjects": subjects}}
  manifest.pop("transform_dir", None)
  with open(manifest_path + ".tmp", "w") as f:
    json.dump(manifest, f, indent=1)
  os.replace(manifest_path + ".tmp", manifest_path)
  return out_dir, count


def run_config(sweep: ml_collections.ConfigDict, size: str,
               data_dir: str) -> ml_collections.ConfigDict:
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
      raise ValueError(f"sweep override train.{key}: trainer/configs/mae.py has no {key}")
    node[leaf] = value
  return config


def train_run(config: ml_collections.ConfigDict, workdir: str, subjects: int,
              windows: int) -> dict[str, Any]:
  """Trains one run (or resumes it) and returns its sweep record."""
  from trainer import input_pipeline, models, train
  started = time.perf_counter()
  result = train.train_and_evaluate(config, workdir)
  if "valid_loss" not in result:
    raise ValueError(f"{workdir}: no validation loss (is the valid split empty?)")
  params = models.count_params(models.ModelConfig.from_config(config.model))
  steps = int(result["step"])
  windows_seen = steps * config.batch_size
  flops_per_step = float(result["flops_per_step"])
  source = "xla_cost_analysis"
  if flops_per_step <= 0:
    flops_per_step = 6.0 * params * input_pipeline.encoder_tokens(config) * config.batch_size
    source = "analytic_6ND_encoder_tokens"
  return {"name": os.path.basename(workdir), "size": config.size, "params": params,
          "train_subjects": subjects, "train_windows": windows, "steps": steps,
          "batch_size": int(config.batch_size), "windows_seen": windows_seen,
          "flops_per_step": flops_per_step, "flops": flops_per_step * steps,
          "flops_source": source, "val_loss": float(result["valid_loss"]),
          "seconds": round(time.perf_counter() - started, 1)}


def sweep(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains every missing run of the grid, fits, and writes SWEEP/scaling.{json,md}."""
  from trainer import report, scaling_law
  if not config.data_dir:
    raise ValueError("config.data_dir is empty: pass --config.data_dir=PIPELINE_OUTPUT")
  sizes = [s.strip() for s in config.model_sizes.split(",") if s.strip()]
  counts = _ints(config.subjects)
  hashes, records = train_subjects(config.data_dir)
  if counts[-1] > len(hashes):
    raise ValueError(f"{config.data_dir}: the train split has {len(hashes)} subjects, the "
                     f"sweep asks for up to {counts[-1]} (config.subjects={config.subjects})")
  runs = []
  for n in counts:
    data_dir, windows = subset_data_dir(
        config.data_dir, os.path.join(workdir, "data", f"subjects_{n}"), hashes[:n], records)
    for size in sizes:
      run_dir = os.path.join(workdir, "runs", f"{size}_s{n}")
      done = os.path.join(run_dir, RUN_RESULT)
      if paths.exists(done):
        runs.append(json.loads(paths.read_text(done)))
        logging.info("%s: finished before, not retrained", run_dir)
        continue
      run = train_run(run_config(config, size, data_dir), run_dir, n, windows)
      paths.write_text(done, json.dumps(run, indent=1))
      logging.info("%s: %s", run_dir, run)
      runs.append(run)
  fits = scaling_law.fit_sweep(runs, out_dir=workdir, data_key="train_subjects")
  figures = {}
  for axis, fit in fits.items():
    fit["figure"] = os.path.relpath(fit["figure"], workdir)
    figures[f"{axis} scaling"] = fit["figure"]
  seconds = sum(r["seconds"] for r in runs)
  budget = (f"{len(runs)} runs: sizes {sizes} x training subjects {counts}, each "
            f"{config.train.num_train_steps} steps of batch {config.train.batch_size} "
            f"({config.mask_strategy} masking); {seconds / 60:.1f} minutes of training in all "
            f"(as recorded by each run, resumed runs count their last session only).")
  results = report.build_results({}, {}, budget_note=budget, scaling=fits, figures=figures,
                                 meta={"data": os.path.abspath(config.data_dir),
                                       "train_subjects_available": len(hashes)})
  results["runs"] = runs
  rows = [[r["name"], f"{r['params']:,}", str(r["train_subjects"]), str(r["train_windows"]),
           str(r["windows_seen"]), f"{r['flops']:.3g}", f"{r['val_loss']:.4f}",
           str(r["seconds"])] for r in runs]
  table = (["## Runs", "", "| run | params | subjects | train windows | windows seen | "
            "training FLOPs | final valid loss | seconds |", "|" + "---|" * 8]
           + ["| " + " | ".join(row) + " |" for row in rows])
  text = report.render_markdown(results).replace("# LSM evaluation report",
                                                 "# LSM scaling sweep", 1)
  text += "\n" + "\n".join(table) + "\n"
  for name, content in (("scaling.json", json.dumps(results, indent=1, allow_nan=False)),
                        ("scaling.md", text)):
    paths.write_text(paths.join(workdir, name), content + "\n")
  return results


def _main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  results = sweep(FLAGS.config, FLAGS.workdir)
  for axis, fit in results["scaling"].items():
    logging.info("%s scaling: %s", axis, fit.get("error") or
                 f"c = {fit['c']:.3f} {fit['c_ci']}, R^2 {fit['r2']}")
  print(os.path.join(FLAGS.workdir, "scaling.md"))


def main() -> None:
  define_flags()
  flags.mark_flags_as_required(["config", "workdir"])
  cli.run(_main, __name__, "lsm-scaling")


if __name__ == "__main__":
  main()
