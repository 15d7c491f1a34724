"""Every real-world input case (tests/data/cases/, a copy of the shared cases) re-run
with the outcome a user should get written down: correct windows, or an error that
says what to change. Each case stands for a kind of fault; the unit tests of each
kind live beside the code that fixes it.

Runs happen in each case's folder, as its README's command does (relative inputs).
"""

import glob
import json
import os
import shutil

import numpy as np
import pytest

from pipeline import keys, main, options as lsm_options
from schemas import manifest, record
from schemas.features import FEATURE_INDEX

CASES = os.path.join(os.path.dirname(__file__), "..", "data", "cases")
KEY = "test-key"


@pytest.fixture
def case(tmp_path, monkeypatch):
  """case(name) -> a writable copy of the case folder, made the current directory."""
  monkeypatch.setenv("LSM_SUBJECT_HASH_KEY", KEY)

  def enter(name):
    folder = tmp_path / name
    shutil.copytree(os.path.join(CASES, name), folder)
    monkeypatch.chdir(folder)
    return folder
  return enter


def _fails(argv, capsys) -> str:
  """Runs the CLI; asserts it exits non-zero and returns what it said."""
  with pytest.raises(SystemExit) as failed:
    main.main(argv)
  assert failed.value.code not in (0, None)
  return str(failed.value.code) + capsys.readouterr().err


def _windows(out, dataset="pretrain"):
  """[(split, decoded record)] of every window the manifest lists."""
  import grain.python as grain
  m = manifest.load(out)
  found = []
  for split in ("train", "valid", "test"):
    for path, _ in manifest.shards(out, split, dataset, m):
      source = grain.ArrayRecordDataSource([path])
      found += [(split, record.decode(source[i])) for i in range(len(source))]
  return found


def _physical(out, window, feature):
  """A window's values of one feature in physical units (NaN where missing)."""
  stats = manifest.load(out)["train_statistics"][feature]
  i = FEATURE_INDEX[feature]
  values = window["values"][:, i] * (stats["std"] or 1.0) + stats["mean"]
  return np.where(window["mask"][:, i], values, np.nan)


def _dead_letters(out):
  with open(os.path.join(lsm_options.default_dead_letter_dir(out), lsm_options.DEAD_LETTER_FILE)) as f:
    return [json.loads(line) for line in f]


def test_canonical_long_bom_crlf(case):
  case("canonical_long_bom_crlf")
  main.run(["--input", "hr_steps_excel_utf8.csv", "--window_minutes", "10", "--output", "out"])
  windows = _windows("out")
  assert len(windows) == 6
  counts = manifest.load("out")["counts"]
  assert counts["readings"]["used"] == 120
  assert all(w["mask"][:, FEATURE_INDEX["HR"]].all() for _, w in windows)
  assert all(w["mask"][:, FEATURE_INDEX["steps"]].all() for _, w in windows)


def test_timestamps_without_offset_read_with_tz(case):
  case("timestamps_without_offset")
  main.run(["--input", "local_time_no_offset.csv", "--input", "unix_epoch_ms.csv",
            "--timestamp_unit", "ms", "--tz", "Europe/Berlin", "--window_minutes", "10",
            "--output", "out"])
  assert len(_windows("out")) == 12
  main.run(["--input", "pandas_naive_datetime.parquet", "--tz", "Europe/Berlin",
            "--window_minutes", "10", "--output", "out_parquet"])
  assert len(_windows("out_parquet")) == 6


def test_timestamps_without_offset_and_no_tz_fail_naming_file_and_column(case, capsys):
  case("timestamps_without_offset")
  said = _fails(["--input", "local_time_no_offset.csv", "--window_minutes", "10",
                 "--output", "out"], capsys)
  assert "local_time_no_offset.csv" in said and "timestamp" in said and "--tz" in said
  assert "2024-03-04 08:00:00" in said
  assert not os.path.exists("out/manifest.json")


def test_apple_health_csv_dates(case):
  case("apple_health_dates")
  main.run(["--input", "heart_rate_from_export_xml.csv", "--window_minutes", "10",
            "--output", "out"])
  assert len(_windows("out")) == 6
  assert manifest.load("out")["counts"]["readings"]["used"] == 60


def test_apple_health_export_xml_gives_the_60_hr_minutes(case):
  case("apple_health_dates")
  main.run(["--input", "export.xml", "--window_minutes", "10", "--output", "out_xml"])
  assert len(_windows("out_xml")) == 6
  counts = manifest.load("out_xml")["counts"]
  assert counts["readings"]["used"] == 60
  assert counts["sources"]["apple_health"]["entries_used"] == 60


def test_takeout_fitbit_json_read_as_a_takeout_export(case):
  case("takeout_fitbit_json")
  main.run(["--input", "./*.json", "--tz", "America/New_York", "--subject_id", "u01",
            "--window_minutes", "10", "--output", "out"])
  windows = _windows("out")
  assert len(windows) == 6
  source = manifest.load("out")["counts"]["sources"]["takeout_fitbit"]
  assert (source["entries_read"], source["entries_used"], source["readings"]) == (
      420, 420, 120)
  assert source["absent.altitude"] == 1
  first = min((w for _, w in windows), key=lambda w: w["start"])  # 07:00 EDT, 11:00 UTC
  with open("steps-2020-04-24.json") as f:
    steps = [float(r["value"]) for r in json.load(f)[:10]]
  assert _physical("out", first, "steps") == pytest.approx(steps, abs=1e-3)
  # 07:01:00-07:01:50 EDT: five samples of 67 bpm and one of 68, by hand 403/6.
  assert _physical("out", first, "HR")[1] == pytest.approx(403 / 6, abs=1e-3)


def test_dst_fallback_newest_first_equals_oldest_first(case):
  folder = case("dst_fallback_newest_first")
  shutil.copy(os.path.join(CASES, "dst_fallback_heartrate_seconds",
                           "heartrate_seconds_merged.csv"), folder / "oldest_first")
  flags = ["--tz", "America/Chicago", "--window_minutes", "60", "--max_missing", "1",
           "--split", "1,0,0"]
  main.run(["--input", "heartrate_seconds_newest_first.csv", *flags, "--output", "new"])
  os.makedirs("old_in")
  shutil.move("oldest_first", "old_in/heartrate_seconds_merged.csv")
  main.run(["--input", "old_in/heartrate_seconds_merged.csv", *flags, "--output", "old"])
  for out in ("new", "old"):
    windows = sorted(_windows(out), key=lambda w: w[1]["start"])
    hours = [np.nanmean(_physical(out, w, "HR")) for _, w in windows]
    np.testing.assert_allclose(hours, [70, 60, 90, 75], atol=0.01)
    assert manifest.load(out)["counts"]["readings"]["used"] == 240
  for path in glob.glob("new/pretrain/*.array_record"):
    with open(path, "rb") as a, open(path.replace("new/", "old/", 1), "rb") as b:
      assert a.read() == b.read(), path


def test_e4_sessions_of_one_participant_are_one_subject(case):
  case("e4_multi_session_participants")
  sessions = sorted(glob.glob("p0*/*/"))
  main.run([arg for s in sessions for arg in ("--input", s)]
           + ["--window_minutes", "10", "--split", "0.5,0.25,0.25", "--output", "out"])
  splits = {}
  for split, w in _windows("out"):
    splits.setdefault(w["subject"], set()).add(split)
  assert len(splits) == 2
  assert all(len(s) == 1 for s in splits.values())


def test_fitabase_overlapping_exports_dead_letters_point_at_file_rows(case):
  case("fitabase_overlapping_exports")
  main.run(["--input", "./*.csv", "--tz", "America/New_York", "--window_minutes", "60",
            "--split", "1,0,0", "--output", "out"])
  assert len(_windows("out")) == 3
  duplicates = [d for d in _dead_letters("out") if d["reason"] == "duplicate"]
  assert len(duplicates) == 60
  assert {os.path.basename(d["source"]) for d in duplicates} == {
      "sub07_minuteStepsNarrow_20230105_20230106.csv"}
  assert sorted(d["row"] for d in duplicates) == list(range(1, 61))


def test_single_subject_outside_train_is_normalised_with_population_statistics(case):
  case("single_subject_no_train_split")
  main.run(["--input", "my_own_watch_wide.csv", "--window_minutes", "30", "--output", "out"])
  windows = _windows("out")
  assert len(windows) == 4
  stats = manifest.load("out")["train_statistics"]["HR"]
  assert stats["count"] == 0 and stats["std"] > 0
  for _, w in windows:
    hr = w["values"][:, FEATURE_INDEX["HR"]][w["mask"][:, FEATURE_INDEX["HR"]]]
    assert np.abs(hr).max() < 5  # not saturated at the +-5 clip


def test_feature_absent_from_train_is_scaled_with_population_statistics(case):
  from schemas.features import FEATURES
  case("single_subject_no_train_split")
  main.run(["--input", "mixed_device_cohort_wide.csv", "--window_minutes", "30",
            "--output", "out"])
  m = manifest.load("out")
  stats = m["train_statistics"]["wrist_temperatures"]
  assert stats["count"] == 0 and stats["source"].startswith("population")
  feature = FEATURES[FEATURE_INDEX["wrist_temperatures"]]
  assert (stats["mean"], stats["std"]) == pytest.approx(
      (feature.population_mean, feature.population_std), rel=1e-6)
  assert any("wrist_temperatures" in w for w in m["warnings"])


def test_n_of_1_with_split_1_0_0_uses_its_own_statistics(case):
  case("single_subject_no_train_split")
  main.run(["--input", "my_own_watch_wide.csv", "--window_minutes", "30", "--split", "1,0,0",
            "--output", "out"])
  windows = _windows("out")
  assert len(windows) == 4 and {s for s, _ in windows} == {"train"}
  assert manifest.load("out")["train_statistics"]["HR"]["count"] == 120


def test_empty_and_header_only_files_in_a_cohort_glob(case):
  case("empty_and_header_only_files")
  main.run(["--input", "./*.csv", "--window_minutes", "10", "--output", "out"])
  m = manifest.load("out")
  assert m["inputs_skipped_empty"] == 1
  assert {i["id"]: i["format"] for i in m["inputs"]}[
      keys.input_id("./cohort_p11.csv", KEY.encode())] == "empty"
  assert len(_windows("out")) == 3 and m["counts"]["rows"]["read"] == 30
  main.run(["--input", "cohort_p09.csv", "--input", "cohort_p10.csv", "--window_minutes", "10",
            "--split", "1,0,0", "--output", "out2"])
  assert len(_windows("out2")) == 3


def test_semicolon_and_decimal_comma_files(case, capsys):
  case("decimal_comma_semicolon")
  said = _fails(["--input", "temp_semicolon_de.csv", "--window_minutes", "10",
                 "--output", "out_semi"], capsys)
  assert "temp_semicolon_de.csv" in said and "--csv_delimiter ';'" in said
  said = _fails(["--input", "temp_quoted_decimal_comma.csv", "--window_minutes", "10",
                 "--output", "out_quoted"], capsys)  # never 3300 or 33: all dead-lettered
  assert "temp_quoted_decimal_comma.csv" in said and "non_numeric 60 (row 2: '33,00')" in said
  for name, flags in (("temp_semicolon_de.csv", ["--csv_delimiter", ";"]),
                      ("temp_quoted_decimal_comma.csv", [])):
    out = "out_" + name
    main.run(["--input", name, *flags, "--decimal", ",", "--window_minutes", "10",
              "--split", "1,0,0", "--output", out])
    windows = sorted(_windows(out), key=lambda w: w[1]["start"])
    assert len(windows) == 6
    np.testing.assert_allclose(_physical(out, windows[0][1], "wrist_temperatures")[:2],
                               [33.00, 33.06], atol=1e-3)


def test_rerun_into_a_used_output_is_refused_without_overwrite(case, capsys):
  case("rerun_same_output")
  main.run(["--input", "./*.csv", "--window_minutes", "10", "--split", "1,0,0",
            "--num_shards", "3", "--output", "out"])
  said = _fails(["--input", "export_part1_utc.csv", "--window_minutes", "10", "--split", "1,0,0",
                 "--num_shards", "1", "--output", "out"], capsys)
  assert "--overwrite" in said
  main.run(["--input", "export_part1_utc.csv", "--window_minutes", "10", "--split", "1,0,0",
            "--num_shards", "1", "--output", "out", "--overwrite"])
  new_shards = [f"{s}-00000-of-00001.array_record" for s in ("test", "train", "valid")]
  assert sorted(os.listdir("out/pretrain")) == new_shards
  # A run that failed or was killed left no manifest: its leftovers go without asking.
  os.remove("out/manifest.json")
  open("out/pretrain/train-00002-of-00003.array_record", "wb").close()
  main.run(["--input", "export_part1_utc.csv", "--window_minutes", "10", "--split", "1,0,0",
            "--num_shards", "1", "--output", "out"])
  assert sorted(os.listdir("out/pretrain")) == new_shards
