"""Fitbit / Fitabase adapters on the real excerpts and on small files with each quirk."""

import numpy as np
import pandas as pd
import pytest

from pipeline.sources import SourceError, read_source

NY = "America/New_York"


def ts(text):
  return pd.Timestamp(text, tz="UTC")


def fitabase(data_dir):
  return sorted(str(p) for p in (data_dir / "fitbit_minute").glob("name*.csv"))


def test_fitabase_excerpt_counts_reconcile(data_dir):
  r = read_source(fitabase(data_dir), tz=NY)
  assert r.format == "fitbit_minute"
  # 2280 + 120 step rows, 4 wear rows, 240 METs/calories rows.
  assert r.entries_read == 2644
  assert r.counts()["readings"] == 2220
  assert r.counts()["extras.not_an_lsm_feature"] == 240
  assert r.counts()["dead_letter.nonexistent_local_time"] == 120
  assert r.counts()["dead_letter.off_wrist"] == 60
  assert r.entries_used == 2220 + 4
  assert set(r.extras["field"]) == {"METs", "Calories"}
  assert r.provided == {"name4": frozenset({"steps"}), "name5": frozenset({"steps"})}
  assert set(r.readings["feature"]) == {"steps"}


def test_fitabase_spring_forward_lands_on_consecutive_utc_minutes(data_dir):
  r = read_source(fitabase(data_dir), tz=NY)
  name4 = r.readings[r.readings["subject_id"] == "name4"].set_index("timestamp")["value"]
  march = name4[name4.index < ts("2023-04-01")]
  # 3/11 12:00 PM EST to 3/12 1:59 AM EST, then 3:00 AM EDT to 11:59 PM EDT: 2100
  # minutes with no hole and no overlap in UTC.
  assert list(march.index) == list(pd.date_range("2023-03-11 17:00", periods=2100,
                                                 freq="min", tz="UTC"))
  assert march[ts("2023-03-12 06:00")] == 34.0  # '3/12/2023 1:00:00 AM,34'
  dead = r.dead_letter[r.dead_letter["reason"] == "nonexistent_local_time"]
  assert len(dead) == 120 and dead["timestamp"].isna().all()


def test_fitabase_off_wrist_days_from_wear_file(data_dir):
  r = read_source(fitabase(data_dir), tz=NY)
  name4 = r.readings[r.readings["subject_id"] == "name4"]
  may = name4[name4["timestamp"] >= ts("2023-05-01")]
  # 5/17 (worn 1358 min) 11 PM EDT kept; 5/18 (worn 0 min) dead-lettered.
  assert may["timestamp"].min() == ts("2023-05-18 03:00")
  assert may["timestamp"].max() == ts("2023-05-18 03:59")
  off = r.dead_letter[r.dead_letter["reason"] == "off_wrist"]
  assert off["timestamp"].min() == ts("2023-05-18 04:00")


def test_id_column_fall_back_hour_and_bad_rows(write):
  path = write("export/minuteStepsNarrow.csv", "\n".join([
      "Id,ActivityMinute,Steps",
      "a,11/5/2023 1:58:00 AM,1",
      "a,11/5/2023 1:59:00 AM,2",
      "a,11/5/2023 1:00:00 AM,3",    # the clock went back: second 1 AM (EST)
      "a,11/5/2023 1:01:00 AM,4",
      "b,11/5/2023 1:30:00 AM,5",    # listed once: first occurrence (EDT)
      "b,11/5/2023 13:30:00 PM,6",   # bad timestamp
      "b,11/5/2023 1:32:00 AM,x",    # non-numeric
      ",11/5/2023 1:33:00 AM,7",     # missing subject
      "b,11/5/2023 1:34:00 AM,8,9",  # malformed
  ]) + "\n")
  r = read_source([path], tz=NY)
  got = {(s, t.strftime("%H:%M")): v for s, t, v in
         r.readings[["subject_id", "timestamp", "value"]].itertuples(index=False)}
  assert got == {("a", "05:58"): 1, ("a", "05:59"): 2, ("a", "06:00"): 3,
                 ("a", "06:01"): 4, ("b", "05:30"): 5}
  reasons = dict(zip(r.dead_letter["row"], r.dead_letter["reason"]))
  assert reasons == {6: "bad_timestamp", 7: "non_numeric", 8: "missing_subject",
                     9: "malformed_row"}
  # Counted over every parsed timestamp, including the rows dead-lettered for their value.
  assert r.notes == {"ambiguous_local_time_first": 5, "ambiguous_local_time_second": 2}


def test_local_time_needs_a_timezone(data_dir):
  with pytest.raises(SourceError, match="timezone"):
    read_source(fitabase(data_dir))


def test_file_without_subject_in_name_or_column(write):
  path = write("steps.csv", "ActivityMinute,Steps\n11/26/2021 12:00:00 AM,0\n")
  with pytest.raises(SourceError, match="subject_id"):
    read_source([path], tz=NY)
  r = read_source([path], tz=NY, subject_id="p1")
  assert r.readings["subject_id"].tolist() == ["p1"]


def test_heartrate_seconds_excerpt_is_the_minute_mean(data_dir):
  path = str(data_dir / "fitbit_heartrate_seconds" / "heartrate_seconds_2users.csv")
  r = read_source([path], tz="America/Chicago")
  assert r.format == "fitbit_heartrate_seconds"
  raw = pd.read_csv(path)
  assert r.entries_read == r.entries_used == len(raw)
  # Independent computation: local minute, CDT is UTC-5 in April 2016.
  raw["minute"] = pd.to_datetime(raw["time"]).dt.floor("min") + pd.Timedelta(hours=5)
  expected = raw.groupby(["id", "minute"])["hr"].mean()
  got = r.readings.assign(id=r.readings["subject_id"].astype(np.int64),
                          minute=r.readings["timestamp"].dt.tz_localize(None)
                          ).set_index(["id", "minute"])["value"]
  pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(),
                                 check_names=False, check_index_type=False)
  assert r.provided == {"2022484408": frozenset({"HR"}), "2026352035": frozenset({"HR"})}


def test_heartrate_kaggle_style_across_fall_back(write):
  lines = ["Id,Time,Value"]
  # 1:59:50 EDT, the repeated 1 AM hour in EST, and one impossible reading.
  lines += ["7,11/5/2023 1:59:50 AM,60", "7,11/5/2023 1:00:05 AM,80",
            "7,11/5/2023 1:00:35 AM,90", "7,11/5/2023 1:00:45 AM,0"]
  r = read_source([write("heartrate_seconds_merged.csv", "\n".join(lines) + "\n")], tz=NY)
  got = dict(zip(r.readings["timestamp"].dt.strftime("%H:%M"), r.readings["value"]))
  assert got == {"05:59": 60.0, "06:00": 85.0}
  assert r.dead_letter["reason"].tolist() == ["out_of_range"]


# ------------------------------------------------------- issue 13: order, duplicates

def hourly_hr(r):
  hr = r.readings
  return hr.groupby(hr["timestamp"].dt.strftime("%H"))["value"].agg(["mean", "count"])


def test_dst_fall_back_newest_first_reads_like_oldest_first(data_dir):
  """Case dst_fallback_newest_first: the same samples listed newest first give the
  same readings as the oldest-first file, each pass on its true UTC hour."""
  cases = data_dir / "cases"
  oldest = read_source([str(cases / "dst_fallback_heartrate_seconds" /
                            "heartrate_seconds_merged.csv")], tz="America/Chicago")
  newest = read_source([str(cases / "dst_fallback_newest_first" /
                            "heartrate_seconds_newest_first.csv")], tz="America/Chicago")
  for r in (oldest, newest):
    got = hourly_hr(r)
    assert got["mean"].to_dict() == {"05": 70.0, "06": 60.0, "07": 90.0, "08": 75.0}
    assert got["count"].tolist() == [60] * 4
    assert r.notes == {"ambiguous_local_time_first": 360, "ambiguous_local_time_second": 360}
    assert r.dead_letter.empty
  key = ["timestamp", "feature", "value"]
  pd.testing.assert_frame_equal(oldest.readings[key], newest.readings[key])


def test_dst_fall_back_shuffled_is_dead_lettered_not_merged(data_dir, write):
  path = data_dir / "cases" / "dst_fallback_heartrate_seconds" / "heartrate_seconds_merged.csv"
  lines = path.read_text().splitlines()
  body = [lines[1 + i] for i in np.random.default_rng(1).permutation(len(lines) - 1)]
  r = read_source([write("heartrate_seconds_shuffled.csv", "\n".join([lines[0]] + body))],
                  tz="America/Chicago")
  dead = r.dead_letter
  assert set(dead["reason"]) == {"ambiguous_local_time"}
  assert len(dead) == 720  # both passes of the 1 AM hour, 10 s samples
  assert dead["raw"].isin(["60", "90"]).all() and dead["timestamp"].isna().all()
  # Outside the hour, the values stay right; nothing lands on the hour's UTC minutes.
  assert hourly_hr(r)["mean"].to_dict() == {"05": 70.0, "08": 75.0}
  assert r.counts()["dead_letter.ambiguous_local_time"] == 720


def test_repeated_minute_in_one_file_non_zero_wins(write):
  path = write("s1_minuteStepsNarrow_20230105_20230105.csv", "\n".join([
      "ActivityMinute,Steps",
      "1/5/2023 11:00:00 AM,0",
      "1/5/2023 11:01:00 AM,5",
      "1/5/2023 11:00:00 AM,17",  # Fitbit's padded 0, then the real count
      "1/5/2023 11:01:00 AM,9",   # a repeat of a non-zero: the first stays
      "1/5/2023 11:02:00 AM,0",
      "1/5/2023 11:02:00 AM,0",
  ]) + "\n")
  r = read_source([path], tz=NY)
  got = r.readings.set_index(r.readings["timestamp"].dt.strftime("%H:%M"))
  assert got["value"].to_dict() == {"16:00": 17.0, "16:01": 5.0, "16:02": 0.0}
  assert got["row"].to_dict() == {"16:00": 3, "16:01": 2, "16:02": 5}
  assert r.dead_letter[["row", "raw", "reason"]].values.tolist() == [
      [1, "0", "duplicate"], [4, "9", "duplicate"], [6, "0", "duplicate"]]
  r.check_accounting()


def test_overlapping_exports_first_file_wins_and_names_the_row(data_dir):
  """Case fitabase_overlapping_exports: the shared hour once; the second file's 60
  rows dead-lettered with their own file, data row and raw cell."""
  folder = data_dir / "cases" / "fitabase_overlapping_exports"
  first, second = sorted(str(p) for p in folder.glob("*.csv"))
  r = read_source([second, first], tz=NY)  # path order decides, not argument order
  assert len(r.readings) == 180 and not r.readings["timestamp"].duplicated().any()
  assert set(r.readings.loc[r.readings["timestamp"] < ts("2023-01-05 18:00"), "source"]) == {
      first}
  dead = r.dead_letter
  assert set(dead["reason"]) == {"duplicate"} and set(dead["source"]) == {second}
  assert dead["row"].tolist() == list(range(1, 61))
  raw = pd.read_csv(second, dtype=str)["Steps"][:60]
  assert dead["raw"].tolist() == raw.tolist()


def test_readings_name_their_file_and_row(data_dir):
  r = read_source([str(data_dir / "fitbit_heartrate_seconds" / "heartrate_seconds_2users.csv")],
                  tz=NY)
  hr = pd.read_csv(data_dir / "fitbit_heartrate_seconds" / "heartrate_seconds_2users.csv")
  local = pd.to_datetime(hr["time"]).dt.tz_localize(NY).dt.tz_convert("UTC").dt.floor("min")
  first_row = {(str(s), t): i + 1 for i, (s, t) in
               reversed(list(enumerate(zip(hr["id"], local))))}
  got = {(s, t): row for s, t, row in r.readings[["subject_id", "timestamp", "row"]].itertuples(
      index=False)}
  assert got == {k: first_row[k] for k in got}
  assert set(r.readings["source"]) == {
      str(data_dir / "fitbit_heartrate_seconds" / "heartrate_seconds_2users.csv")}
