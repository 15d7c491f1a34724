"""Google Takeout Fitbit adapter: the shared case by hand, a synthetic week with DST
and overlapping day files, each quirk on a small file, and detection from content."""

import datetime as dt
import gzip
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from pipeline.sources import SourceError, common, registry
from pipeline.sources import takeout_fitbit as tf

NY = "America/New_York"
CASE = pathlib.Path(__file__).resolve().parents[2] / "data" / "cases" / "takeout_fitbit_json"


def day_file(folder, name, records):
  """A day file in Fitbit's pretty-printed style; returns its path."""
  path = pathlib.Path(folder) / name
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(records, indent=2, separators=(",", " : ")))
  return str(path)


def hr(when, bpm, confidence=2):
  return {"dateTime": when, "value": {"bpm": bpm, "confidence": confidence}}


def steps(when, n):
  return {"dateTime": when, "value": str(n)}


def read(paths, **kw):
  r = tf.read_takeout_fitbit(sorted(map(str, paths)), tz=kw.pop("tz", NY), **kw)
  r.check_accounting()
  return r


def series(r, feature):
  got = r.readings[r.readings["feature"] == feature]
  return got.set_index("timestamp")["value"].sort_index()


def test_case_minute_by_minute_against_a_hand_computation():
  r = read(CASE.glob("*.json"), subject_id="u01")
  hand_hr, hand_steps = {}, {}
  # 04/24/20 is EDT (UTC-4): local 07:mm is 11:mm UTC.
  for rec in json.loads((CASE / "heart_rate-2020-04-24.json").read_text()):
    local = dt.datetime.strptime(rec["dateTime"], "%m/%d/%y %H:%M:%S")
    minute = pd.Timestamp(local.replace(second=0) + dt.timedelta(hours=4), tz="UTC")
    hand_hr.setdefault(minute, []).append(rec["value"]["bpm"])
  for rec in json.loads((CASE / "steps-2020-04-24.json").read_text()):
    local = dt.datetime.strptime(rec["dateTime"], "%m/%d/%y %H:%M:%S")
    hand_steps[pd.Timestamp(local + dt.timedelta(hours=4), tz="UTC")] = int(rec["value"])
  got_hr, got_steps = series(r, "HR"), series(r, "steps")
  assert len(got_hr) == len(hand_hr) == 60 and len(got_steps) == len(hand_steps) == 60
  for minute, bpm in hand_hr.items():
    assert got_hr[minute] == pytest.approx(np.mean(bpm))
  assert got_hr[pd.Timestamp("2020-04-24 11:01", tz="UTC")] == pytest.approx(403 / 6)
  assert got_steps.to_dict() == {k: float(v) for k, v in hand_steps.items()}
  assert r.entries_read == 420 and r.entries_used == 420
  assert list(r.readings.columns) == list(common.READING_COLUMNS)
  assert r.provided == {"u01": frozenset({"HR", "steps"})}
  assert set(r.readings["subject_id"]) == {"u01"}
  first = r.readings[r.readings["feature"] == "HR"].sort_values("timestamp").iloc[1]
  assert (first["row"], pathlib.Path(first["source"]).name) == (7, "heart_rate-2020-04-24.json")
  assert r.notes["absent.altitude"] == 1  # the case has no altitude files: noted, not refused
  assert "absent.steps" not in r.notes and "files.altitude" not in r.notes


def test_confidence_zero_is_dead_lettered_before_the_mean(tmp_path):
  path = day_file(tmp_path, "heart_rate-2020-04-24.json", [
      hr("04/24/20 07:00:00", 60), hr("04/24/20 07:00:10", 200, confidence=0),
      hr("04/24/20 07:00:20", 70, confidence=1)])
  r = read([path])
  assert series(r, "HR").tolist() == [65.0]
  dead = r.dead_letter
  assert dead[["row", "reason", "raw", "field"]].values.tolist() == [
      [2, "low_confidence", "200", "heart_rate"]]
  assert dead["timestamp"].iloc[0] == pd.Timestamp("2020-04-24 11:00:10", tz="UTC")
  assert r.counts()["dead_letter.low_confidence"] == 1
  assert "low_confidence" in common.ADAPTER_DEAD_LETTER_REASONS


def test_a_synthetic_week_across_the_fall_back_change(tmp_path, takeout_export):
  truth = takeout_export(tmp_path / "u07" / "Takeout" / "Fitbit" / "Global Export Data",
                               first_day="2026-10-29", days=7, hr_every_s=15)
  paths = sorted((tmp_path / "u07").rglob("*.json"))
  r = read(paths)
  assert set(r.provided) == {"u07"}
  beats = truth[(truth["kind"] == "heart_rate") & (truth["confidence"] > 0)]
  expected_hr = beats.groupby(beats["utc"].dt.floor("min"))["value"].mean()
  got_hr = series(r, "HR")
  # Every UTC minute once, 01:00-01:59 of Nov 1 on both passes (05:xx and 06:xx UTC).
  pd.testing.assert_series_equal(got_hr, expected_hr, check_names=False,
                                 check_index_type=False, check_freq=False)
  assert pd.Timestamp("2026-11-01 05:30", tz="UTC") in got_hr.index
  assert pd.Timestamp("2026-11-01 06:30", tz="UTC") in got_hr.index
  assert r.notes["ambiguous_local_time_first"] == r.notes["ambiguous_local_time_second"] > 0
  expected_steps = truth[truth["kind"] == "steps"].set_index("utc")["value"]
  pd.testing.assert_series_equal(series(r, "steps"), expected_steps, check_names=False,
                                 check_index_type=False, check_freq=False)
  repeated = truth[truth["copies"] == 2]
  usable = repeated[(repeated["kind"] == "steps") | (repeated["confidence"] > 0)]
  usable = usable[usable["kind"] != "altitude"]
  assert r.counts()["dead_letter.duplicate"] == len(usable) > 0
  altitude = truth[truth["kind"] == "altitude"]
  assert r.counts()["extras.not_an_lsm_feature"] == altitude["copies"].sum()
  assert r.notes["files.altitude"] == 7 and r.notes["records.altitude"] == altitude["copies"].sum()
  assert not any(k.startswith("absent.") for k in r.notes)
  assert r.entries_read == truth["copies"].sum()


def test_spring_forward_days_pass_through_without_a_hole(tmp_path, takeout_export):
  truth = takeout_export(tmp_path / "x", first_day="2026-03-07", days=2,
                               hr_every_s=60, overlap_min=0)
  r = read((tmp_path / "x").glob("*.json"))
  got = series(r, "steps")
  assert list(got.index) == list(pd.date_range("2026-03-07 05:00", "2026-03-09 03:59",
                                               freq="min", tz="UTC"))
  assert len(truth[truth["kind"] == "steps"]) == 2 * 1440 - 60


def test_a_nonexistent_local_time_is_dead_lettered(tmp_path):
  path = day_file(tmp_path, "steps-2026-03-08.json",
                  [steps("03/08/26 01:59:00", 3), steps("03/08/26 02:30:00", 4),
                   steps("03/08/26 03:00:00", 5)])
  r = read([path])
  assert series(r, "steps").to_dict() == {
      pd.Timestamp("2026-03-08 06:59", tz="UTC"): 3.0,
      pd.Timestamp("2026-03-08 07:00", tz="UTC"): 5.0}
  assert r.dead_letter[["row", "reason"]].values.tolist() == [[2, "nonexistent_local_time"]]


def test_repeats_first_nonzero_wins_in_path_order(tmp_path):
  a = day_file(tmp_path, "steps-2026-05-01.json",
               [steps("05/01/26 23:59:00", 0), steps("05/02/26 00:00:00", 5)])
  b = day_file(tmp_path, "steps-2026-05-02.json",
               [steps("05/01/26 23:59:00", 17), steps("05/02/26 00:00:00", 9)])
  h = day_file(tmp_path, "heart_rate-2026-05-02.json",
               [hr("05/02/26 00:00:00", 60), hr("05/02/26 00:00:00", 90),
                hr("05/02/26 00:00:05", 70)])
  r = read([b, h, a])
  assert series(r, "steps").tolist() == [17.0, 5.0]  # 0 then 17: 17; 5 then 9: 5
  assert series(r, "HR").tolist() == [65.0]  # the repeated 00:00:00 sample counts once
  dead = r.dead_letter.sort_values(["source", "row"])
  assert [(pathlib.Path(s).name, row, reason) for s, row, reason in
          dead[["source", "row", "reason"]].values] == [
      ("heart_rate-2026-05-02.json", 2, "duplicate"),
      ("steps-2026-05-01.json", 1, "duplicate"),
      ("steps-2026-05-02.json", 2, "duplicate")]


def test_bad_records_are_dead_lettered_with_their_reason(tmp_path):
  path = day_file(tmp_path, "heart_rate-2026-05-02.json", [
      hr("05/02/26 00:00:00", 60), "not a record", hr("2026-05-02 00:00:10", 61),
      hr("05/02/26 00:00:20", "x"), hr("05/02/26 00:00:30", 400),
      {"dateTime": "05/02/26 00:00:40", "value": {"confidence": 2}}])
  r = read([path])
  assert series(r, "HR").tolist() == [60.0]
  assert r.dead_letter[["row", "reason"]].values.tolist() == [
      [2, "malformed_row"], [3, "bad_timestamp"], [4, "non_numeric"], [5, "out_of_range"],
      [6, "non_numeric"]]


def test_other_kinds_are_extras_counted_per_kind(tmp_path):
  paths = [day_file(tmp_path, "altitude-2026-05-02.json", [steps("05/02/26 08:00:00", 10)]),
           day_file(tmp_path, "distance-2026-05-02.json",
                    [steps("05/02/26 08:00:00", 5), steps("05/02/26 08:01:00", 7)]),
           day_file(tmp_path, "steps-2026-05-02.json", [steps("05/02/26 08:00:00", 12)])]
  summary = tmp_path / "time_in_heart_rate_zones-2026-05-02.json"
  summary.write_text('{"dateTime": "05/02/26 00:00:00", "value": {"valuesInZones": {}}}')
  r = read(paths + [str(summary)], subject_id="u01")
  assert sorted(r.extras[["field", "n_rows"]].values.tolist()) == [
      ["altitude", 1], ["distance", 2], ["time_in_heart_rate_zones", 1]]
  assert set(r.extras["reason"]) == {"not_an_lsm_feature"}
  assert (r.notes["records.distance"], r.notes["records.altitude"]) == (2, 1)
  assert r.entries_read == 5 and r.entries_used == 1


def test_partial_export_empty_and_missing_files(tmp_path):
  s = day_file(tmp_path, "steps-2026-05-02.json", [steps("05/02/26 08:00:00", 12)])
  empty = tmp_path / "altitude-2026-05-02.json"
  empty.write_text("")
  none = day_file(tmp_path, "heart_rate-2026-05-03.json", [])
  r = read([s, str(empty), none], subject_id="u01")
  assert series(r, "steps").tolist() == [12.0]
  assert (r.notes["files_empty"], r.notes["files.altitude"], r.notes["files.heart_rate"]) == (
      2, 1, 1)
  assert (r.notes["absent.altitude"], r.notes["absent.heart_rate"]) == (1, 1)
  assert "absent.steps" not in r.notes
  assert r.provided == {"u01": frozenset({"steps"})}


def test_kind_and_content_must_agree(tmp_path):
  path = day_file(tmp_path, "heart_rate-2026-05-02.json",
                  [hr("05/02/26 00:00:00", 60), steps("05/02/26 00:00:05", 61)])
  with pytest.raises(SourceError, match=r"heart_rate-2026-05-02.json: record 2: .*bpm"):
    read([path])
  path = day_file(tmp_path, "steps-2026-05-02.json", [hr("05/02/26 00:00:00", 60)])
  with pytest.raises(SourceError, match=r"steps-2026-05-02.json: record 1: .*count"):
    read([path])


def test_not_a_json_array_and_tz_required(tmp_path):
  path = tmp_path / "steps-2026-05-02.json"
  path.write_text('[{"dateTime" : "05/02/26 00:00:00", "value" : "1"},')
  with pytest.raises(SourceError, match=r"steps-2026-05-02.json: not a JSON array"):
    read([str(path)])
  path.write_text('{"dateTime" : "05/02/26 00:00:00", "value" : "1"}')
  with pytest.raises(SourceError, match=r"steps-2026-05-02.json: expected a JSON array"):
    read([str(path)])
  good = day_file(tmp_path, "steps-2026-05-03.json", [steps("05/03/26 00:00:00", 1)])
  with pytest.raises(SourceError, match="local time without an offset"):
    tf.read_takeout_fitbit([good], tz=None)


def test_gzipped_day_files_are_read(tmp_path):
  path = tmp_path / "steps-2026-05-02.json.gz"
  path.write_bytes(gzip.compress(json.dumps([steps("05/02/26 08:00:00", 12)]).encode()))
  assert series(read([str(path)]), "steps").tolist() == [12.0]


def test_subject_from_the_folder_above_the_takeout_layout(tmp_path):
  folder = tmp_path / "u09" / "Takeout" / "Fitbit" / "Global Export Data"
  path = day_file(folder, "steps-2026-05-02.json", [steps("05/02/26 08:00:00", 12)])
  assert set(read([path]).provided) == {"u09"}
  assert set(read([path], subject_id="p1").provided) == {"p1"}
  assert set(read([path], subject_id_pattern=r"/(u\d+)/").provided) == {"u09"}
  old = day_file(tmp_path / "Jane" / "Physical Activity", "steps-2026-05-02.json",
                 [steps("05/02/26 08:00:00", 12)])
  assert set(read([old]).provided) == {"Jane"}


def sniff(path):
  return registry.Sniff(str(path), common.read_head(str(path), common.local_open, 8))


def test_detection_from_content(tmp_path):
  pretty_hr = day_file(tmp_path, "heart_rate-2026-05-02.json", [hr("05/02/26 00:00:00", 60)])
  pretty_steps = day_file(tmp_path, "steps-2026-05-02.json", [steps("05/02/26 08:00:00", 1)])
  one_line = tmp_path / "altitude-2026-05-02.json"
  one_line.write_text(json.dumps([steps("05/02/26 08:00:00", 10)]))
  assert all(tf.detect(sniff(p)) for p in (pretty_hr, pretty_steps, one_line))
  assert all(tf.detect(sniff(p)) for p in CASE.glob("*.json"))
  # The name's kind must agree with the content.
  wrong_hr = day_file(tmp_path / "w", "heart_rate-2026-05-02.json",
                      [steps("05/02/26 08:00:00", 1)])
  wrong_steps = day_file(tmp_path / "w", "steps-2026-05-02.json", [hr("05/02/26 00:00:00", 60)])
  assert not tf.detect(sniff(wrong_hr)) and not tf.detect(sniff(wrong_steps))
  # Not Fitbit's shape: a sleep log, canonical JSON lines, a name without content.
  sleep = day_file(tmp_path, "sleep-2026-05-02.json", [{"logId": 1, "dateOfSleep": "2026-05-02"}])
  lines = tmp_path / "steps-2026-05-04.json"
  lines.write_text('{"subject_id": "a", "timestamp": "2026-05-02T00:00:00Z", '
                   '"feature": "steps", "value": 1}\n')
  iso = day_file(tmp_path, "steps-2026-05-05.json", [steps("2026-05-05 08:00:00", 1)])
  assert not any(tf.detect(sniff(p)) for p in (sleep, lines, iso))
  assert tf.detect(sniff(day_file(tmp_path, "altitude-2026-05-06.json", [])))
  assert not tf.detect(sniff(day_file(tmp_path, "export.json", [])))


def test_the_device_is_registered():
  device = registry.devices()["takeout_fitbit"]
  assert device.needs_tz and device.read is tf.read_takeout_fitbit
  assert device.folder_file("heart_rate-2020-04-24.json")
  assert not device.folder_file("Profile.csv")


def test_parse_times_is_strict_about_the_layout():
  got = tf.parse_times(["04/24/20 07:00:05", "02/29/20 23:59:59", "02/30/20 00:00:00",
                        "04/24/2020 07:00:05", "04/24/20 07:00:05Z", "13/01/20 00:00:00",
                        "04/24/20 24:00:00", "4/24/20 07:00:05", None, 5, ""])
  assert list(got[:2]) == [np.datetime64("2020-04-24T07:00:05"),
                           np.datetime64("2020-02-29T23:59:59")]
  assert np.isnat(got[2:]).all()
  assert got.dtype == np.dtype("datetime64[ns]")
  assert len(tf.parse_times([])) == 0
