"""lsm-pipeline end to end on every real device excerpt in tests/data/, in one run.

One in-process run reads all five folders with --format auto (the E4 session as a
folder), --tz America/New_York for the Fitbit local-time exports, 10-minute
windows, --max_missing 0.7 and every subject in train. No excerpt holds 300
contiguous minutes (the longest, the Fitbit heart-rate one, has 108), hence the
short window; the E4 excerpt's first 10 minutes have under half of its 22
provided features (ACC covers 2.5 minutes, EDA and TEMP 3.3, and the HRV rule
removes low-quality minutes), hence 0.7 rather than 0.5.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

from pipeline import devices, main, read
from schemas import manifest, record
from schemas.features import FEATURE_INDEX, FEATURE_NAMES

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
W = 10
MAX_MISSING = 0.7
HRV = {"hrv_percent_good", "hrv_rr_20th_percentile_mean", "hrv_rr_80th_percentile_mean",
       "hrv_rr_median", "hrv_shannon_entropy_rr", "hrv_shannon_entropy_rrd",
       "rmssd_percentile_0595", "sdnn_percentile_0595"}
ACC = {"axis_mean", "covariance", "jerk_auto", "kurtosis", "log_energy",
       "log_energy_ratio", "zero_crossing_avg", "zero_crossing_std"}
PROVIDED = {
    "fitbit_minute": {"steps"},
    "fitbit_heartrate_seconds": {"HR"},
    "empatica_e4": {"HR", "steps", "eda_level_real", "ceda_slope_real_micro_siemens",
                    "wrist_temperatures", "skin_temperature_slope"} | HRV | ACC,
    "garmin": {"HR", "steps", "altim_std"} | HRV | ACC,
    "nhanes": set(),
}
# raw subject id -> format (E4 and Garmin: the folder name; NHANES subjects have no
# LSM feature, hence no readings and no window).
SUBJECTS = {"name4": "fitbit_minute", "name5": "fitbit_minute",
            "2022484408": "fitbit_heartrate_seconds",
            "2026352035": "fitbit_heartrate_seconds",
            "empatica_e4": "empatica_e4", "garmin": "garmin"}


@pytest.fixture(scope="module")
def out(tmp_path_factory, raw):
  out = str(tmp_path_factory.mktemp("devices") / "out")
  inputs = [f"{DATA}/garmin/*.csv", f"{DATA}/empatica_e4", f"{DATA}/fitbit_minute/*.csv",
            f"{DATA}/fitbit_heartrate_seconds/*.csv", f"{DATA}/nhanes_minute_counts/*.csv"]
  main.run(raw.pipeline_args(inputs, out, f"--window_minutes={W}", "--tz=America/New_York",
                             f"--max_missing={MAX_MISSING}", "--split=1,0,0", "--num_shards=1"))
  return out


def _windows(out):
  """{raw subject id: [decoded record, ...]} sorted by start, values in physical units."""
  import grain.python as grain
  m = manifest.load(out)
  stats = m["train_statistics"]
  mean = np.array([stats[f]["mean"] for f in FEATURE_NAMES])
  std = np.array([stats[f]["std"] for f in FEATURE_NAMES])
  by_hash = {record.subject_hash(s, b"test-key"): s for s in SUBJECTS}
  windows = {}
  for path, _ in manifest.shards(out, "train", manifest=m):
    source = grain.ArrayRecordDataSource([path])
    for i in range(len(source)):
      w = record.decode(source[i])
      w["physical"] = np.where(w["mask"], w["values"] * std + mean, np.nan)
      windows.setdefault(by_hash[w["subject"]], []).append(w)
  return {s: sorted(ws, key=lambda w: w["start"]) for s, ws in windows.items()}


def _minute(text):
  return int(pd.Timestamp(text).value // 60_000_000_000)


def test_every_file_detected_and_recorded(out):
  m = manifest.load(out)
  formats = {os.path.relpath(e["path"], DATA): e["format"] for e in m["inputs"]}
  assert formats["garmin/acc.csv"] == formats["garmin/data.csv"] == "garmin"
  assert formats["empatica_e4/ACC.csv"] == "empatica_e4"
  assert "empatica_e4/info.txt" not in formats  # a folder stands for its sensor files
  assert formats["fitbit_heartrate_seconds/heartrate_seconds_2users.csv"] == \
      "fitbit_heartrate_seconds"
  assert {f for p, f in formats.items() if p.startswith("fitbit_minute/")} == \
      {"fitbit_minute"}
  assert {f for p, f in formats.items() if p.startswith("nhanes")} == {"nhanes"}
  assert m["options"]["tz"] == "America/New_York"


def test_features_provided_and_missing_elsewhere(out):
  m = manifest.load(out)
  found = m["counts"]["sources"]
  assert {f: set(n["features_provided"]) for f, n in found.items()} == PROVIDED
  assert m["counts"]["subjects_without_readings"] == 2  # the NHANES subjects
  windows = _windows(out)
  assert set(windows) == set(SUBJECTS)  # every subject with readings gave a window
  for subject, ws in windows.items():
    provided = [FEATURE_INDEX[f] for f in PROVIDED[SUBJECTS[subject]]]
    absent = np.setdiff1d(np.arange(len(FEATURE_NAMES)), provided)
    for w in ws:
      assert not w["mask"][:, absent].any(), subject  # mask 0, whatever the minute
      assert np.all(w["values"][:, absent] == 0)
      seen = w["mask"][:, provided].sum()
      assert w["source_missing_ratio"] == pytest.approx(1 - seen / (W * len(provided)))
      assert w["missing_ratio"] == pytest.approx(1 - seen / w["mask"].size)
      assert w["source_missing_ratio"] <= MAX_MISSING
  ratios = m["window_ratios"]["pretrain"]
  assert ratios["source_missing_ratio"]["count"] == sum(len(w) for w in windows.values())
  assert ratios["missing_ratio"]["min"] > 0.5  # no source has even half the 26 features


def test_counts_reconcile(out):
  m = manifest.load(out)
  c = m["counts"]
  extras = [json.loads(l) for l in open(os.path.join(out, m["extras"]))]
  letters = [json.loads(l) for l in open(os.path.join(out, m["dead_letter"]))]
  for fmt, n in c["sources"].items():
    assert n["entries_read"] == (n["entries_used"] + sum(n["extras"].values())
                                 + sum(n["dead_letter"].values())), fmt
    assert n.get("readings", 0) == sum(n["present"].values())
  assert c["sources"]["nhanes"]["extras"] == {"not_an_lsm_feature": 3}
  assert c["sources"]["empatica_e4"]["extras"] == {"raw_ppg_waveform_not_an_lsm_feature": 1280}
  assert c["sources"]["fitbit_minute"]["dead_letter"] == {"nonexistent_local_time": 120,
                                                          "off_wrist": 60}
  total_extras = sum(sum(n["extras"].values()) for n in c["sources"].values())
  assert sum(e["n_rows"] for e in extras) == total_extras
  adapter = [e for e in letters if "n_rows" in e]
  assert sum(e["n_rows"] for e in adapter) == sum(
      sum(n["dead_letter"].values()) for n in c["sources"].values())
  raw_ids = set(SUBJECTS) | {"21074", "21257"}
  assert not any(e.get("subject") in raw_ids for e in extras + letters)  # hashes only
  assert c["readings"]["read"] == sum(n.get("readings", 0) for n in c["sources"].values())
  assert c["readings"]["read"] == c["readings"]["used"] + sum(
      c["readings"]["dead_lettered"].values())


def test_fitbit_spring_forward_lands_on_consecutive_utc_minutes(out):
  """Local 1:00-1:59 EST then 3:00-3:29 EDT (2 AM does not exist) are 90 UTC minutes."""
  frame = pd.read_csv(f"{DATA}/fitbit_minute/name4_minuteStepsNarrow_20190730_20230830.csv")
  night = frame[frame.ActivityMinute.str.startswith("3/12/2023 ")
                & ~frame.ActivityMinute.str.contains(" 2:\\d\\d:00 AM")]
  ws = [w for w in _windows(out)["name4"] if w["start"] < _minute("2023-03-13T00:00Z")]
  assert [w["start"] for w in ws] == [_minute("2023-03-12T06:00Z") + W * i for i in range(9)]
  steps = np.concatenate([w["physical"][:, FEATURE_INDEX["steps"]] for w in ws])
  np.testing.assert_allclose(steps, night.Steps.to_numpy(float), atol=1e-2)
  may = [w["start"] for w in _windows(out)["name4"] if w["start"] >= _minute("2023-05-01T00:00Z")]
  # 5/17 11 PM EDT = 03:00 UTC on 5/18; 5/18 itself is off-wrist (dead-lettered).
  assert may == [_minute("2023-05-18T03:00Z") + W * i for i in range(6)]


def test_offsets_and_unix_times_land_on_utc(out):
  windows = _windows(out)
  # 12:08 +02:00 is 10:08 UTC, the grid's first minute: windows start there or 10:18.
  assert windows["garmin"][0]["start"] in (_minute("2019-10-16T10:08Z"),
                                           _minute("2019-10-16T10:18Z"))
  e4_start = pd.Timestamp(1560279835, unit="s", tz="UTC").floor("min")  # HR.csv row 1
  assert windows["empatica_e4"][0]["start"] <= _minute(e4_start.isoformat())
  assert windows["empatica_e4"][0]["start"] >= _minute("2019-06-11T19:03Z")


def test_unknown_file_fails_naming_it_before_anything_is_written(tmp_path, raw):
  bad = tmp_path / "mystery.csv"
  bad.write_text("when,what\n1,2\n")
  out = tmp_path / "out"
  with pytest.raises(read.UnreadableFileError, match="mystery.csv"):
    main.run(raw.pipeline_args([str(bad)], str(out)))
  assert not out.exists()
  with pytest.raises(read.UnreadableFileError, match="info.txt"):
    devices.plan_inputs([f"{DATA}/empatica_e4/info.txt"])


def test_forced_format_skips_detection():
  plan = devices.plan_inputs([f"{DATA}/garmin/data.csv"], "garmin")
  assert plan.exports == [("garmin", f"{DATA}/garmin", (f"{DATA}/garmin/data.csv",))]
  assert devices.plan_inputs([f"{DATA}/garmin/data.csv"], "csv").canonical == [
      f"{DATA}/garmin/data.csv"]
