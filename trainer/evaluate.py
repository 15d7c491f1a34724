"""lsm-eval: generative and discriminative evaluation of a trained model against baselines.

usage: lsm-eval --workdir=RUN --data=PIPELINE_OUTPUT [--tasks=generative,discriminative]
           [--export-embeddings] [--max_windows=N] [--generative_windows=N] [--seed=S]
           [--mice_max_iter=5] [--seeds=0,1,2] [--shots=5,10,20] [--finetune_steps=200]

Generative tasks run on the pipeline's held-out "pretrain" test split (valid when
test is empty; the report says so). Every task's hidden masks are drawn once from
--seed with trainer/masking.py and every method (the model and the classical
baselines) is scored on exactly those masks through metrics.score_tasks.
Discriminative tasks run on the "labelled" dataset (windows centred on labelled
sessions): exercise detection (binary) and activity recognition (8 classes) with a
linear probe on mean-pooled embeddings, full fine-tuning, a supervised baseline
(the same encoder from scratch) and few-shot probe / fine-tune / supervised runs
over seeds, every method of a few-shot size training on the same k-per-class draws.
Writes RUN/eval/results.json, RUN/eval/report.md and PNG figures beside them;
--export-embeddings also writes RUN/eval/embeddings.npz. TensorFlow is never
imported: the pipeline's training statistics invert the normalisation.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
import zlib
from typing import Any, Callable, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from schemas import manifest as manifest_lib
from trainer import cli
from schemas.constants import ACTIVITY_CLASSES

GENERATIVE_TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "random_imputation_80": ("random", {"ratio": 0.8}),
    **{f"interpolation_{m}m": ("interpolation", {"gap_minutes": m}) for m in (10, 30, 60, 120)},
    **{f"extrapolation_{m}m": ("extrapolation", {"gap_minutes": m}) for m in (10, 30, 60)},
    **{f"sensor_imputation_{k}": ("sensor_imputation", {"num_features": k}) for k in (2, 6, 12)},
}
# name: (record field, number of classes, class names)
DISCRIMINATIVE_TASKS: dict[str, tuple[str, int, Sequence[str]]] = {
    "exercise_detection": ("exercise", 2, ("non_exercise", "exercise")),
    "activity_recognition": ("label", len(ACTIVITY_CLASSES), ACTIVITY_CLASSES),
}
GROUPS = {"generative": tuple(GENERATIVE_TASKS), "discriminative": tuple(DISCRIMINATIVE_TASKS)}
EMBEDDINGS_NAME = "embeddings.npz"
# Under a million windows seen, the report says plainly what its numbers can and cannot
# show, and where the measurement that can is.
SMALL_BUDGET = (
    "A small budget: these numbers show the whole job working end to end, not how good "
    "the model is; a model this briefly trained can lose to the simple baselines. "
    "benchmarks/generative_quality.py (about an hour on 2 CPU cores) is the measurement "
    "of the model against linear interpolation and MICE; LSM's own numbers need LSM's "
    "model sizes and data (deploy/README.md).")

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Flags are defined when the command runs, not on import, so lsm-train, lsm-eval
  and lsm-scaling can be imported into one process (tests) without clashing."""
  flags.DEFINE_string("workdir", None, "lsm-train workdir (config.json + checkpoints); "
                      "results go to WORKDIR/eval.")
  flags.DEFINE_string("data", None, "Pipeline output directory (manifest.json).")
  flags.DEFINE_list("tasks", ["generative", "discriminative"],
                    "Task names or groups (generative, discriminative).")
  flags.DEFINE_bool("export_embeddings", False, "Write WORKDIR/eval/embeddings.npz.")
  flags.DEFINE_integer("max_windows", 0, "Evaluate at most N windows per split (a seeded "
                       "sample; 0 = all).")
  flags.DEFINE_integer("generative_windows", 0, "At most N windows for the generative tasks "
                       "(a seeded sample; 0 = --max_windows): MICE costs per window.")
  flags.DEFINE_integer("seed", 0, "Seed of the masks, window samples and few-shot draws.")
  flags.DEFINE_string("step", "best", "Checkpoint: best, latest or a step number.")
  flags.DEFINE_integer("mice_max_iter", 5, "IterativeImputer iterations (cheaper: 2).")
  flags.DEFINE_integer("mice_jobs", 2, "Processes for MICE over windows.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of probe / fine-tune / few-shot runs.")
  flags.DEFINE_list("shots", ["5", "10", "20"], "Few-shot sizes (examples per class).")
  flags.DEFINE_integer("finetune_steps", 200, "Steps of fine-tuning and supervised training.")
  flags.DEFINE_integer("few_shot_finetune_steps", 100, "Steps of each few-shot fine-tune.")
  flags.DEFINE_integer("finetune_batch", 32, "Batch of fine-tuning and supervised training.")
  flags.DEFINE_float("finetune_lr", 3e-4, "Peak learning rate of fine-tuning / supervised.")
  flags.DEFINE_integer("plot_windows", 3, "Windows drawn per reconstruction figure.")


# ---------------------------------------------------------------------------- data

def read_windows(data_dir: str, dataset: str, split: str, max_windows: int = 0,
                 seed: int = 0) -> dict[str, np.ndarray] | None:
  """All windows of one split as arrays (None when the split is absent or empty).

  With max_windows, a seeded sample of that many, kept in file order. A record that
  cannot be read or decoded raises RecordError naming its shard and index.
  """
  from trainer import input_pipeline
  try:
    shards = [(p, n) for p, n in manifest_lib.shards(data_dir, split, dataset) if n]
  except manifest_lib.ManifestError:
    return None
  total = sum(n for _, n in shards)
  if total == 0:
    return None
  keep = np.arange(total)
  if max_windows and total > max_windows:
    keep = np.sort(np.random.default_rng([seed, 7]).choice(total, max_windows, replace=False))
  source = input_pipeline.ShardSource(shards, window=None)
  fields = {k: [] for k in ("values", "observed", "subject", "start", "label", "exercise")}
  for i in keep:
    w = source[int(i)]
    fields["values"].append(np.array(w["values"], np.float32))
    fields["observed"].append(np.array(w["mask"], bool))
    for key in ("subject", "start", "label", "exercise"):
      fields[key].append(w[key])
  return {"values": np.stack(fields["values"]), "observed": np.stack(fields["observed"]),
          "subject": np.array(fields["subject"], dtype="U64"),
          "start": np.array(fields["start"], np.int64),
          "label": np.array(fields["label"], np.int64),
          "exercise": np.array(fields["exercise"], np.int64)}


def first_split(data_dir: str, dataset: str, splits: Sequence[str], max_windows: int,
                seed: int) -> tuple[str | None, dict[str, np.ndarray] | None]:
  """The first of `splits` that holds windows, and its windows."""
  for split in splits:
    windows = read_windows(data_dir, dataset, split, max_windows, seed)
    if windows is not None:
      return split, windows
  return None, None


def task_masks(tasks: Sequence[str], n: int, seed: int,
               shape: Sequence[int]) -> dict[str, np.ndarray]:
  """Hidden masks [n, T, F] per task from a generator seeded by (seed, task name):
  the same masks for every method, every run and any subset of tasks."""
  from trainer import masking
  out = {}
  for task in tasks:
    strategy, kwargs = GENERATIVE_TASKS[task]
    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    out[task] = (np.stack([masking.make(strategy, rng, shape=tuple(shape), **kwargs)
                           for _ in range(n)]) if n else np.zeros((0, *shape), bool))
  return out


# ---------------------------------------------------------------------- generative

def generative_methods(model, mice_max_iter: int, mice_jobs: int, seed: int
                       ) -> dict[str, Callable]:
  from trainer import baselines
  methods = {"model": model.reconstruct, **baselines.BASELINES}
  methods["mice"] = functools.partial(baselines.mice, seed=seed, max_iter=mice_max_iter,
                                      n_jobs=mice_jobs)
  return methods


def run_generative(model, windows, tasks, train_statistics, *, seed: int,
                   mice_max_iter: int, mice_jobs: int):
  """(results' generative section, masks by task)."""
  from trainer import metrics
  masks = task_masks(tasks, len(windows["values"]), seed, windows["values"].shape[1:])
  methods = generative_methods(model, mice_max_iter, mice_jobs, seed)
  results = {}
  for task, hidden in masks.items():
    started = time.perf_counter()
    results[task] = metrics.score_methods(methods, windows["values"], windows["observed"],
                                          hidden, train_statistics)
    logging.info("%s (%.0f s): %s", task, time.perf_counter() - started,
                 ", ".join(f"{m} {e['mae']:.4f}" for m, e in results[task].items()))
  return results, masks


# ------------------------------------------------------------------ discriminative

def task_examples(windows, field: str, num_classes: int) -> np.ndarray:
  """Indices of windows that carry a label of this task (unknown -1 left out)."""
  labels = windows[field]
  return np.flatnonzero((labels >= 0) & (labels < num_classes))


def run_discriminative(model, train_windows, test_windows, tasks, *, seeds: Sequence[int],
                       shots: Sequence[int], finetune_config, few_shot_config
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
  """(results' discriminative section, notes on what was skipped and why)."""
  from trainer import finetune, metrics, models, probe
  model_config = models.ModelConfig.from_config(model.config.model)
  train_embed = model.embed(train_windows["values"], train_windows["observed"])
  test_embed = model.embed(test_windows["values"], test_windows["observed"])
  results: dict[str, Any] = {}
  notes: dict[str, Any] = {}
  for task in tasks:
    field, num_classes, names = DISCRIMINATIVE_TASKS[task]
    tr = task_examples(train_windows, field, num_classes)
    te = task_examples(test_windows, field, num_classes)
    y_tr, y_te = train_windows[field][tr], test_windows[field][te]
    notes[task] = {"train_windows": int(tr.size), "test_windows": int(te.size),
                   "train_class_counts": np.bincount(y_tr, minlength=num_classes).tolist()}
    if np.unique(y_tr).size < 2 or te.size == 0:
      notes[task]["skipped"] = "fewer than 2 classes in train or no test windows"
      continue

    def classifier_runs(pretrained, pick_fn, config):
      started = time.perf_counter()
      runs = []
      for seed in seeds:
        pick = pick_fn(seed)
        windows = len(y_tr[pick])
        predict = finetune.train_classifier(
            train_windows["values"][tr][pick], train_windows["observed"][tr][pick],
            y_tr[pick], num_classes, model_config, pretrained=pretrained, config=config,
            seed=seed)
        runs.append(metrics.classification_metrics(
            y_te, predict(test_windows["values"][te], test_windows["observed"][te]),
            num_classes))
      logging.info("%s %s, %d windows x %d steps x %d seeds: %.0f s", task,
                   "fine-tune" if pretrained is not None else "supervised",
                   windows, config.steps, len(seeds),
                   time.perf_counter() - started)
      return metrics.mean_and_spread(runs)

    everything = lambda seed: slice(None)
    entry = {"linear_probe": probe.probe_over_seeds(train_embed[tr], y_tr, test_embed[te],
                                                    y_te, num_classes, seeds=seeds),
             "fine_tune": classifier_runs(model.params, everything, finetune_config),
             "supervised": classifier_runs(None, everything, finetune_config)}
    results[task] = entry
    for k in shots:
      name = f"{task}_{k}_shot"
      # pick(seed): that seed's k-per-class draw, the same one the probe trains on
      pick = functools.partial(probe.few_shot_indices, y_tr, k, num_classes=num_classes,
                               class_names=names)
      try:
        few = {"linear_probe": probe.probe_over_seeds(
                   train_embed[tr], y_tr, test_embed[te], y_te, num_classes, seeds=seeds,
                   shots=k, class_names=names),
               "fine_tune": classifier_runs(model.params, pick, few_shot_config),
               "supervised": classifier_runs(None, pick, few_shot_config)}
      except ValueError as e:  # a class with fewer than k examples: say so, go on
        notes[task][f"{k}_shot_skipped"] = str(e)
        continue
      results[name] = few
  return results, notes


# ------------------------------------------------------------------------- figures

def bar_chart(results: Mapping[str, Mapping[str, Mapping]], metric: str, *, ylabel: str,
              title: str, spread: bool = False):
  """Grouped bars of results[task][method][metric], one group per task; a method a
  task lacks (a skipped few-shot run) leaves a gap rather than shifting the others.
  With `spread`, the std over seeds (METRIC_std) as error bars."""
  tasks = list(results)
  methods = list(dict.fromkeys(m for entries in results.values() for m in entries))
  from trainer import plots
  figure = plots.new_figure((max(6, 0.8 * len(tasks) + 2), 3.8))
  axes = figure.add_subplot()
  width = 0.8 / len(methods)
  for i, m in enumerate(methods):
    present = [t for t in tasks if m in results[t]]
    axes.bar([tasks.index(t) + i * width for t in present],
             [results[t][m][metric] for t in present], width, label=m,
             yerr=[results[t][m][metric + "_std"] for t in present] if spread else None)
  axes.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=45,
                  ha="right", fontsize=7)
  axes.set_ylabel(ylabel)
  axes.legend(fontsize=7)
  axes.set_title(title)
  return figure


def figure_paths(eval_dir: str, workdir: str, model, windows, masks, generative,
                 discriminative, plot_windows: int) -> dict[str, str]:
  """PNG figures: training curve, reconstructions, generative table, probe results."""
  from trainer import plots, summaries

  eval_dir = os.path.abspath(eval_dir)  # write_report reads relative paths from RUN/eval

  def save(figure, name):
    figure.tight_layout()
    path = os.path.join(eval_dir, name)
    figure.savefig(path, format="png")
    return path

  out = {}
  train_log = summaries.read_jsonl(os.path.join(workdir, "metrics_train.jsonl"))
  valid_log = summaries.read_jsonl(os.path.join(workdir, "metrics_valid.jsonl"))
  if train_log:
    figure = plots.new_figure()
    axes = figure.add_subplot()
    steps = sorted(train_log)
    axes.plot(steps, [train_log[s]["loss"] for s in steps], label="train loss")
    if valid_log:
      vs = sorted(valid_log)
      axes.plot(vs, [valid_log[s]["loss"] for s in vs], "o-", label="validation loss")
    axes.set_xlabel("step")
    axes.set_ylabel("masked MSE (normalised)")
    axes.set_yscale("log")
    axes.legend()
    axes.set_title("training curve")
    out["training curve"] = save(figure, "training_curve.png")
  n = min(plot_windows, len(windows["values"]))
  for task in ("interpolation_30m", "extrapolation_60m", "random_imputation_80"):
    if task in masks and n:
      v, o, h = windows["values"][:n], windows["observed"][:n], masks[task][:n]
      fig = plots.reconstruction_figure(v, o, h, model.reconstruct(v, o, h),
                                        title=f"{task}: model reconstruction (colour) "
                                              "vs truth (black)")
      path = os.path.join(eval_dir, f"reconstruction_{task}.png")
      plots.save(fig, path)
      out[f"reconstructions, {task}"] = path
  if generative:
    out["generative tasks"] = save(bar_chart(
        generative, "mae", ylabel="MAE (normalised)",
        title="generative tasks: model vs baselines"), "generative.png")
  if discriminative:
    out["discriminative tasks"] = save(bar_chart(
        discriminative, "macro_f1", ylabel="macro-F1 (mean ± std over seeds)",
        title="discriminative tasks", spread=True), "discriminative.png")
  return out


# ---------------------------------------------------------------------- embeddings

def export_embeddings(path: str, model, parts: Sequence[tuple[str, str, Mapping]]) -> str:
  """One row per window: embedding, subject hash, window start (UTC minutes), dataset,
  split, label, exercise; plain arrays in an .npz (np.load(..., allow_pickle=False))."""
  columns = {k: [] for k in ("embedding", "subject", "start", "dataset", "split", "label",
                             "exercise")}
  for dataset, split, windows in parts:
    n = len(windows["values"])
    columns["embedding"].append(model.embed(windows["values"], windows["observed"]))
    for key in ("subject", "start", "label", "exercise"):
      columns[key].append(windows[key])
    columns["dataset"].append(np.full(n, dataset, dtype="U16"))
    columns["split"].append(np.full(n, split, dtype="U16"))
  arrays = {k: np.concatenate(v) for k, v in columns.items()}
  np.savez_compressed(path, **arrays)
  return path


# ------------------------------------------------------------------- data summary

def data_summary(data_dir: str, manifest: Mapping[str, Any], notes: Mapping[str, Any]
                 ) -> dict[str, Any]:
  """What the numbers rest on, for the report: the pipeline's subjects, windows and
  dead-lettered input (from its manifest, where recorded) and the windows and class
  counts each task actually used (from the evaluation's notes)."""
  counts = manifest.get("counts", {})
  summary: dict[str, Any] = {"pipeline output": os.path.abspath(data_dir)}
  if counts.get("subjects"):
    summary["subjects per split"] = counts["subjects"]
  summary["windows per split"] = {
      dataset: {split: sum(e["records"] for e in entries) for split, entries in splits.items()}
      for dataset, splits in manifest["datasets"].items()}
  dropped = {dataset: w["dropped"] for dataset, w in counts.get("windows", {}).items()
             if any(w.get("dropped", {}).values())}
  if dropped:
    summary["windows dropped"] = dropped
  for unit in ("rows", "readings"):
    if counts.get(unit, {}).get("dead_lettered"):
      summary[f"raw {unit}"] = {"read": counts[unit]["read"], "dead-lettered (with a reason)":
                                sum(counts[unit]["dead_lettered"].values())}
  ratios = {dataset: r["missing_ratio"]["mean"]
            for dataset, r in manifest.get("window_ratios", {}).items() if "missing_ratio" in r}
  if ratios:
    summary["mean missing ratio per window"] = ratios
  if "generative_windows" in notes:
    summary["generative tasks"] = (f"{notes['generative_windows']} windows of the pretrain "
                                   f"{notes['generative_split']} split")
  for task, note in notes.get("discriminative_tasks", {}).items():
    names = DISCRIMINATIVE_TASKS[task][2]
    summary[task] = {"train windows": note["train_windows"],
                     "test windows": note["test_windows"],
                     "train class counts": dict(zip(names, note["train_class_counts"]))}
    if "skipped" in note:
      summary[task]["not run"] = note["skipped"]
    few_shot = [f"{k.split('_')[0]}-shot ({v})" for k, v in note.items()
                if k.endswith("_shot_skipped")]
    if few_shot:
      summary[task]["few-shot not run"] = "; ".join(few_shot)
  return summary


# ---------------------------------------------------------------------------- main

@contextlib.contextmanager
def timed(seconds: dict[str, float], phase: str):
  """Adds the block's wall time to seconds[phase]: the report says where time went."""
  start = time.perf_counter()
  try:
    yield
  finally:
    seconds[phase] = round(seconds.get(phase, 0) + time.perf_counter() - start, 1)


def resolve_tasks(names: Sequence[str]) -> tuple[list[str], list[str]]:
  """(generative tasks, discriminative tasks) from task names and group names."""
  chosen = []
  for name in names:
    name = name.strip()
    if name in GROUPS:
      chosen += GROUPS[name]
    elif name in GENERATIVE_TASKS or name in DISCRIMINATIVE_TASKS:
      chosen.append(name)
    else:
      raise ValueError(f"unknown task {name!r}; expected a group {sorted(GROUPS)} or one of "
                       f"{list(GENERATIVE_TASKS) + list(DISCRIMINATIVE_TASKS)}")
  return ([t for t in GENERATIVE_TASKS if t in chosen],
          [t for t in DISCRIMINATIVE_TASKS if t in chosen])


def evaluate(workdir: str, data_dir: str, tasks: Sequence[str] = ("generative",
                                                                  "discriminative"), *,
             export: bool = False, max_windows: int = 0, generative_windows: int = 0,
             seed: int = 0,
             step: str = "best", mice_max_iter: int = 5, mice_jobs: int = 2,
             seeds: Sequence[int] = (0, 1, 2), shots: Sequence[int] = (5, 10, 20),
             finetune_steps: int = 200, few_shot_finetune_steps: int = 100,
             finetune_batch: int = 32, finetune_lr: float = 3e-4,
             plot_windows: int = 3) -> dict[str, Any]:
  """Runs the chosen tasks and writes WORKDIR/eval; returns the results dict."""
  from trainer import finetune, inference, models, report
  generative_tasks, discriminative_tasks = resolve_tasks(tasks)
  manifest = manifest_lib.load(data_dir)
  manifest_lib.check_listed(data_dir, manifest)
  started = time.perf_counter()
  seconds: dict[str, float] = {}
  with timed(seconds, "load"):
    model = inference.load(workdir, step if step in ("best", "latest") else int(step))
  eval_dir = os.path.join(workdir, "eval")
  os.makedirs(eval_dir, exist_ok=True)
  params = models.count_params(model.model_config)
  notes: dict[str, Any] = {}
  exported = []

  split, test = first_split(data_dir, "pretrain", ("test", "valid"),
                            generative_windows or max_windows, seed)
  generative, masks = {}, {}
  if split is None:
    notes["generative"] = "skipped: the pretrain dataset has no test or valid windows"
  else:
    notes["generative_split"] = split + ("" if split == "test" else
                                         " (the test split is empty: fell back to valid)")
    notes["generative_windows"] = int(len(test["values"]))
    exported.append(("pretrain", split, test))
    if generative_tasks:
      with timed(seconds, "generative"):
        generative, masks = run_generative(
            model, test, generative_tasks, manifest.get("train_statistics"), seed=seed,
            mice_max_iter=mice_max_iter, mice_jobs=mice_jobs)

  discriminative = {}
  labelled_train = read_windows(data_dir, "labelled", "train", max_windows, seed)
  labelled_split, labelled_test = first_split(data_dir, "labelled", ("test", "valid"),
                                              max_windows, seed)
  if labelled_train is not None:
    exported.append(("labelled", "train", labelled_train))
  if labelled_test is not None:
    exported.append(("labelled", labelled_split, labelled_test))
  if discriminative_tasks:
    if labelled_train is None or labelled_test is None:
      notes["discriminative"] = ("skipped: the pipeline output has no 'labelled' train and "
                                 "test/valid windows (run lsm-pipeline with --labels)")
    else:
      notes["discriminative_split"] = labelled_split
      fconfig = finetune.FinetuneConfig(steps=finetune_steps, batch_size=finetune_batch,
                                        learning_rate=finetune_lr)
      few_config = finetune.FinetuneConfig(steps=few_shot_finetune_steps,
                                           batch_size=finetune_batch,
                                           learning_rate=finetune_lr)
      with timed(seconds, "discriminative"):
        discriminative, notes["discriminative_tasks"] = run_discriminative(
            model, labelled_train, labelled_test, discriminative_tasks, seeds=seeds,
            shots=shots, finetune_config=fconfig, few_shot_config=few_config)

  embeddings_path = None
  if export:
    if not exported:
      raise ValueError(f"{data_dir}: no windows to embed")
    with timed(seconds, "embeddings"):
      embeddings_path = export_embeddings(os.path.join(eval_dir, EMBEDDINGS_NAME), model,
                                          exported)
  with timed(seconds, "figures"):
    figures = figure_paths(eval_dir, workdir, model, test or {"values": []}, masks,
                           generative, discriminative, plot_windows)
  import jax
  budget_note = (
      f"model {model.config.size} ({params:,} parameters) pre-trained "
      f"{model.step} steps of batch {model.config.batch_size} "
      f"(~{model.step * model.config.batch_size:,} windows seen, masking "
      f"{model.config.mask.strategy}); generative tasks on "
      f"{notes.get('generative_windows', 0)} windows ({notes.get('generative_split')}), "
      f"MICE max_iter {mice_max_iter}; "
      + (f"fine-tune / supervised {finetune_steps} steps of batch {finetune_batch} at "
         f"peak learning rate {finetune_lr:g}, few-shot {few_shot_finetune_steps} steps, "
         f"{len(seeds)} seed{'' if len(seeds) == 1 else 's'}; "
         if discriminative else "discriminative tasks not run; ")
      + f"on {jax.device_count()} {jax.devices()[0].platform} device(s), "
      f"{os.cpu_count()} CPU cores. "
      + (SMALL_BUDGET if model.step * model.config.batch_size < 1_000_000 else ""))
  meta = {"workdir": os.path.abspath(workdir), "data": os.path.abspath(data_dir),
          "checkpoint_step": model.step, "model_size": model.config.size,
          "parameters": params, "seed": seed, "max_windows": max_windows,
          "generative_windows": generative_windows,
          "seeds": list(seeds), "shots": list(shots), "notes": notes,
          "embeddings": embeddings_path, "seconds": round(time.perf_counter() - started, 1),
          "seconds_by_phase": seconds}
  report.write_report(workdir, generative, discriminative, budget_note=budget_note,
                      meta=meta, figures=figures,
                      data=data_summary(data_dir, manifest, notes))
  with open(os.path.join(eval_dir, report.RESULTS_NAME)) as f:
    return json.load(f)


def _main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  results = evaluate(
      FLAGS.workdir, FLAGS.data, FLAGS.tasks, export=FLAGS.export_embeddings,
      max_windows=FLAGS.max_windows, generative_windows=FLAGS.generative_windows,
      seed=FLAGS.seed, step=FLAGS.step,
      mice_max_iter=FLAGS.mice_max_iter, mice_jobs=FLAGS.mice_jobs,
      seeds=[int(s) for s in FLAGS.seeds], shots=[int(s) for s in FLAGS.shots],
      finetune_steps=FLAGS.finetune_steps,
      few_shot_finetune_steps=FLAGS.few_shot_finetune_steps,
      finetune_batch=FLAGS.finetune_batch, finetune_lr=FLAGS.finetune_lr,
      plot_windows=FLAGS.plot_windows)
  for task, gain in results["improvement"]["generative"].items():
    logging.info("%s: model MAE %.4f, best baseline %s %.4f (%+.1f%%)", task,
                 gain["model_value"], gain["best_baseline"], gain["best_value"],
                 100 * (gain["relative_improvement"] or 0))
  print(os.path.join(FLAGS.workdir, "eval", "report.md"))


def main() -> None:
  define_flags()
  # --export-embeddings is the documented spelling; absl flags use underscores.
  sys.argv = [a.replace("--export-embeddings", "--export_embeddings")
              .replace("--max-windows", "--max_windows") for a in sys.argv]
  flags.mark_flags_as_required(["workdir", "data"])
  cli.run(_main, __name__, "lsm-eval")


if __name__ == "__main__":
  main()
