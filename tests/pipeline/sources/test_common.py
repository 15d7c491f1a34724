"""The shared pieces: timezone rule, row splitting, value classification, accounting."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.sources import common

NY = common.parse_tz("America/New_York", "t")


def local(*texts):
  return pd.Series(pd.to_datetime(list(texts)))


def utc_strings(loc):
  return [None if pd.isna(t) else t.strftime("%Y-%m-%d %H:%M") for t in loc.utc]


def test_fixed_offsets():
  for tz, expected in (("+02:00", "2024-03-01 06:15"), ("-0500", "2024-03-01 13:15"),
                       ("UTC", "2024-03-01 08:15"), ("+05:45", "2024-03-01 02:30")):
    loc = common.localise(local("2024-03-01 08:15"), common.parse_tz(tz, "t"))
    assert utc_strings(loc) == [expected], tz


def test_spring_forward_gap_is_nonexistent_not_shifted():
  loc = common.localise(local("2023-03-12 01:59", "2023-03-12 02:30", "2023-03-12 03:00"),
                        NY)
  assert utc_strings(loc) == ["2023-03-12 06:59", None, "2023-03-12 07:00"]
  assert list(loc.nonexistent) == [False, True, False]


def test_fall_back_hour_listed_once_takes_first_occurrence():
  loc = common.localise(local("2023-11-05 00:59", "2023-11-05 01:30", "2023-11-05 02:00"),
                        NY)
  # 01:30 exists twice (EDT then EST); listed once it is the first, EDT (-4).
  assert utc_strings(loc) == ["2023-11-05 04:59", "2023-11-05 05:30", "2023-11-05 07:00"]
  assert (loc.ambiguous_first, loc.ambiguous_second) == (1, 0)


def test_fall_back_hour_listed_twice_lands_on_both_utc_hours():
  times = ["2023-11-05 01:00", "2023-11-05 01:59", "2023-11-05 01:00", "2023-11-05 01:59",
           "2023-11-05 02:00"]
  loc = common.localise(local(*times), NY)
  assert utc_strings(loc) == ["2023-11-05 05:00", "2023-11-05 05:59", "2023-11-05 06:00",
                              "2023-11-05 06:59", "2023-11-05 07:00"]
  assert (loc.ambiguous_first, loc.ambiguous_second) == (2, 2)


def test_fall_back_rule_is_per_group():
  # Subject b's first pass must not inherit subject a's second pass.
  times = ["2023-11-05 01:10", "2023-11-05 01:05", "2023-11-05 01:10"]
  loc = common.localise(local(*times), NY, group=np.array([0, 0, 1]))
  assert utc_strings(loc) == ["2023-11-05 05:10", "2023-11-05 06:05", "2023-11-05 05:10"]


FALL_BACK_TWICE = ["2023-11-05 00:58", "2023-11-05 00:59", "2023-11-05 01:00",
                   "2023-11-05 01:59", "2023-11-05 01:00", "2023-11-05 01:59",
                   "2023-11-05 02:00", "2023-11-05 02:01"]
FALL_BACK_UTC = ["2023-11-05 04:58", "2023-11-05 04:59", "2023-11-05 05:00",
                 "2023-11-05 05:59", "2023-11-05 06:00", "2023-11-05 06:59",
                 "2023-11-05 07:00", "2023-11-05 07:01"]


def test_fall_back_newest_first_mirrors_oldest_first():
  loc = common.localise(local(*FALL_BACK_TWICE[::-1]), NY)
  assert utc_strings(loc) == FALL_BACK_UTC[::-1]
  assert (loc.ambiguous_first, loc.ambiguous_second) == (2, 2)
  assert not loc.unresolved.any()


def test_fall_back_listed_once_newest_first_takes_first_pass():
  loc = common.localise(local("2023-11-05 02:00", "2023-11-05 01:30", "2023-11-05 01:10",
                              "2023-11-05 00:59"), NY)
  assert utc_strings(loc) == ["2023-11-05 07:00", "2023-11-05 05:30", "2023-11-05 05:10",
                              "2023-11-05 04:59"]


def test_fall_back_hour_order_cannot_tell_is_unresolved_not_merged():
  # Shuffled: the rows around the repeated hour are in no order; nothing can tell.
  minutes = pd.date_range("2023-11-05 00:00", "2023-11-05 02:59", freq="min")
  twice = minutes.append(minutes[60:120]).strftime("%Y-%m-%d %H:%M")
  shuffled = list(np.random.default_rng(0).permutation(twice))
  loc = common.localise(local(*shuffled), NY)
  amb = np.array([" 01:" in t for t in shuffled])
  assert list(loc.unresolved) == list(amb)
  assert loc.utc[amb].isna().all() and loc.utc[~amb].notna().all()
  assert (loc.ambiguous_first, loc.ambiguous_second) == (0, 0)
  # Only rows of the repeated hour, back and forth twice each way: unresolved.
  loc = common.localise(local("2023-11-05 01:10", "2023-11-05 01:05", "2023-11-05 01:20",
                              "2023-11-05 01:00", "2023-11-05 01:30"), NY)
  assert loc.unresolved.all()


def test_timezone_required_and_validated():
  with pytest.raises(common.SourceError, match="pass the recording's timezone"):
    common.parse_tz(None, "f.csv")
  with pytest.raises(common.SourceError, match="unknown timezone"):
    common.parse_tz("Mars/Olympus", "f.csv")
  assert common.parse_tz("+01:00", "f") == dt.timezone(dt.timedelta(hours=1))


def test_split_rows_numbers_rows_and_sets_aside_malformed():
  rows = common.split_rows("a,b\n 1, 2\n\n3\n4,5,6\n7,8\n", "f.csv")
  assert rows.header == ["a", "b"]
  assert rows.n_rows == 4
  assert list(rows.fields.index) == [1, 4]
  assert rows.fields.loc[1].tolist() == ["1", "2"]
  assert rows.malformed[["row", "raw", "reason"]].values.tolist() == [
      [2, "3", "malformed_row"], [3, "4,5,6", "malformed_row"]]


def test_classify_values():
  values, reason = common.classify_values(pd.Series(["1.5", "abc", "nan", "-inf", ""]))
  assert values[0] == 1.5
  assert list(reason) == ["", "non_numeric", "non_finite", "non_finite", "non_numeric"]


def test_range_entries_compress_runs():
  out = common.range_entries("f", np.array([5, 1, 2, 3, 9]), "incomplete_minute")
  assert out[["row", "n_rows"]].values.tolist() == [[1, 3], [5, 1], [9, 1]]


def test_accounting_check_catches_a_lost_row():
  result = common.SourceResult("x", common.empty_readings(), common.empty_entries(),
                               common.entries("f", [1], "malformed_row"), {}, 3, 1)
  with pytest.raises(AssertionError, match="entries_read 3"):
    result.check_accounting()


def test_local_open_reads_gzip(tmp_path):
  import gzip
  path = tmp_path / "x.csv.gz"
  with gzip.open(path, "wt") as f:
    f.write("id,time,hr\n1,2016-04-12 11:21:00,97\n")
  assert common.read_head(str(path), common.local_open, 1) == ["id,time,hr"]
  assert common.read_text(str(path), common.local_open).endswith("97\n")


def test_parse_local_times_us_style():
  got = common.parse_local_times(pd.Series([
      "11/26/2021 12:00:00 AM", "3/12/2023 2:05:07 PM", "12/31/2023 12:59:59 PM",
      "11/5/2023 13:30:00 PM", "2/30/2023 1:00:00 AM", "2023-03-12 01:00:00"]))
  assert [None if pd.isna(t) else str(t) for t in got] == [
      "2021-11-26 00:00:00", "2023-03-12 14:05:07", "2023-12-31 12:59:59", None, None, None]


def test_parse_local_times_iso_style():
  got = common.parse_local_times(pd.Series(["2016-04-12 11:21:05", "4/12/2016 7:21:00 AM"]))
  assert str(got[0]) == "2016-04-12 11:21:05" and pd.isna(got[1])


def test_provided_mask_in_lsm_order():
  from schemas.features import FEATURE_NAMES
  mask = common.provided_mask({"HR", "steps"})
  assert mask.shape == (26,) and mask.sum() == 2
  assert [FEATURE_NAMES[i] for i in np.flatnonzero(mask)] == ["HR", "steps"]


def test_subject_of_one_rule():
  of = common.subject_of
  assert of("/d/p01/1600000000_A01B2C/HR.csv", "folder") == "p01"
  assert of("gs://b/p01/1600000000_A01B2C/HR.csv", "folder") == "p01"
  assert of("/d/garmin_p7/data.csv", "folder") == "garmin_p7"
  assert of("/d/x/name1_minuteStepsNarrow_2023.csv", "file") == "name1"
  assert of("/d/x/name1_minuteStepsNarrow_2023.csv", "file", subject_id="s") == "s"
  assert of("/d/site/p02/a.csv", "folder", pattern=r"/(p\d+)/") == "p02"
  assert of("/d/site/p02/a.csv", "folder", pattern=r"(?P<site>\w+)/(?P<subject>p\d+)") == "p02"
  with pytest.raises(common.SourceError, match=r"/d/a\.csv: --subject_id_pattern"):
    of("/d/a.csv", "folder", pattern=r"/(p\d+)/")
  with pytest.raises(common.SourceError, match="file name"):
    of("/d/steps.csv", "file")


def test_one_export_one_subject():
  with pytest.raises(common.SourceError, match="names two subjects"):
    common.one_subject(["/d/p1/a.csv", "/d/p2/b.csv"], "folder", pattern=r"/(p\d)/")
