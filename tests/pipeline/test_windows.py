"""AssignSplit, ReadLabels and CutWindows: splits, window cutting, masks, drops, labels."""

import collections
import json

import apache_beam as beam
import numpy as np
from apache_beam.testing.util import assert_that, equal_to

from pipeline import counts, labels
from pipeline.align import Grid
from pipeline.keys import KeyRef
from pipeline.labels import ReadLabels
from pipeline.split import AssignSplit, split_of
from pipeline.windows import CutWindows
from schemas import record
from schemas.constants import ACTIVITY_CLASSES
from schemas.features import FEATURE_NAMES

FIRST = 28_000_000
W = 10


def test_split_fractions_and_stability(make_pipeline):
  subjects = [f"{i:032x}" for i in range(3000)]
  splits = collections.Counter(split_of(s, (0.8, 0.1, 0.1), "salt") for s in subjects)
  assert abs(splits["train"] / 3000 - 0.8) < 0.03 and splits["valid"] > 200
  assert split_of(subjects[0], (0, 0, 1), "salt") == "test"
  assert [split_of(s, (0.8, 0.1, 0.1), "salt") for s in subjects[:50]] != \
      [split_of(s, (0.8, 0.1, 0.1), "other") for s in subjects[:50]]
  with make_pipeline() as p:
    out = p | beam.Create([("a", 1), ("b", 2)]) | AssignSplit((0.8, 0.1, 0.1), "salt")
    assert_that(out, equal_to([("a", (split_of("a", (0.8, 0.1, 0.1), "salt"), 1)),
                               ("b", (split_of("b", (0.8, 0.1, 0.1), "salt"), 2))]))


def test_read_labels(tmp_path, make_pipeline):
  path = tmp_path / "sessions.csv"
  path.write_text("subject_id,start,end,activity,exercise\n"
                  "s1,2023-03-28T10:40:00Z,2023-03-28T10:45:00Z,run,1\n"
                  "s1,2023-03-28T10:50:00+00:00,2023-03-28T10:52:00Z,sleep,0\n"
                  "s1,2023-03-28T10:50:00,2023-03-28T10:52:00Z,sleep,0\n"      # no offset
                  ",2023-03-28T10:50:00Z,2023-03-28T10:52:00Z,sleep,0\n"
                  "s1,2023-03-28T10:50:00Z,2023-03-28T10:52:00Z,juggling,1\n"   # unknown class
                  "s1,2023-03-28T10:52:00Z,2023-03-28T10:50:00Z,run,1\n")  # end before start
  start = int(np.datetime64("2023-03-28T10:40", "m").astype(np.int64))
  key = tmp_path / "key"
  key.write_text("k\n")
  with make_pipeline() as p:
    out = p | ReadLabels(str(path), KeyRef(file=str(key)))
    assert_that(out.sessions, equal_to([
        (record.subject_hash("s1", b"k"), (start, start + 5, ACTIVITY_CLASSES.index("run"), 1)),
        (record.subject_hash("s1", b"k"), (start + 10, start + 12, -1, 0))]), label="sessions")
    reasons = out[counts.DEAD_LETTER] | beam.Map(lambda e: (json.loads(e)["row"],
                                                            json.loads(e)["reason"]))
    assert_that(reasons, equal_to([(4, "bad_timestamp"), (5, "missing_subject"),
                                   (6, "unknown_activity"), (7, "end_not_after_start")]),
                label="letters")


def test_minute_labels_and_dominant():
  sessions = [(FIRST + 2, FIRST + 5, 4, 1), (FIRST + 4, FIRST + 6, -1, 0)]
  minute, exercise = labels.minute_labels(sessions, FIRST, 8)
  assert minute.tolist() == [-1, -1, 4, 4, -1, -1, -1, -1]
  assert exercise.tolist() == [-1, -1, 1, 1, 0, 0, -1, -1]
  assert labels.dominant(np.array([-1, 2, 2, 3], np.int8)) == 2
  assert labels.dominant(np.array([-1, -1], np.int8)) == -1
  assert labels.dominant(np.array([0, 1], np.int8), prefer_high=True) == 1


def _grid(minutes=35, missing_from=20, sessions=()):
  rng = np.random.default_rng(0)
  values = rng.uniform(1, 2, (minutes, 26)).astype(np.float32)
  values[:, 5] = np.nan                       # a feature this source never provides
  values[missing_from:, :20] = np.nan         # the third window is mostly missing
  return Grid(FIRST, values, sessions=sorted(sessions))


def _summary(block):
  mask = ~np.isnan(block.values)
  return (block.dataset, block.split, block.start.tolist(),
          np.round(block.missing_ratio.astype(float), 4).tolist(),
          np.round(block.source_missing_ratio.astype(float), 4).tolist(), block.label.tolist(),
          block.exercise.tolist(), block.minute_labels[:, :3].tolist(),
          int(mask.sum()))


def test_cut_windows_drops_and_labels(make_pipeline):
  run = ACTIVITY_CLASSES.index("run")
  sessions = [(FIRST + 30, FIRST + 40, -1, 0), (FIRST + 2, FIRST + 4, run, 1)]
  with make_pipeline() as p:
    grids = p | "Grids" >> beam.Create([("s", ("valid", _grid(sessions=sessions)))])
    out = grids | CutWindows(W, W, 0.5, labelled=True)
    assert_that(out.windows | beam.Map(_summary), equal_to([
        ("pretrain", "valid", [FIRST, FIRST + 10], [0.0385, 0.0385], [0.0, 0.0],
         [run, -1], [1, -1], [[-1, -1, run], [-1, -1, -1]], 2 * 250),
        ("labelled", "valid", [FIRST - 2], [0.2308], [0.2], [run], [1],
         [[-1, -1, -1]], 200),
    ]), label="windows")
    total = out[counts.COUNTS] | beam.CombineGlobally(counts.SumCounts())
    assert_that(total, equal_to([{
        "subjects/valid": 1, "windows/pretrain/cut": 3,
        "windows/pretrain/dropped/missing_ratio_above_max": 1, "windows/labelled/cut": 2,
        "windows/labelled/dropped/missing_ratio_above_max": 1,
        **{f"features/valid/{name}": 2 for i, name in enumerate(FEATURE_NAMES) if i != 5}
    }]), label="counts")


def _cut(grid, provided=(), max_missing=0.5):
  from pipeline.windows import cut_subject
  declared = np.zeros(26, bool)
  for mask in provided:
    declared |= mask
  out = list(cut_subject(("s", ("train", Grid(FIRST, grid, declared))), W, W, max_missing,
                         False))
  blocks = [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)]
  tally = collections.Counter()
  for o in out:
    if isinstance(o, beam.pvalue.TaggedOutput):
      tally.update(o.value)
  return blocks, tally


def test_drop_rule_counts_missingness_over_provided_features():
  from pipeline.sources import provided_mask
  from schemas.features import FEATURE_INDEX
  grid = np.full((3 * W, 26), np.nan, np.float32)
  hr, steps = FEATURE_INDEX["HR"], FEATURE_INDEX["steps"]
  grid[:, hr] = 70.0            # HR every minute
  grid[:W // 2, steps] = 10.0   # steps in half of the first window only
  # Canonical rule: provided = observed at least once (HR, steps).
  blocks, tally = _cut(grid)
  (block,) = blocks
  np.testing.assert_allclose(block.source_missing_ratio, [0.25, 0.5, 0.5])
  np.testing.assert_allclose(block.missing_ratio, 1 - np.array([15, 10, 10]) / (W * 26))
  # A source that also declares EDA (never observed) raises the ratio: two windows drop.
  blocks, tally = _cut(grid, [provided_mask(["HR", "steps", "eda_level_real"])])
  np.testing.assert_allclose(blocks[0].source_missing_ratio, [0.5])
  assert tally["windows/pretrain/dropped/missing_ratio_above_max"] == 2
  # A subject whose sources provide nothing: every window dropped with that reason.
  blocks, tally = _cut(np.full((3 * W, 26), np.nan, np.float32), [provided_mask([])])
  assert not blocks and tally["windows/pretrain/dropped/no_provided_features"] == 3


def test_dominant_of_many_rows_matches_row_by_row_counting():
  rng = np.random.default_rng(5)
  rows = rng.integers(-1, 4, (200, 7)).astype(np.int8)
  rows[:10] = -1                                   # nothing known
  rows[10] = [0, 0, 3, 3, -1, -1, -1]              # a tie
  for prefer_high in (False, True):
    expected = []
    for row in rows:
      tally = np.bincount(row[row >= 0].astype(int), minlength=4)
      best = np.flatnonzero(tally == tally.max()) if tally.any() else [-1]
      expected.append(best[-1] if prefer_high else best[0])
    assert labels.dominant(rows, prefer_high).tolist() == expected
  assert labels.dominant(rows[10]) == 0 and labels.dominant(rows[10], True) == 3
