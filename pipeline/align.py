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
  label sessions (start, end, activity, exercise), sorted.
  """
  start: int
  values: np.ndarray
  declared: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(F, bool))
  sessions: list = dataclasses.field(default_factory=list)


exchange.register(Grid)


def _iso(minute: int) -> str:
  return str(np.datetime64(int(minute), "m")) + "Z"


def align_subject(item):
  """(subject, {'readings', 'provided', 'sessions'}) -> (subject, Grid), dead-letter
  lines (tagged) and counts (tagged)."""
  subject, grouped = item
  parts = sorted((exchange.fetch(r) for r in grouped.get("readings", ())),
                 key=lambda p: (p.source, int(p.row[0]) if len(p.row) else 0))
  sessions = sorted(grouped.get("sessions", ()))
  declared = np.zeros(F, bool)
  for mask in grouped.get("provided", ()):
    declared |= mask
  tally = {}
  grid = _whole_minute_rows(parts)
  if grid is not None:  # fast path: wide rows, one per whole minute, nothing to reduce
    first, grid = grid
    readings = None  # one reading per observed cell
    used = int(np.count_nonzero(~np.isnan(grid)))
  else:
    aligned = (yield from _reduce(subject, parts, tally)) if parts else None
    if aligned is None:  # no sensor data: labels or a device subject, nothing to align
      tally.update({"label_sessions_without_data": len(sessions),
                    "subjects_without_readings": int(bool(grouped.get("provided")))})
      yield counts.emit(tally)
      return
    first, grid, readings = aligned
    used = int(readings.sum())
  yield from _gate_hrv(subject, first, grid, readings, tally)
  np.clip(grid, CLIP_LOW.astype(np.float32), CLIP_HIGH.astype(np.float32), out=grid)
  tally["readings_used"] = used - tally.get("readings_dead_letter/hrv_low_quality", 0)
  tally["subjects"] = 1
  yield counts.emit(tally)
  yield subject, Grid(first, grid, declared, sessions)


def _whole_minute_rows(parts):
  """(first minute, grid) when every part is wide, on whole minutes, no minute twice."""
  if any(p.feature is not None for p in parts) or not parts:
    return None
  time = np.concatenate([p.time for p in parts])
  if not len(time) or (time % NS_PER_MINUTE).any():
    return None
  minute = time // NS_PER_MINUTE
  first = int(minute.min())
  offset = minute - first
  minutes = int(offset.max()) + 1
  if not (np.diff(offset) > 0).all() and (np.bincount(offset, minlength=minutes) > 1).any():
    return None
  grid = np.full((minutes, F), np.nan, np.float32)
  grid[offset] = np.concatenate([p.value for p in parts])
  return first, grid


def _reduce(subject, parts, tally):
  """General path: dedupe, then reduce sub-minute samples; returns (first, grid, readings)."""
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
           "feature": FEATURE_NAMES[feature[j]], "value": float(value[j])}, subject))
    keep = ~duplicate
    cell, value = cell[keep], value[keep]
  cells, starts, sizes = np.unique(cell, return_index=True, return_counts=True)
  minutes = int(cells[-1] // F) + 1
  grid = np.full((minutes, F), np.nan, np.float32)
  grid.reshape(-1)[cells] = _aggregate(cells % F, value, starts, sizes)
  readings = np.zeros((minutes, F), np.int64)
  readings.reshape(-1)[cells] = sizes
  return first, grid, readings


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


def _gate_hrv(subject, first, grid, readings, tally):
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
  tally["readings_dead_letter/hrv_low_quality"] = int(per_minute.sum())
  bad = np.flatnonzero(per_minute)
  for run in np.split(bad, np.flatnonzero(np.diff(bad) > 1) + 1):
    yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
        None, None, "hrv_low_quality",
        {"from": _iso(first + run[0]), "to": _iso(first + run[-1] + 1),
         "readings": int(per_minute[run].sum())}, subject))


class AlignSubjects(beam.PTransform):
  """{'readings': (subject, Readings or its exchange.Stored reference), optional
  'provided': (subject, bool[F]) and 'sessions': (subject, session)} -> main:
  (subject, Grid); 'dead_letter'; 'counts'."""

  def expand(self, inputs):
    return (inputs
            | "BySubject" >> beam.CoGroupByKey()
            | "Align" >> beam.FlatMap(align_subject).with_output_types(
                typing.Tuple[str, Grid]).with_outputs(
                counts.DEAD_LETTER, counts.COUNTS, main="grids"))
