"""Raw files, labels and truth.json: formats, determinism, exact dirty accounting."""

import csv
import filecmp
import json
import os

import numpy as np
import pandas as pd
import pytest

from pipeline.synthetic import main as synth_main
from pipeline.synthetic import physiology, writers
from schemas.constants import ACTIVITY_CLASSES
from schemas.features import FEATURE_NAMES
from schemas.raw import LABEL_COLUMNS

SMALL = dict(subjects=2, days=2, seed=0, subjects_per_file=1)   # has sub-minute HR


def _truth(directory):
  with open(os.path.join(directory, "truth.json")) as f:
    return json.load(f)


def _same_tree(a, b):
  names = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
  assert names == sorted(os.path.relpath(os.path.join(d, f), b)
                         for d, _, fs in os.walk(b) for f in fs)
  for name in names:
    assert filecmp.cmp(os.path.join(a, name), os.path.join(b, name), shallow=False), name
  return names


@pytest.mark.parametrize("layout,fmt", [("wide", "csv.gz"), ("long", "parquet")])
def test_same_seed_same_bytes_whatever_the_workers(make_cohort, layout, fmt):
  one = make_cohort(layout=layout, fmt=fmt, dirty=True, workers=1, **SMALL)
  two = make_cohort(layout=layout, fmt=fmt, dirty=True, workers=2, **SMALL)
  names = _same_tree(one, two)
  assert sum(n.startswith("raw/part-") for n in names) == 4   # 2 blocks x 2 time halves
  other = make_cohort(layout=layout, fmt=fmt, dirty=True, workers=1,
                      **dict(SMALL, seed=1))
  assert not filecmp.cmp(os.path.join(one, "labels/sessions.csv"),
                         os.path.join(other, "labels/sessions.csv"), shallow=False)


@pytest.mark.parametrize("layout,fmt", [(layout, fmt) for layout in writers.LAYOUTS
                                        for fmt in writers.FORMATS])
def test_clean_files_hold_exactly_the_generated_subjects(make_cohort, reference_account,
                                                         to_minutes, layout, fmt):
  """Every format parses back to the generator's float32 arrays, subject by subject,
  and equals each subject generated alone (not in a cohort)."""
  out = make_cohort(layout=layout, fmt=fmt, dirty=False, workers=1, **SMALL)
  counts = reference_account(out)
  truth = _truth(out)
  assert counts["rows_read"] == counts["rows_parsed"] == truth["rows_written"]
  assert counts["readings_read"] == counts["readings_used"] == truth["readings_written"]
  assert truth["expected"]["readings_used"] == truth["readings_written"]
  assert not counts["dead_rows"] and not counts["dead_readings"]
  for k in range(SMALL["subjects"]):
    alone = physiology.generate_subject(SMALL["seed"], k, SMALL["days"])
    back = to_minutes(counts["used"], alone.subject_id, alone.traits["start_date"],
                      alone.tz_offset_minutes, SMALL["days"])
    assert np.array_equal(back, alone.values, equal_nan=True), alone.subject_id


def test_timestamps_are_local_iso_with_offset():
  minutes = np.array([0, 59, 61, 1439, 1440, 2 * 1440 + 7 * 60 + 15])
  text = writers.local_timestamps(np.datetime64("2024-03-04"), -300, minutes, 45)
  text = [t.decode() for t in text.view("S25").ravel()]
  assert text == ["2024-03-04T00:00:45-05:00", "2024-03-04T00:59:45-05:00",
                  "2024-03-04T01:01:45-05:00", "2024-03-04T23:59:45-05:00",
                  "2024-03-05T00:00:45-05:00", "2024-03-06T07:15:45-05:00"]
  assert writers.offset_text(330) == "+05:30" and writers.offset_text(0) == "+00:00"


def test_labels_and_subjects_files(make_cohort):
  out = make_cohort(layout="wide", fmt="csv", dirty=False, workers=1, **SMALL)
  labels = pd.read_csv(os.path.join(out, "labels/sessions.csv"))
  assert tuple(labels.columns) == LABEL_COLUMNS
  start = pd.to_datetime(labels["start"], utc=True)
  end = pd.to_datetime(labels["end"], utc=True)
  assert (end > start).all()
  exercise = labels[labels["exercise"] == 1]
  assert set(exercise["activity"]) <= set(ACTIVITY_CLASSES) and len(exercise) > 0
  assert {"sleep", "sedentary"} <= set(labels.loc[labels["exercise"] == 0, "activity"])
  subjects = pd.read_csv(os.path.join(out, "subjects.csv"))
  assert list(subjects["subject_id"]) == [f"synth-0-{k:06d}" for k in range(2)]
  assert tuple(subjects.columns) == writers.SUBJECT_COLUMNS


def test_wide_header_and_sub_minute_rows(make_cohort):
  out = make_cohort(layout="wide", fmt="csv", dirty=False, workers=1, **SMALL)
  frame = pd.concat(pd.read_csv(os.path.join(out, "raw", f), dtype={"timestamp": str})
                    for f in sorted(os.listdir(os.path.join(out, "raw"))))
  assert list(frame.columns) == ["subject_id", "timestamp", *FEATURE_NAMES]
  seconds = frame["timestamp"].str.slice(17, 19)
  assert set(seconds) == {"00", "15", "30", "45"}
  sub = frame[seconds != "00"]
  assert sub[list(FEATURE_NAMES[1:])].isna().all().all() and sub["HR"].notna().all()


@pytest.mark.parametrize("layout,fmt", [("long", "csv"), ("wide", "csv"),
                                        ("long", "csv.gz"), ("wide", "parquet"),
                                        ("long", "parquet")])
def test_dirty_truth_equals_what_is_in_the_files(make_cohort, reference_account, layout, fmt):
  out = make_cohort(layout=layout, fmt=fmt, dirty=True, workers=1, **SMALL)
  truth = _truth(out)
  counts = reference_account(out)
  for key in ("rows_read", "rows_parsed", "readings_read", "readings_used"):
    assert counts[key] == truth["expected"][key], key
  assert truth["rows_written"] == counts["rows_read"]
  expected = truth["expected_dead_letter"]
  assert {k: v for k, v in expected["rows"].items() if v} == dict(counts["dead_rows"])
  assert {k: v for k, v in expected["readings"].items() if v} == dict(counts["dead_readings"])
  injected = truth["injected"]
  kinds = {"duplicate", "out_of_order", "mixed_offset", "out_of_range", "non_finite",
           "bad_timestamp"}
  kinds |= {"non_numeric", "truncated_line"} if fmt != "parquet" else set()
  kinds |= {"unknown_feature"} if layout == "long" else set()
  assert {k for k, v in injected.items() if v} == kinds
  assert expected["rows"].get("malformed_row", 0) == injected["truncated_line"]
  # Duplicated rows: one duplicate reading each in long; all their cells in wide.
  if layout == "long":
    assert expected["readings"]["duplicate"] == injected["duplicate"]
  else:
    assert expected["readings"]["duplicate"] > injected["duplicate"]


@pytest.mark.parametrize("layout", writers.LAYOUTS)
def test_dirty_leaves_every_other_reading_untouched(make_cohort, reference_account, layout):
  """Faults only remove what truth.json says; every surviving reading is the clean one."""
  clean = reference_account(make_cohort(layout=layout, fmt="csv", dirty=False, workers=1,
                                        **SMALL))["used"]
  out = make_cohort(layout=layout, fmt="csv", dirty=True, workers=1, **SMALL)
  dirty = reference_account(out)["used"]
  truth = _truth(out)
  assert all(clean[key] == value for key, value in dirty.items())
  failed_rows_readings = truth["readings_written"] - truth["expected"]["readings_read"]
  dead = truth["expected_dead_letter"]["readings"]
  lost = sum(dead.values()) - dead["duplicate"] + failed_rows_readings
  assert len(clean) - len(dirty) == lost > 0


def test_dirty_offsets_and_order_are_visible_in_the_file(make_cohort, timestamp_parser):
  """Mixed offsets: rows written in another offset than the subject's home one."""
  out = make_cohort(layout="wide", fmt="csv", dirty=True, workers=1, **SMALL)
  home = {r["subject_id"]: writers.offset_text(int(r["tz_offset_minutes"]))
          for r in csv.DictReader(open(os.path.join(out, "subjects.csv")))}
  foreign = backwards = 0
  for name in sorted(os.listdir(os.path.join(out, "raw"))):
    rows = list(csv.reader(open(os.path.join(out, "raw", name))))[1:]
    last = {}
    for row in rows:
      ts = timestamp_parser(row[1]) if len(row) > 1 else None
      if ts is None:
        continue
      foreign += row[1][-6:] != home[row[0]]
      backwards += row[0] in last and ts < last[row[0]]
      last[row[0]] = ts
  assert foreign == _truth(out)["injected"]["mixed_offset"]
  assert backwards >= _truth(out)["injected"]["out_of_order"] // 2 > 0


def test_truncated_last_line_has_fewer_fields(make_cohort):
  out = make_cohort(layout="long", fmt="csv", dirty=True, workers=1, **SMALL)
  last = sorted(os.listdir(os.path.join(out, "raw")))[-1]
  data = open(os.path.join(out, "raw", last), "rb").read()
  assert not data.endswith(b"\n")
  assert len(data.rsplit(b"\n", 1)[1].split(b",")) < 4


def test_cli_writes_outputs_and_plot(tmp_path, capsys):
  synth_main.main(["--subjects", "2", "--days", "1", "--seed", "1", "--output",
                   str(tmp_path), "--format", "parquet", "--plot", "--workers", "1"])
  printed = capsys.readouterr().out
  assert str(tmp_path) in printed and "plot.png" in printed
  assert os.path.getsize(tmp_path / "plot.png") > 10_000
  assert sorted(os.listdir(tmp_path / "raw")) == ["part-00000.parquet"]
  with pytest.raises(SystemExit, match="already holds part files"):
    synth_main.main(["--output", str(tmp_path), "--subjects", "2", "--days", "1"])
