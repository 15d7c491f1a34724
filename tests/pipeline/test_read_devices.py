"""ReadDevices as a Beam transform: a TestPipeline over one small Fitbit minute export.

name5's export (tests/data/fitbit_minute) holds steps, calories and METs per minute
for 3/12/2023 1:30-3:29 AM New York time, across the spring-forward gap: the 2 AM
hour does not exist there. One steps value is set to 999 (outside steps' 0-300
range). Calories and METs are not LSM features: their rows are extras.
"""

from __future__ import annotations

import collections
import json
import os
import shutil

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
import numpy as np
import pandas as pd
import pytest

from pipeline import counts, devices
from pipeline.keys import KeyRef
from schemas import record
from schemas.features import FEATURE_INDEX

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "fitbit_minute")
NY = "America/New_York"
STEPS = "name5_minuteStepsNarrow_20190730_20230830.csv"
BAD_ROW = 5  # data row (1-based, as dead letters number them) whose steps become 999


@pytest.fixture(name="export")
def export_fixture(tmp_path):
  for name in os.listdir(DATA):
    if name.startswith("name5_"):
      shutil.copy(os.path.join(DATA, name), tmp_path / name)
  steps = pd.read_csv(tmp_path / STEPS)
  steps.loc[BAD_ROW - 1, "Steps"] = 999
  steps.to_csv(tmp_path / STEPS, index=False)
  return tmp_path, steps


def expected_steps(steps: pd.DataFrame) -> tuple[list, int]:
  """(row, UTC ns, value) of the steps rows that become readings, and how many rows
  fall in the nonexistent hour."""
  local = pd.to_datetime(steps["ActivityMinute"], format="%m/%d/%Y %I:%M:%S %p")
  gap = local.dt.hour == 2
  keep = ~gap & (steps["Steps"] <= 300)
  utc = local[keep].dt.tz_localize(NY).dt.tz_convert("UTC").dt.as_unit("ns").astype("int64")
  rows = steps.index[keep] + 1
  return list(zip(rows, utc, steps["Steps"][keep].astype(float))), int(gap.sum())


def summary(item):
  """(subject hash, file, [(row, time ns, value)], feature indices) of one Readings."""
  subject, readings = item
  assert readings.feature is not None  # long form
  return (subject, readings.source,
          [(int(r), int(t), float(v)) for r, t, v in zip(readings.row, readings.time,
                                                          readings.value)],
          sorted(set(readings.feature.tolist())))


def tally(lines):
  """{(file name, reason): entries} of dead-letter JSON lines."""
  out = collections.Counter()
  for line in lines:
    entry = json.loads(line)
    out[(os.path.basename(entry["source"]), entry["reason"])] += 1
  return [dict(out)]


def test_read_devices_emits_readings_dead_letters_and_counts(export, make_pipeline,
                                                             monkeypatch, key):
  folder, steps = export
  monkeypatch.setenv("LSM_TEST_KEY", key.decode())
  plan = devices.plan_inputs(sorted(str(p) for p in folder.iterdir()))
  assert [(fmt, len(paths)) for fmt, _, paths in plan.exports] == [("fitbit_minute", 3)]
  subject = record.subject_hash("name5", key)
  rows, in_gap = expected_steps(steps)
  assert len(rows) == 120 - 60 - 1 and in_gap == 60

  with make_pipeline() as p:
    out = p | devices.ReadDevices(plan.exports, tz=NY, subject_id=None,
                                  key=KeyRef(env="LSM_TEST_KEY"))
    assert_that(out.readings | "Summary" >> beam.Map(summary),
                equal_to([(subject, str(folder / STEPS), rows, [FEATURE_INDEX["steps"]])]),
                label="readings")
    assert_that(out.dead_letter | "All" >> beam.combiners.ToList()
                | "Tally" >> beam.FlatMap(tally),
                equal_to([{(STEPS, "nonexistent_local_time"): in_gap,
                           (STEPS, "out_of_range"): 1}]), label="dead letters")
    assert_that(out[devices.PROVIDED] | "Mask" >> beam.Map(
        lambda item: (item[0], np.flatnonzero(item[1]).tolist())),
                equal_to([(subject, [FEATURE_INDEX["steps"]])]), label="provided")
    assert_that(out[counts.COUNTS], equal_to([{
        "sources/fitbit_minute/exports": 1, "sources/fitbit_minute/subjects": 1,
        # 3 files x 120 rows = 59 steps readings + 2 x 120 extras + 61 dead letters
        "sources/fitbit_minute/entries_read": 360,
        "sources/fitbit_minute/entries_used": 59,
        "sources/fitbit_minute/extras/not_an_lsm_feature": 240,
        "sources/fitbit_minute/dead_letter/nonexistent_local_time": in_gap,
        "sources/fitbit_minute/dead_letter/out_of_range": 1,
        "sources/fitbit_minute/provided/steps": 1, "readings_read": 59,
        "sources/fitbit_minute/readings": 59, "sources/fitbit_minute/present/steps": 59,
        counts.SOURCE: str(folder)}]), label="counts")
    # Calories and METs rows are kept as extras, named by keyed input id, not path.
    assert_that(out[devices.EXTRAS] | "All extras" >> beam.combiners.ToList()
                | "Tally extras" >> beam.FlatMap(tally)
                | "Shape" >> beam.Map(
                    lambda t: sorted((name[:6], why, n) for (name, why), n in t.items())),
                equal_to([[("input-", "not_an_lsm_feature", 120)] * 2]), label="extras")
