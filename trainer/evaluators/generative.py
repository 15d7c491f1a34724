"""Generative tasks: reconstruct hidden minutes, the model against classical baselines.

Run on the pipeline's held-out "pretrain" test split (valid when test is empty; the
report says so). Every task's hidden masks are drawn once from --seed with
trainer/masking.py and every method (the model and the baselines of
trainer/baselines.py) is scored on exactly those masks through metrics.score_methods.
The cross-feature baseline is fitted first, on a seeded sample of the pretrain train
split (never the windows it is scored on). Sensor imputation hides whole features:
over the whole window (sensor_imputation_K, where every per-window baseline can only
give the training mean) or over a 60-minute span (sensor_imputation_K_60m, with the
window's context before and after); K = 2, 6, 12 as in LSM-2. Each task's notes say
what its numbers rest on (basis): windows, subjects and features with scored
positions.

To add a generative task, add one entry to TASKS: its name (the report's task name)
-> (trainer/masking.py strategy, that strategy's keyword arguments).

With --oracle=PATH.npz (synthetic data: python -m pipeline.synthetic.oracle writes
it) the ORACLES join them: each window's noise-free values ("oracle", from the file's
values) and, where the file has them, those without the per-minute terms shared by
features too ("oracle_smooth", from smooth), looked up by (subject hash, start).
They are ceilings, not baselines: report.build_results leaves them out of the
best-baseline comparison.
"""

from __future__ import annotations

import functools
import time
import zlib
from typing import Any, Callable, Sequence

from absl import logging
import numpy as np

from schemas.features import FEATURE_NAMES
from trainer import paths
from trainer.evaluators import Outcome

SECTION = "generative"
TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "random_imputation_80": ("random", {"ratio": 0.8}),
    **{f"interpolation_{m}m": ("interpolation", {"gap_minutes": m}) for m in (10, 30, 60, 120)},
    **{f"extrapolation_{m}m": ("extrapolation", {"gap_minutes": m}) for m in (10, 30, 60)},
    **{f"sensor_imputation_{k}": ("sensor_imputation", {"num_features": k}) for k in (2, 6, 12)},
    **{f"sensor_imputation_{k}_{m}m": ("sensor_imputation",
                                       {"num_features": k, "span_minutes": m})
       for k in (2, 6, 12) for m in (60,)},
}
# {method: array of the oracle file}; report.REFERENCES: never the best baseline.
ORACLES = {"oracle": "values", "oracle_smooth": "smooth"}
# Tasks whose reconstructions lsm-eval draws (when they ran).
FIGURE_TASKS = ("interpolation_30m", "extrapolation_60m", "random_imputation_80")


def task_masks(tasks: Sequence[str], n: int, seed: int,
               shape: Sequence[int]) -> dict[str, np.ndarray]:
  """Hidden masks bool [n, T, F] per task from a generator seeded by (seed, task name):
  the same masks for every method, every run and any subset of tasks."""
  from trainer import masking  # pylint: disable=g-import-not-at-top
  out = {}
  for task in tasks:
    strategy, kwargs = TASKS[task]
    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    out[task] = (np.stack([masking.make(strategy, rng, shape=tuple(shape), **kwargs)
                           for _ in range(n)]) if n else np.zeros((0, *shape), bool))
  return out


def generative_methods(model, mice_max_iter: int, mice_jobs: int, seed: int,
                       regressors=None) -> dict[str, Callable]:
  """{method name: fn(values, observed, hidden) -> reconstruction}: the model's
  reconstruct (none when model is None: baselines only) and every baseline, MICE with
  these settings, and the cross-feature baseline when its regressors
  (baselines.fit_cross_feature) are given."""
  from trainer import baselines  # pylint: disable=g-import-not-at-top
  methods = {} if model is None else {"model": model.reconstruct}
  methods.update(baselines.BASELINES)
  methods["mice"] = functools.partial(baselines.mice, seed=seed, max_iter=mice_max_iter,
                                      n_jobs=mice_jobs)
  if regressors is not None:
    methods["cross_feature"] = functools.partial(baselines.cross_feature,
                                                 regressors=regressors)
  return methods


def basis(windows, hidden: np.ndarray,
          feature_names: Sequence[str] = FEATURE_NAMES) -> dict[str, Any]:
  """What one task's numbers rest on: the windows and distinct subjects with at least
  one scored position (hidden and observed), the scored positions per feature and the
  features with none (a feature that is never observed in these windows cannot be
  judged, whatever a method predicts for it), and how many of those windows leave a
  method nothing visible at all (e.g. sensor imputation of a one-feature export: every
  method can only guess a constant there, so a margin says nothing)."""
  scored = hidden & windows["observed"]
  used = scored.any(axis=(1, 2))
  blind = used & ~(windows["observed"] & ~hidden).any(axis=(1, 2))
  per_feature = scored.sum(axis=(0, 1))
  return {"windows": int(used.sum()),
          "windows_without_visible_input": int(blind.sum()),
          "subjects": int(np.unique(windows["subject"][used]).size),
          "features_scored": int((per_feature > 0).sum()),
          "features": len(feature_names),
          "features_without_scores": [n for n, c in zip(feature_names, per_feature) if not c],
          "scored_positions_per_feature": {n: int(c) for n, c in zip(feature_names,
                                                                      per_feature)}}


def oracle_values(path: str, windows) -> dict[str, np.ndarray]:
  """{ORACLES method: float32 [N, T, F]}: the oracle file's arrays for each window,
  matched by (subject hash, start). Raises ValueError naming the file and the first
  window it lacks, or on a window shape that differs."""
  with np.load(paths.path(path).open("rb"), allow_pickle=False) as f:
    subject, start = f["subject"], f["start"]
    arrays = {m: f[name] for m, name in ORACLES.items() if name in f.files}
  row = {(str(s), int(t)): i for i, (s, t) in enumerate(zip(subject, start))}
  wanted = [(str(s), int(t)) for s, t in zip(windows["subject"], windows["start"])]
  lacking = [w for w in wanted if w not in row]
  if lacking:
    raise ValueError(f"{path}: no oracle values for {len(lacking)} of {len(wanted)} windows "
                     f"(first: subject {lacking[0][0]}, start {lacking[0][1]}); written for "
                     "other pipeline output?")
  shape = arrays["oracle"].shape[1:]
  if shape != windows["values"].shape[1:]:
    raise ValueError(f"{path}: windows of shape {shape}, the data's are "
                     f"{windows['values'].shape[1:]}")
  rows = [row[w] for w in wanted]
  return {m: a[rows].astype(np.float32) for m, a in arrays.items()}


def run_generative(model, windows, tasks, train_statistics, *, seed: int,
                   mice_max_iter: int, mice_jobs: int, regressors=None, oracle: str = ""):
  """(results' generative section, masks by task, basis by task); with `oracle` (a path,
  see oracle_values) an entry per task for each of its ORACLES, scored like every method."""
  from trainer import metrics  # pylint: disable=g-import-not-at-top
  masks = task_masks(tasks, len(windows["values"]), seed, windows["values"].shape[1:])
  methods = generative_methods(model, mice_max_iter, mice_jobs, seed, regressors)
  for name, known in (oracle_values(oracle, windows) if oracle else {}).items():
    methods[name] = lambda values, observed, hidden, known=known: known
  results = {}
  for task, hidden in masks.items():
    started = time.perf_counter()
    results[task] = metrics.score_methods(methods, windows["values"], windows["observed"],
                                          hidden, train_statistics)
    logging.info("%s (%.0f s): %s", task, time.perf_counter() - started,
                 ", ".join(f"{m} {e['mae']:.4f}" for m, e in results[task].items()))
  return results, masks, {task: basis(windows, hidden) for task, hidden in masks.items()}


def cross_feature_regressors(context) -> Any:
  """The cross-feature baseline's regressors, fitted on the context's pretrain train
  sample (None without one); the notes say on what and how long it took."""
  from trainer import baselines  # pylint: disable=g-import-not-at-top
  train = context.pretrain_train
  if train is None:
    context.notes["cross_feature"] = ("not run: no pretrain train windows read "
                                      "(--cross_feature_windows=0 or an empty split)")
    return None
  started = time.perf_counter()
  regressors = baselines.fit_cross_feature(train["values"], train["observed"],
                                           seed=context.options.seed)
  context.notes["cross_feature"] = (
      f"fitted on {len(train['values'])} pretrain train windows of "
      f"{np.unique(train['subject']).size} subjects in "
      f"{time.perf_counter() - started:.0f} s")
  return regressors


def run(context, tasks: Sequence[str]):
  """The evaluator: every task on the context's pretrain test windows (none: skipped,
  lsm-eval's notes say why); the notes get what each task's numbers rest on."""
  if context.pretrain_test is None:
    return Outcome()
  options = context.options
  results, masks, context.notes["generative_basis"] = run_generative(
      context.model, context.pretrain_test, tasks, context.manifest.get("train_statistics"),
      seed=options.seed, mice_max_iter=options.mice_max_iter, mice_jobs=options.mice_jobs,
      regressors=cross_feature_regressors(context), oracle=options.oracle)
  return Outcome(results, {"masks": masks})


def figures(context, outcome) -> dict[str, str]:
  """{caption: PNG path}: the model's reconstructions of a few windows per FIGURE_TASKS."""
  from trainer import plots  # pylint: disable=g-import-not-at-top
  masks = outcome.extra.get("masks", {})
  windows = context.pretrain_test
  n = min(context.options.plot_windows, len(windows["values"])) if windows else 0
  out = {}
  for task in FIGURE_TASKS:
    if task in masks and n:
      v, o, h = windows["values"][:n], windows["observed"][:n], masks[task][:n]
      fig = plots.reconstruction_figure(v, o, h, context.model.reconstruct(v, o, h),
                                        title=f"{task}: model reconstruction (colour) "
                                              "vs truth (black), drawn only where the "
                                              "hidden minute was observed")
      path = paths.join(context.eval_dir, f"reconstruction_{task}.png")
      plots.save(fig, path)
      out[f"reconstructions, {task}"] = path
  return out
