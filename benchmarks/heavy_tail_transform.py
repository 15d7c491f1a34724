"""Heavy-tailed features: what the +-5 z-score clip costs steps, and what log1p first does.

  PYTHONPATH=. python benchmarks/heavy_tail_transform.py [--data ../shared/data/real]
      [--out runs/bench_heavy_tail]

The pipeline z-scores every feature with its train mean and std and clips to +-5.
Steps per minute are mostly 0 with bursts of 100-200 while walking or running, so
mean + 5 std is low (about 112 steps/min on the real Fitbit cohort): every brisk walk
or run is stored, trained on and imputed as that cap. This measures, without a
trained model, on real Fitbit minute steps and on the synthetic generator:
  - how many observed minutes the clip caps, and at what value, for the current
    z-score and for log1p before the z-score (each space's statistics from the train
    subjects only);
  - the MAE in steps/min of the per-window baselines (linear interpolation, nearest,
    mean fill) run in each space on the same masks (trainer/evaluators/generative.py
    tasks) and mapped back to steps/min, against the true minute values (clipped
    only to the schema's clip range, 0..255, as the pipeline's alignment does):
    overall and on the minutes above the z-score's cap;
  - the least error anything trained on capped values makes on the minutes above
    the cap (their mean excess over it) and its share of the total;
  - for every synthetic feature, the share of observed minutes beyond +-5 z (which
    other features are heavy-tailed enough to matter).
The z-score without the +-5 clip is affine, so its baseline errors are those of the
raw minutes: the reference that shows what the clip alone costs.

Real minutes come from pipeline.prepare (lsm-impute's pipeline step: the pipeline's
adapters, off-wrist dead-lettering and alignment, physical values kept) on the
real_quality steps cohort, normalised with that cohort's lsm-pipeline output (run
here first when absent); windows are 300 minutes, stride 300, kept when at most half
their minutes miss steps. Writes benchmarks/results/heavy_tail_transform.json.
About 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from typing import Callable, Mapping

import numpy as np

import real_quality  # benchmarks/real_quality.py, next to this script
import results_file  # benchmarks/results_file.py, next to this script

REPO = real_quality.REPO
WINDOW = 300
MAX_MISSING = 0.5
CLIP = 5.0  # schemas.constants.NORMALISED_CLIP, checked in main()
METHODS = ("linear_interpolation", "nearest", "mean_fill")


class Space:
  """A normalisation of one feature: optional pre-transform, z-score with the train
  split's statistics of the (pre-transformed) values, clip to the plausible range's
  z-scores and to +-clip; `invert` maps normalised values back to the unit."""

  def __init__(self, train: np.ndarray, low: float, high: float, clip: float | None,
               forward: Callable = np.asarray, inverse: Callable = np.asarray):
    self.forward, self.inverse = forward, inverse
    y = forward(np.clip(train, low, high))
    self.mean, self.std = float(y.mean()), float(y.std())
    bound = np.inf if clip is None else clip
    self.low = max((float(forward(low)) - self.mean) / self.std, -bound)
    self.high = min((float(forward(high)) - self.mean) / self.std, bound)

  def normalise(self, x: np.ndarray) -> np.ndarray:
    return np.clip((self.forward(x) - self.mean) / self.std, self.low, self.high)

  def invert(self, z: np.ndarray) -> np.ndarray:
    return self.inverse(np.asarray(z, np.float64) * self.std + self.mean)

  @property
  def cap(self) -> float:
    """The largest value the space can hold, in the feature's unit."""
    return float(self.invert(self.high))


def spaces(train: np.ndarray, low: float, high: float) -> dict[str, Space]:
  return {"zscore_clip5 (current)": Space(train, low, high, CLIP),
          "log1p_zscore_clip5": Space(train, low, high, CLIP, np.log1p, np.expm1),
          "zscore_unclipped (raw minutes)": Space(train, low, high, None)}


def cut_windows(series: np.ndarray) -> np.ndarray:
  """float [n, WINDOW] windows every WINDOW minutes of one minute series (NaN
  missing), those with at most MAX_MISSING of their minutes missing."""
  n = len(series) // WINDOW
  windows = series[:n * WINDOW].reshape(n, WINDOW)
  return windows[np.isnan(windows).mean(axis=1) <= MAX_MISSING]


def evaluate(windows: np.ndarray, space: Space, seed: int) -> dict[str, tuple]:
  """Per task: (the true values at the scored minutes, {baseline: absolute error in
  the unit at those minutes}); windows float [n, T] in the unit, NaN missing."""
  from trainer import baselines
  from trainer.evaluators import generative
  truth = np.asarray(windows, np.float64)
  observed = ~np.isnan(truth)
  z = np.where(observed, space.normalise(np.nan_to_num(truth)), 0.0)[..., None]
  masks = generative.task_masks(real_quality.TASKS, len(z), seed, z.shape[1:])
  out = {}
  for task, hidden in masks.items():
    scored = hidden[..., 0] & observed
    inputs = np.where(observed[..., None] & ~hidden, z, 0).astype(np.float32)
    errors = {}
    for name in METHODS:
      estimate = space.invert(baselines.BASELINES[name](inputs, observed[..., None],
                                                         hidden)[..., 0])
      errors[name] = np.abs(estimate - truth)[scored]
    out[task] = (truth[scored], errors)
  return out


def compare(windows: np.ndarray, train: np.ndarray, low: float, high: float, seed: int,
            unit: str) -> dict:
  """Cap and baseline MAE of every space on the same windows and masks; the errors
  also over the scored minutes whose truth lies above the current space's cap."""
  by_space = spaces(train, low, high)
  current = by_space["zscore_clip5 (current)"].cap
  observed = windows[~np.isnan(windows)]
  above = observed[observed > current + 1e-6]
  result = {"windows": int(len(windows)), "observed_minutes": int(observed.size),
            "observed_minutes_above_current_cap": int(above.size),
            "share_above_current_cap": float(above.size / observed.size),
            # A capped prediction errs by at least (truth - cap) there: the floor the
            # cap puts under any model's MAE, spread over all observed minutes.
            f"mean_excess_above_current_cap_{unit}": float((above - current).mean())
            if above.size else None,
            f"cap_floor_on_mae_{unit}": float((above - current).sum() / observed.size),
            "spaces": {}}
  for name, space in by_space.items():
    tasks = {}
    for task, (truth, errors) in evaluate(windows, space, seed).items():
      over = truth > current + 1e-6
      tasks[task] = {m: {f"mae_{unit}": float(e.mean()), "scored": int(e.size),
                         f"mae_{unit}_above_current_cap": (float(e[over].mean())
                                                           if over.any() else None),
                         "scored_above_current_cap": int(over.sum())}
                     for m, e in errors.items()}
    result["spaces"][name] = {
        "train_mean": space.mean, "train_std": space.std, f"cap_{unit}": space.cap,
        "observed_minutes_capped": int((observed > space.cap + 1e-6).sum()),
        "tasks": tasks}
  return result


def real_steps(data_root: pathlib.Path, out: str) -> tuple[dict, dict]:
  """({subject hash: minute series of steps} of train subjects, same of test), from
  pipeline.prepare on the real_quality steps cohort."""
  from pipeline.split import split_of
  from schemas import prepared
  from schemas.features import FEATURE_NAMES
  cohort = real_quality.COHORTS["steps"]
  data, folder = os.path.join(out, "pipeline"), os.path.join(out, "prepared")
  key = os.path.join(out, "subject.key")
  pathlib.Path(key).write_text(real_quality.KEY + "\n")
  timings: dict[str, float] = {}
  if not os.path.exists(os.path.join(data, "manifest.json")):
    real_quality.run("steps pipeline", real_quality.pipeline_args(
        cohort, data_root / cohort.folder, data, key, WINDOW), timings)
  if not os.path.exists(os.path.join(folder, prepared.META_NAME)):
    args = real_quality.pipeline_args(cohort, data_root / cohort.folder, folder, key, WINDOW)
    args = [a for a in args[2:] if not a.startswith("--split")]
    real_quality.run("steps prepare", ["-m", "pipeline.prepare", f"--pretrain_data={data}",
                                       *args], timings)
  fractions = [float(f) for f in cohort.split.split(",")]
  feature = FEATURE_NAMES.index("steps")
  by_split: dict[str, dict] = {"train": {}, "valid": {}, "test": {}}
  for grid in prepared.grids(folder, prepared.load_meta(folder)):
    split = split_of(grid["subject"], fractions, cohort.salt)
    series = grid["values"][:, feature].astype(np.float64)
    by_split[split].setdefault(grid["subject"], []).append(series)
  return by_split["train"], by_split["test"]


def windows_of(series_by_subject: Mapping[str, list]) -> np.ndarray:
  return np.concatenate([cut_windows(s) for parts in series_by_subject.values()
                         for s in parts])


def synthetic(seed: int, subjects: int, days: int) -> tuple[dict, dict, dict]:
  """(train, test) minute series of steps (first 2/3 of the subjects train), and the
  share of observed minutes beyond +-5 z of every feature (train statistics)."""
  from pipeline.synthetic import physiology
  from schemas.features import FEATURE_NAMES, FEATURES
  cohort = [physiology.generate_subject(seed, i, days).values for i in range(subjects)]
  n_train = 2 * subjects // 3
  steps = FEATURE_NAMES.index("steps")
  train = {str(i): [v[:, steps].astype(np.float64)] for i, v in enumerate(cohort[:n_train])}
  test = {str(i): [v[:, steps].astype(np.float64)] for i, v in enumerate(cohort[n_train:])}
  beyond = {}
  all_train = np.concatenate(cohort[:n_train]).astype(np.float64)
  all_test = np.concatenate(cohort[n_train:]).astype(np.float64)
  for i, f in enumerate(FEATURES):
    low, high = f.clip_range
    x, y = np.clip(all_train[:, i], low, high), np.clip(all_test[:, i], low, high)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size and y.size and x.std() > 0:
      z = (y - x.mean()) / x.std()
      beyond[f.name] = {"share_beyond_5": float((np.abs(z) > CLIP).mean()),
                        "upper_cap": float(x.mean() + CLIP * x.std()),
                        "max": float(y.max())}
  return train, test, beyond


def flat(series_by_subject: Mapping[str, list]) -> np.ndarray:
  values = np.concatenate([s for parts in series_by_subject.values() for s in parts])
  return values[~np.isnan(values)]


def main() -> None:
  from schemas.constants import NORMALISED_CLIP
  from schemas.features import FEATURES, FEATURE_NAMES
  if NORMALISED_CLIP != CLIP:
    raise SystemExit(f"NORMALISED_CLIP is {NORMALISED_CLIP}, this study assumes {CLIP}")
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", default=str(real_quality.DEFAULT_DATA))
  parser.add_argument("--out", default=str(REPO / "runs" / "bench_heavy_tail"))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--synthetic_subjects", type=int, default=24)
  parser.add_argument("--synthetic_days", type=int, default=6)
  parser.add_argument("--result", default=str(REPO / "benchmarks" / "results" /
                                              "heavy_tail_transform.json"))
  args = parser.parse_args()
  low, high = FEATURES[FEATURE_NAMES.index("steps")].clip_range
  record = {"benchmark": "heavy_tail_transform", "seed": args.seed,
            "tasks": list(real_quality.TASKS), "window_minutes": WINDOW,
            "max_missing": MAX_MISSING}
  data_root = pathlib.Path(args.data)
  if data_root.is_dir():
    os.makedirs(args.out, exist_ok=True)
    train, test = real_steps(data_root, os.path.abspath(args.out))
    record["real_fitbit_steps"] = {
        "train_subjects": len(train), "test_subjects": len(test),
        **compare(windows_of(test), flat(train), low, high, args.seed, "steps_per_min")}
  else:
    print(f"heavy_tail_transform: {data_root} not found; synthetic only", file=sys.stderr)
  train, test, beyond = synthetic(args.seed, args.synthetic_subjects, args.synthetic_days)
  record["synthetic_steps"] = {
      "subjects": args.synthetic_subjects, "days": args.synthetic_days,
      "train_subjects": len(train), "test_subjects": len(test),
      **compare(windows_of(test), flat(train), low, high, args.seed, "steps_per_min")}
  record["synthetic_share_beyond_5_z_by_feature"] = beyond
  record["note"] = "shared 2-core machine"
  results_file.write(record, args.result)


if __name__ == "__main__":
  main()
