"""AlignSubjects: minute grid, aggregation rules, duplicates, the HRV rule, clipping."""

import collections
import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline import counts, exchange
from pipeline.align import CLIP_HIGH, CLIP_LOW, AlignSubjects, clip_to_range
from pipeline.parse import Readings
from schemas.features import FEATURE_INDEX

NS = 1_000_000_000
T0 = 28_000_000 * 60 * NS  # a minute boundary
HR, STEPS, GOOD, RMSSD = (FEATURE_INDEX[n] for n in (
    "HR", "steps", "hrv_percent_good", "rmssd_percentile_0595"))


def _readings(source, rows):
  """rows: (seconds after T0, feature, value)."""
  t, f, v = zip(*rows)
  return Readings(source, T0 + np.array(t, np.int64) * NS,
                  np.arange(len(rows), dtype=np.int64) + 2, np.array(v, float),
                  np.array(f, np.int16))


PARTS = [
    ("subj", _readings("b.csv", [(10, HR, 60), (40, HR, 70), (10, STEPS, 3), (40, STEPS, 4),
                                 (70, HR, 99),            # duplicate of a.csv's: dropped
                                 (125, STEPS, 280)])),    # valid, clipped to 255
    ("subj", _readings("a.csv", [(70, HR, 80), (61, GOOD, 0.1), (62, RMSSD, 30),
                                 (63, RMSSD, 40), (121, GOOD, 0.5), (122, RMSSD, 50)])),
]


def _grid(item):
  subject, grid = item
  values = grid.values
  return (subject, grid.start, values.shape, float(values[0, HR]), float(values[0, STEPS]),
          float(values[1, HR]), bool(np.isnan(values[1, RMSSD])), float(values[2, RMSSD]),
          float(values[2, STEPS]), int(np.isfinite(values).sum()))


@pytest.mark.parametrize("mode", ["runner", "files"])
def test_grid_rules_and_counts(make_pipeline, tmp_path, mode):
  directory = str(tmp_path / "exchange") if mode == "files" else None
  for order in (PARTS, PARTS[::-1]):  # the input order never changes the result
    with make_pipeline() as p:
      readings = p | beam.Create(order) | exchange.Stash(directory)
      aligned = {"readings": readings} | AlignSubjects()
      assert_that(aligned.grids | beam.Map(_grid), equal_to([
          ("subj", 28_000_000, (3, 26), 65.0, 7.0, 80.0, True, 50.0, 255.0, 7)]),
          label="grid")
      total = aligned[counts.COUNTS] | beam.CombineGlobally(counts.SumCounts())
      assert_that(total, equal_to([{
          "readings_dead_letter/duplicate": 1, "readings_dead_letter/hrv_low_quality": 2,
          "readings_used": 9, "subjects": 1}]), label="counts")
      letters = aligned[counts.DEAD_LETTER] | beam.Map(json.loads) | beam.Map(
          lambda e: (e["reason"], e["source"], e["row"], "subject" in e,
                     e["raw"].get("value", e["raw"].get("readings"))))
      assert_that(letters, equal_to([("duplicate", "b.csv", 6, False, 99.0),
                                     ("hrv_low_quality", None, None, False, 2)]),
                  label="letters")


def test_sessions_and_declared_features_travel_with_the_grid(make_pipeline):
  declared = np.zeros(26, bool)
  declared[HR] = True
  session = (28_000_001, 28_000_002, 3, 1)
  with make_pipeline() as p:
    aligned = {"readings": p | "Readings" >> beam.Create(PARTS),
               "sessions": p | "Sessions" >> beam.Create([("subj", session),
                                                          ("nobody", session)]),
               "provided": p | "Provided" >> beam.Create([("subj", declared),
                                                          ("device-only", declared)])
               } | AlignSubjects()
    assert_that(aligned.grids | beam.MapTuple(
        lambda s, g: (s, g.sessions, np.flatnonzero(g.declared).tolist())),
        equal_to([("subj", [session], [HR])]), label="grid")
    total = aligned[counts.COUNTS] | beam.CombineGlobally(counts.SumCounts())
    assert_that(total | beam.Map(lambda c: (c["label_sessions_without_data"],
                                            c["subjects_without_readings"])),
                equal_to([(1, 1)]), label="counts")


def _day_readings(minutes: int, stray_minute: int | None = None):
  """Wide readings of HR and steps on whole minutes from T0, plus an optional stray row."""
  times = np.arange(minutes, dtype=np.int64) * 60 * NS
  if stray_minute is not None:
    times = np.append(times, stray_minute * 60 * NS)
  values = np.full((len(times), 26), np.nan, np.float32)
  values[:, HR] = 60 + np.arange(len(times)) % 40
  values[:, STEPS] = np.arange(len(times)) % 7
  return Readings("a.csv", T0 + times, np.arange(len(times), dtype=np.int64) + 2, values)


@pytest.mark.parametrize("wide", [True, False])
def test_a_stray_reading_decades_away_gets_a_segment_not_a_grid_over_decades(wide):
  from pipeline.align import MAX_GAP_MINUTES, align_subject
  from pipeline.windows import cut_subject
  thirty_years = 30 * 365 * 24 * 60
  two_days = 2 * 24 * 60
  session = (28_000_000 + 100, 28_000_000 + 140, 3, 1)

  def run(stray):
    part = _day_readings(two_days, stray)
    if not wide:  # the general path: long readings
      time, feature, value, row = part.long()
      part = Readings("a.csv", time, row, value, feature)
    out = list(align_subject(("s", {"readings": [part], "sessions": [session]}),
                             MAX_GAP_MINUTES))
    grids = [g for g in out if isinstance(g, tuple)]
    tally = [o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput)
             and o.tag == counts.COUNTS][0]
    return grids, tally

  grids, tally = run(thirty_years)
  assert [(g.start, g.values.shape, g.segment, g.longest) for _, g in grids] == [
      (28_000_000, (two_days, 26), 0, two_days),
      (28_000_000 + thirty_years, (1, 26), 1, two_days)]
  assert tally["subjects"] == 1 and tally["subjects_split_at_gaps"] == 1
  assert tally["readings_used"] == 2 * (two_days + 1)
  assert grids[0][1].sessions == [session] and grids[1][1].sessions == []
  alone, alone_tally = run(None)
  assert len(alone) == 1 and "subjects_split_at_gaps" not in alone_tally
  np.testing.assert_array_equal(alone[0][1].values, grids[0][1].values)

  def windows(grids):
    blocks, total = [], collections.Counter()
    for subject, grid in grids:
      for out in cut_subject((subject, ("train", grid)), 300, 300, 0.8, True):
        if isinstance(out, beam.pvalue.TaggedOutput):
          total.update(out.value)
        else:
          blocks.append(out)
    return blocks, total

  split_blocks, split_counts = windows(grids)
  alone_blocks, alone_counts = windows(alone)
  assert [(b.dataset, b.start.tolist()) for b in split_blocks] == \
      [(b.dataset, b.start.tolist()) for b in alone_blocks]
  for a, b in zip(split_blocks, alone_blocks):
    np.testing.assert_array_equal(a.values, b.values)
  assert split_counts["subjects/train"] == 1 and split_counts == alone_counts


def test_clip_to_range_equals_np_clip_bit_for_bit():
  """align_subject's maximum/minimum clip gives np.clip's bits: NaN kept, +-inf and
  values at and beyond the bounds, signed zeros against a bound of 0."""
  rng = np.random.default_rng(0)
  low, high = CLIP_LOW.astype(np.float32), CLIP_HIGH.astype(np.float32)
  grid = (low + (high - low) * rng.uniform(-0.5, 1.5, (20000, len(low)))).astype(np.float32)
  for value, share in ((np.nan, 0.2), (-0.0, 0.05), (0.0, 0.05), (np.inf, 0.01),
                       (-np.inf, 0.01)):
    grid[rng.random(grid.shape) < share] = value
  at_bounds = rng.random(grid.shape)
  grid = np.where(at_bounds < 0.05, low, np.where(at_bounds > 0.95, high, grid))
  expected = np.clip(grid, low, high)
  got = clip_to_range(grid.copy())
  assert (low == 0).any()
  np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
