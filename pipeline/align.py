"""Stage 3, AlignSubjects: all readings of a subject onto one UTC minute grid.

A subject's readings arrive in any order, from any number of files; they are
grouped by subject hash (with the subject's device-declared features and label
sessions, so that nothing has to be joined again later) and handled as one set of
numpy arrays, so a worker holds one subject at a time (the largest subject bounds
memory). The readings may cross the shuffle as pipeline.exchange references. Per subject:
  1. sort by (minute, feature, instant, source, row): deterministic whatever the
     file order or the bundling;
  2. a second reading of the same (instant, feature) is a duplicate: the first in
     (source path, row) order is kept, the others are dead-lettered;
  3. sub-minute samples are reduced by the feature's aggregation rule;
  4. device rule: HRV features of a minute whose hrv_percent_good < 0.2 are missing
     (their readings dead-lettered as hrv_low_quality, one entry per run of minutes);
  5. values are clipped to the feature's clip range (valid but implausible values).
Wide rows that sit on whole minutes, no minute twice, skip steps 1-3 (nothing to
sort, dedupe or reduce): their values drop straight into the grid.

A subject's minutes more than max_gap_minutes apart (--max_gap_minutes, default 7
days) start a new segment: one Grid per segment, so a stray reading years away from
the rest allocates a grid of its own minutes, not of the decades between them.
Windows never span a gap (none would survive the drop rule anyway). Subject-level
counts are tallied once per subject, with its first segment (Grid.segment == 0).
"""

from __future__ import annotations

import dataclasses
import typing

import apache_beam as beam
import numpy as np

from pipeline import counts, exchange
from pipeline.parse import dead_letter
from schemas.features import (FEATURE_INDEX, FEATURE_NAMES, FEATURES, HRV_GOOD_FEATURE,
                              HRV_GOOD_THRESHOLD, feature_array)

NS_PER_MINUTE = 60_000_000_000
MAX_GAP_MINUTES = 7 * 24 * 60
F = len(FEATURES)
CLIP_LOW = feature_array("clip_range")[:, 0]
CLIP_HIGH = feature_array("clip_range")[:, 1]
HRV_GATED = np.array([f.hrv_gated for f in FEATURES])
_RULES = np.array([f.aggregation for f in FEATURES])


@dataclasses.dataclass
class Grid:
  """A subject's minute grid: values float32 [M, F] from `start` (UTC minutes), NaN missing.

  declared: bool [F], the features the subject's device exports provide (the rest
  of the drop rule's provided features come from the grid); sessions: the subject's
  label sessions (start, end, activity, exercise), sorted; each session goes to the
  segment nearest its centre. segment: index of this grid among the subject's segments
  (split at long gaps); longest: minutes of the subject's longest segment (0: this one).
  """
  start: int
  values: np.ndarray
  declared: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(F, bool))
  sessions: list = dataclasses.field(default_factory=list)
  segment: int = 0
  longest: int = 0


exchange.register(Grid)


def _iso(minute: int) -> str:
  return str(np.datetime64(int(minute), "m")) + "Z"


def align_subject(item, max_gap: int = MAX_GAP_MINUTES):
  """(subject, {'readings', 'provided', 'sessions'}) -> (subject, Grid) per segment,
  dead-letter lines (tagged) and counts (tagged)."""
  subject, grouped = item
  parts = sorted((exchange.fetch(r) for r in grouped.get("readings", ())),
                 key=lambda p: (p.source, int(p.row[0]) if len(p.row) else 0))
  sessions = sorted(grouped.get("sessions", ()))
  declared = np.zeros(F, bool)
  for mask in grouped.get("provided", ()):
    declared |= mask
  tally = {}
  segments = _whole_minute_rows(parts, max_gap)
  if segments is None:  # general path: sort, dedupe and reduce readings
    segments = (yield from _reduce(parts, tally, max_gap)) if parts else None
  if not segments:  # no sensor data: labels or a device subject, nothing to align
    tally.update({"label_sessions_without_data": len(sessions),
                  "subjects_without_readings": int(bool(grouped.get("provided")))})
    yield counts.emit(tally)
    return
  used = 0  # readings before the HRV rule; one per observed cell on the fast path
  for first, grid, readings in segments:
    used += int(np.count_nonzero(~np.isnan(grid)) if readings is None else readings.sum())
    yield from _gate_hrv(first, grid, readings, tally)
    clip_to_range(grid)
  tally["readings_used"] = used - tally.get("readings_dead_letter/hrv_low_quality", 0)
  tally["subjects"] = 1
  if len(segments) > 1:
    tally["subjects_split_at_gaps"] = 1
  yield counts.emit(tally)
  longest = max(len(grid) for _, grid, _ in segments)
  owner = _session_segments(sessions, segments)
  for i, (first, grid, _) in enumerate(segments):
    yield subject, Grid(first, grid, declared,
                        [s for s, o in zip(sessions, owner) if o == i], i, longest)


def clip_to_range(grid: np.ndarray) -> np.ndarray:
  """Clips float32 grid [minutes, F] in place to each feature's clip range; returns it.

  np.clip(grid, CLIP_LOW, CLIP_HIGH) bit for bit (NaN kept, signed zeros at a bound
  of 0 included; tests/pipeline/test_align.py), at a third of its CPU: np.clip
  takes a slower path over arrays holding NaN (benchmarks/README.md)."""
  np.maximum(grid, CLIP_LOW.astype(np.float32), out=grid)
  return np.minimum(grid, CLIP_HIGH.astype(np.float32), out=grid)


def _segment_bounds(minutes: np.ndarray, max_gap: int) -> np.ndarray:
  """Start indices (and the end) of runs of sorted `minutes` with no step > max_gap."""
  breaks = np.flatnonzero(np.diff(minutes) > max_gap) + 1
  return np.concatenate([[0], breaks, [len(minutes)]])


def _session_segments(sessions, segments) -> np.ndarray:
  """Index of the segment nearest each session's centre (inside one: that one)."""
  if not sessions:
    return np.zeros(0, np.int64)
  centre = np.array([(s + e) // 2 for s, e, _, _ in sessions], np.int64)
  low = np.array([first for first, _, _ in segments], np.int64)
  high = low + np.array([len(grid) for _, grid, _ in segments], np.int64)
  distance = np.maximum(low[None, :] - centre[:, None], centre[:, None] - high[None, :] + 1)
  return np.argmin(np.maximum(distance, 0), axis=1)


def _whole_minute_rows(parts, max_gap: int):
  """[(first minute, grid, None)] per segment when every part is wide, on whole
  minutes, no minute twice; else None."""
  if any(p.feature is not None for p in parts) or not parts:
    return None
  time = np.concatenate([p.time for p in parts])
  if not len(time) or (time % NS_PER_MINUTE).any():
    return None
  minute = time // NS_PER_MINUTE
  value = np.concatenate([p.value for p in parts])
  if not (np.diff(minute) > 0).all():
    order = np.argsort(minute, kind="stable")
    minute, value = minute[order], value[order]
    if (np.diff(minute) == 0).any():
      return None
  bounds = _segment_bounds(minute, max_gap)
  segments = []
  for start, end in zip(bounds[:-1], bounds[1:]):
    first = int(minute[start])
    grid = np.full((int(minute[end - 1]) - first + 1, F), np.nan, np.float32)
    grid[minute[start:end] - first] = value[start:end]
    segments.append((first, grid, None))
  return segments


def _reduce(parts, tally, max_gap: int):
  """General path: dedupe, then reduce sub-minute samples; returns [(first, grid,
  readings)] per segment, or None without readings."""
  sources = sorted({p.source for p in parts})
  source_id = {s: i for i, s in enumerate(sources)}
  longs = [p.long() for p in parts]
  time, feature, value, row = (np.concatenate([part[k] for part in longs]) for k in range(4))
  feature = feature.astype(np.int64)
  src = np.concatenate([np.full(len(part[3]), source_id[p.source], np.int32)
                        for p, part in zip(parts, longs)])
  if not len(time):
    return None
  minute = time // NS_PER_MINUTE
  first = int(minute.min())
  cell = (minute - first) * F + feature
  order = np.lexsort((row, src, time, cell))
  time, feature, value, row, src, cell = (a[order] for a in (time, feature, value, row,
                                                             src, cell))
  duplicate = np.zeros(len(time), bool)
  duplicate[1:] = (time[1:] == time[:-1]) & (feature[1:] == feature[:-1])
  if duplicate.any():
    tally["readings_dead_letter/duplicate"] = int(duplicate.sum())
    for j in np.flatnonzero(duplicate):
      yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
          sources[src[j]], row[j], "duplicate",
          {"timestamp": str(np.datetime64(int(time[j]), "ns")) + "Z",
           "feature": FEATURE_NAMES[feature[j]], "value": float(value[j])}))
    keep = ~duplicate
    cell, value = cell[keep], value[keep]
  cells, starts, sizes = np.unique(cell, return_index=True, return_counts=True)
  reduced = _aggregate(cells % F, value, starts, sizes)
  cell_minute = cells // F
  bounds = _segment_bounds(cell_minute, max_gap)
  segments = []
  for start, end in zip(bounds[:-1], bounds[1:]):
    low = int(cell_minute[start])
    minutes = int(cell_minute[end - 1]) - low + 1
    grid = np.full((minutes, F), np.nan, np.float32)
    readings = np.zeros((minutes, F), np.int64)
    local = cells[start:end] - low * F
    grid.reshape(-1)[local] = reduced[start:end]
    readings.reshape(-1)[local] = sizes[start:end]
    segments.append((first + low, grid, readings))
  return segments


def _aggregate(features, value, starts, sizes):
  """One value per (minute, feature) cell by the feature's rule (values sorted by cell)."""
  out = np.add.reduceat(value, starts) if len(value) else np.zeros(0)
  rules = _RULES[features]
  mean = rules == "mean"
  out[mean] /= sizes[mean]
  maximum = rules == "max"
  if maximum.any():
    out[maximum] = np.maximum.reduceat(value, starts)[maximum]
  for j in np.flatnonzero((rules == "median") & (sizes > 1)):
    out[j] = np.median(value[starts[j]:starts[j] + sizes[j]])
  single_median = (rules == "median") & (sizes == 1)
  out[single_median] = value[starts[single_median]]
  return out


def _gate_hrv(first, grid, readings, tally):
  """Sets HRV features missing in low-quality minutes; one dead letter per run of minutes.

  readings: int [M, F] readings behind each cell, or None for one per observed cell.
  """
  with np.errstate(invalid="ignore"):
    low = grid[:, FEATURE_INDEX[HRV_GOOD_FEATURE]] < HRV_GOOD_THRESHOLD
  gated = np.zeros(grid.shape, bool)
  gated[low] = HRV_GATED
  gated &= ~np.isnan(grid)
  if not gated.any():
    return
  per_minute = gated.sum(axis=1) if readings is None else (readings * gated).sum(axis=1)
  grid[gated] = np.nan
  tally["readings_dead_letter/hrv_low_quality"] = (
      tally.get("readings_dead_letter/hrv_low_quality", 0) + int(per_minute.sum()))
  bad = np.flatnonzero(per_minute)
  for run in np.split(bad, np.flatnonzero(np.diff(bad) > 1) + 1):
    yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
        None, None, "hrv_low_quality",
        {"from": _iso(first + run[0]), "to": _iso(first + run[-1] + 1),
         "readings": int(per_minute[run].sum())}))


class AlignSubjects(beam.PTransform):
  """{'readings': (subject, Readings or its exchange.Stored reference), optional
  'provided': (subject, bool[F]) and 'sessions': (subject, session)} -> main:
  (subject, Grid) per segment; 'dead_letter'; 'counts'.

  max_gap: minutes between two readings of a subject above which its grid is split.
  """

  def __init__(self, max_gap: int = MAX_GAP_MINUTES):
    super().__init__()
    self._max_gap = max_gap

  def expand(self, inputs):
    """Groups by subject hash and aligns: each Grid's values are float32 [M, F]
    (physical units, NaN missing) from its start in UTC minutes since the epoch;
    readings that cannot join a grid (e.g. a second reading of one minute and
    feature) leave as dead letters with their reason."""
    return (inputs
            | "BySubject" >> beam.CoGroupByKey()
            | "Align" >> beam.FlatMap(align_subject, self._max_gap).with_output_types(
                typing.Tuple[str, Grid]).with_outputs(
                counts.DEAD_LETTER, counts.COUNTS, main="grids"))
