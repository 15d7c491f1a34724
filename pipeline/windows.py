"""Stage 4 (with stage 5's labels), CutWindows: subject grids to blocks of windows.

Dataset "pretrain": windows of window_minutes every stride_minutes from the
subject's first minute (a tail shorter than a window is not a window). Dataset
"labelled" (with --labels): one window centred on each labelled session, padded
with missing minutes where it runs past the subject's data.

Drop rule. A subject's *provided* features are those its sources can provide: for
a device export, the set its adapter declares (pipeline.sources, grouped with the
readings in AlignSubjects: Grid.declared); for canonical files, the features with at least one used reading of
that subject; the union when a subject has both. A window whose missing ratio over
the provided features (source_missing_ratio) exceeds max_missing is dropped and
counted under windows/<dataset>/dropped/missing_ratio_above_max; every window of a
subject whose sources provide nothing is dropped as no_provided_features. Both
ratios (over all 26 features, and over the provided ones) go into each record.
All windows of one subject and dataset travel as one WindowBlock of numpy arrays.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np

from pipeline import counts, exchange, labels
from schemas.features import FEATURES

F = len(FEATURES)
DROP_REASON = "missing_ratio_above_max"
NO_FEATURES = "no_provided_features"
RATIOS = ("missing_ratio", "source_missing_ratio")


@dataclasses.dataclass
class WindowBlock:
  """Windows of one subject and dataset; values float32 [n, T, F] in physical units, NaN missing."""
  subject: str
  split: str
  dataset: str
  start: np.ndarray            # int64 [n], UTC minutes since the epoch
  values: np.ndarray           # float32 [n, T, F]
  missing_ratio: np.ndarray    # float32 [n]
  source_missing_ratio: np.ndarray
  label: np.ndarray            # int16 [n]
  exercise: np.ndarray         # int16 [n]
  minute_labels: np.ndarray    # int8 [n, T]
  minute_exercise: np.ndarray  # int8 [n, T]

  def __len__(self):
    return len(self.start)


exchange.register(WindowBlock)


def _take(array: np.ndarray, offsets: np.ndarray, length: int, fill) -> np.ndarray:
  """array rows [o, o + length) for every offset o, `fill` outside: [n, length, ...]."""
  index = offsets[:, None] + np.arange(length)
  inside = (index >= 0) & (index < len(array))
  if inside.all():  # strided windows: one gather
    return array[index]
  out = np.full(index.shape + array.shape[1:], fill, array.dtype)
  out[inside] = array[index[inside]]
  return out


def cut_subject(item, window: int, stride: int, max_missing: float, labelled: bool):
  """(subject, (split, Grid)) -> the WindowBlocks (pretrain, labelled) of one grid
  (a subject, or one segment of it), counts.

  Subject-level counts come with the subject's first segment only. Per split,
  features/<split>/<feature> counts the pretrain windows written in which the
  feature is observed at least once (the features each split really holds).
  """
  subject, (split, grid_) = item
  first, grid, sessions = grid_.start, grid_.values, grid_.sessions
  tally = {}
  if grid_.segment == 0:
    tally = {f"subjects/{split}": 1,
             "subjects_shorter_than_window": int((grid_.longest or len(grid)) < window)}
  provided = grid_.declared | ~np.all(np.isnan(grid), axis=0)
  count = (len(grid) - window) // stride + 1 if len(grid) >= window else 0
  offsets = np.arange(count, dtype=np.int64) * stride
  block = _block(subject, split, "pretrain", grid, first, offsets, window, provided,
                 sessions, max_missing, tally, None)
  if block is not None:
    windows_with = (~np.isnan(block.values)).any(axis=1).sum(axis=0)
    for f in np.flatnonzero(windows_with):
      tally[f"features/{split}/{FEATURES[f].name}"] = int(windows_with[f])
    yield block
  if labelled and sessions:
    offsets = np.array([(s + e) // 2 - window // 2 - first for s, e, _, _ in sessions],
                       np.int64)
    block = _block(subject, split, "labelled", grid, first, offsets, window, provided,
                   sessions, max_missing, tally, sessions)
    if block is not None:
      yield block
  yield counts.emit(tally)


def _block(subject, split, dataset, grid, first, offsets, window, provided, sessions,
           max_missing, tally, centred):
  """Cuts the windows at `offsets`, drops too-missing ones, labels the rest."""
  tally[f"windows/{dataset}/cut"] = len(offsets)
  if not len(offsets):
    return None
  n_provided = int(provided.sum())
  if not n_provided:
    tally[f"windows/{dataset}/dropped/{NO_FEATURES}"] = len(offsets)
    return None
  observed = ~np.isnan(grid)
  per_minute = np.concatenate([[0], np.cumsum(observed.sum(axis=1))])
  if centred is None:  # strided windows lie inside the grid: observed counts by cumsum
    seen = per_minute[offsets + window] - per_minute[offsets]
  else:
    seen = (~np.isnan(_take(grid, offsets, window, np.nan))).sum(axis=(1, 2))
  # Observed cells are all of provided features, so one count serves both ratios.
  missing = 1.0 - seen / float(window * F)
  source_missing = 1.0 - seen / float(window * n_provided)
  keep = source_missing <= max_missing
  dropped = int((~keep).sum())
  if dropped:
    tally[f"windows/{dataset}/dropped/{DROP_REASON}"] = dropped
  if not keep.any():
    return None
  offsets = offsets[keep]
  values = _take(grid, offsets, window, np.nan)
  low = int(offsets.min())  # labels of every minute the windows span, then cut alike
  span = labels.minute_labels(sessions, first + low, int(offsets.max()) - low + window)
  minute_labels, minute_exercise = (_take(m, offsets - low, window, labels.UNKNOWN_LABEL)
                                    for m in span)
  if centred is None:
    label = labels.dominant(minute_labels).astype(np.int16)
    exercise = labels.dominant(minute_exercise, prefer_high=True).astype(np.int16)
  else:
    kept = [s for s, k in zip(centred, keep) if k]
    label = np.array([s[2] for s in kept], np.int16)
    exercise = np.array([s[3] for s in kept], np.int16)
  return WindowBlock(subject, split, dataset, first + offsets, values,
                     missing[keep].astype(np.float32),
                     source_missing[keep].astype(np.float32),
                     label, exercise, minute_labels, minute_exercise)


class RatioStats(beam.CombineFn):
  """WindowBlocks -> {dataset: {ratio: {count, min, mean, max}}} for the manifest."""

  def create_accumulator(self):
    return {}

  def add_input(self, acc, block):
    for name in RATIOS:
      r = getattr(block, name).astype(np.float64)
      acc[(block.dataset, name)] = _merge(acc.get((block.dataset, name)),
                                         (len(r), r.min(), r.sum(), r.max()))
    return acc

  def merge_accumulators(self, accs):
    out = {}
    for acc in accs:
      for k, v in acc.items():
        out[k] = _merge(out.get(k), v)
    return out

  def extract_output(self, acc):
    out = {}
    for (dataset, name), (n, low, total, high) in sorted(acc.items()):
      out.setdefault(dataset, {})[name] = {"count": n, "min": float(low),
                                           "mean": float(total / n), "max": float(high)}
    return out


def _merge(a, b):
  if a is None:
    return b
  return a[0] + b[0], min(a[1], b[1]), a[2] + b[2], max(a[3], b[3])


class CutWindows(beam.PTransform):
  """(subject, (split, Grid)) -> WindowBlock; 'counts'."""

  def __init__(self, window: int, stride: int, max_missing: float, labelled: bool):
    super().__init__()
    self._args = (window, stride, max_missing, labelled)

  def expand(self, grids):
    """WindowBlock: a subject's windows of `window` minutes every `stride` minutes,
    values float32 [n, T, F] in physical units (NaN missing); a window whose missing
    share over the provided features exceeds max_missing is dropped and counted."""
    return grids | "Cut" >> beam.FlatMap(cut_subject, *self._args).with_output_types(
        WindowBlock).with_outputs(
        counts.COUNTS, main="windows")
