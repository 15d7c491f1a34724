"""NHANES wide day rows: no LSM feature, every row kept as an extra or used."""

import shutil

import pandas as pd
import pytest

from pipeline.sources import SourceError, read_source


def test_counts_are_extras_and_subjects_declared(data_dir):
  folder = data_dir / "nhanes_minute_counts"
  r = read_source(sorted(str(p) for p in folder.glob("*.csv")))
  assert r.format == "nhanes"
  assert r.readings.empty
  assert r.entries_read == 6 and r.entries_used == 3 and len(r.extras) == 3
  assert r.provided == {"21074": frozenset(), "21257": frozenset()}
  assert set(r.extras["reason"]) == {"not_an_lsm_feature"}
  wear = pd.read_csv(folder / "example_activity_wear_wide.csv").iloc[:, 2:]
  assert r.notes["nhanes_wear_minutes"] == int((wear == 1).sum().sum())
  assert r.notes["nhanes_nonwear_minutes"] == int((wear == 0).sum().sum())


def test_role_must_be_in_the_name(data_dir, tmp_path):
  path = tmp_path / "day_rows.csv"
  shutil.copy(data_dir / "nhanes_minute_counts" / "example_activity_count_wide.csv", path)
  with pytest.raises(SourceError, match="'count' or 'wear'"):
    read_source([str(path)])
