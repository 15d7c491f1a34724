"""Garmin event stream and raw accelerometer adapter on the real excerpt."""

import numpy as np
import pandas as pd
import pytest

from pipeline.sources import read_source


@pytest.fixture
def garmin(data_dir):
  return read_source([str(data_dir / "garmin" / "data.csv"),
                      str(data_dir / "garmin" / "acc.csv")], subject_id="g1")


def events(path):
  df = pd.read_csv(path, sep=";", header=None, names=["time", "type", "value"])
  df["time"] = pd.to_datetime(df["time"], format="ISO8601", utc=True)
  return df


def test_counts_reconcile_and_extras(garmin, data_dir):
  raw = events(data_dir / "garmin" / "data.csv")
  assert garmin.entries_read == len(raw) + 2300
  unmapped = raw[~raw["type"].isin(["HEART_RATE", "HEART_RATE_VARIABILITY", "STEPS",
                                    "ASCENT"])]
  assert len(garmin.extras) == len(unmapped) == 115
  assert garmin.extras["field"].value_counts().to_dict() == (
      unmapped["type"].value_counts().to_dict())
  assert (garmin.extras["reason"] == "not_an_lsm_feature").all()


def test_feature_presence(garmin):
  feats = garmin.provided["g1"]
  assert {"HR", "steps", "altim_std", "rmssd_percentile_0595", "log_energy"} <= feats
  assert not feats & {"eda_level_real", "wrist_temperatures", "sleep_coefficient"}
  assert set(garmin.readings["feature"]) <= feats


def test_hr_is_the_minute_mean_in_utc(garmin, data_dir):
  raw = events(data_dir / "garmin" / "data.csv")
  hr = raw[raw["type"] == "HEART_RATE"]
  hr = hr[hr["value"].between(20, 250)]
  expected = hr.groupby(hr["time"].dt.floor("min"))["value"].mean()
  got = garmin.readings[garmin.readings["feature"] == "HR"].set_index("timestamp")["value"]
  pd.testing.assert_series_equal(got.sort_index(), expected, check_names=False,
                                 check_index_type=False, check_freq=False)
  assert got.index.min() == pd.Timestamp("2019-10-16 10:09", tz="UTC")  # 12:09 +02:00


def test_steps_come_from_the_counter_not_the_accelerometer(garmin):
  steps = garmin.readings[garmin.readings["feature"] == "steps"].set_index("timestamp")
  # Counter 299 at 12:08:58 and still 299 at 12:18:13 (+02:00): 12:09..12:17 had none.
  quiet = steps.loc[pd.Timestamp("2019-10-16 10:09", tz="UTC"):
                    pd.Timestamp("2019-10-16 10:17", tz="UTC"), "value"]
  assert len(quiet) == 9 and (quiet == 0).all()


def test_accelerometer_gap_is_dead_lettered(garmin):
  acc = garmin.dead_letter[garmin.dead_letter["field"] == "ACC"]
  # 105 samples (12:09:01.7-12:09:05.9) precede a 9-minute gap in the recording:
  # too few to fill their minute. After the gap, 12:18 (43 s) and 12:19 qualify.
  assert acc[["row", "n_rows", "reason"]].values.tolist() == [[1, 105, "incomplete_minute"]]
  minutes = garmin.readings[garmin.readings["feature"] == "log_energy"]["timestamp"]
  assert minutes.dt.strftime("%H:%M").tolist() == ["10:18", "10:19"]


def test_offset_change_lands_on_the_right_utc_minutes(write):
  lines = ["2019-10-27T02:58:10+02:00;HEART_RATE;60",
           "2019-10-27T02:59:30+02:00;HEART_RATE;70",
           "2019-10-27T02:00:30+01:00;HEART_RATE;80",   # clocks went back: 01:00 UTC
           "2019-10-27T02:01:30+01:00;HEART_RATE;90",
           "2019-10-27T02:02:00+01:00;STRESS;-1"]
  r = read_source([write("g2/data.csv", "\n".join(lines) + "\n")])
  got = dict(zip(r.readings["timestamp"].dt.strftime("%H:%M"), r.readings["value"]))
  assert got == {"00:58": 60.0, "00:59": 70.0, "01:00": 80.0, "01:01": 90.0}
  assert r.provided == {"g2": frozenset({"HR"})}
  assert r.extras["raw"].tolist() == ["-1"]


def test_counter_reset_starts_a_new_baseline(write):
  lines = [f"2019-10-16T23:{m:02d}:00+02:00;STEPS;{v}" for m, v in
           ((57, 100), (58, 130), (59, 150))]
  lines += ["2019-10-17T00:00:30+02:00;STEPS;4", "2019-10-17T00:01:00+02:00;STEPS;10",
            "2019-10-17T00:02:00+02:00;STEPS;30"]
  r = read_source([write("g3/data.csv", "\n".join(lines) + "\n")])
  got = dict(zip(r.readings["timestamp"].dt.strftime("%H:%M"), r.readings["value"]))
  assert got == {"21:57": 30.0, "21:58": 20.0, "22:01": 20.0}
  assert dict(zip(r.dead_letter["row"], r.dead_letter["reason"])) == {
      4: "counter_baseline"}
  np.testing.assert_equal(r.entries_used, 5)
