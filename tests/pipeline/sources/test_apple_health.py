"""Apple Health export.xml / export.zip adapter: values minute by minute, sources,
accounting, subject names and detection by content."""

import datetime as dt
import gzip
import math
import os
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from pipeline.sources import apple_health, common, registry

sys.path.insert(0, os.path.dirname(__file__))
from apple_health_export import (HK, PHONE, PHONE_DEVICE, WATCH, Rec, days,  # noqa: E402
                                 utc, write_export)

CASE = os.path.join(os.path.dirname(__file__), "..", "..", "data", "cases",
                    "apple_health_dates", "export.xml")
MIN = dt.timedelta(minutes=1)


def export(path, entries, *, dtd=True) -> str:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    write_export(f, entries, dtd=dtd)
  return str(path)


def sniff(path) -> registry.Sniff:
  with open(path, "rb") as f:
    magic = f.read(8)
  lines = [] if magic.startswith(b"PK") else common.read_head(path, common.local_open, 8)
  return registry.Sniff(str(path), lines, magic)


def series(result, feature) -> pd.Series:
  r = result.readings[result.readings["feature"] == feature]
  return r.set_index("timestamp")["value"].sort_index()


def at(*args) -> pd.Timestamp:
  return pd.Timestamp(dt.datetime(*args), tz="UTC")


# ------------------------------------------------------------------ the case file

def test_case_export_xml_gives_60_hr_minutes_in_utc():
  r = apple_health.read_apple_health([CASE])
  r.check_accounting()
  hr = series(r, "HR")
  assert len(hr) == 60 and r.entries_read == r.entries_used == 60
  # '2024-02-06 19:00:17 -0800' is 03:00 UTC the next day; values 72, 73, ...
  assert hr.index[0] == at(2024, 2, 7, 3, 0) and hr.index[-1] == at(2024, 2, 7, 3, 59)
  assert hr.iloc[:3].tolist() == [72.0, 73.0, 74.0]
  assert r.provided == {"apple_health_dates": frozenset({"HR"})}


# ------------------------------------------------------- hand-computed small export

def hand_export(tmp_path):
  """Every rule once, on 2024-03-10 around the spring-forward change (02:00 -0800)."""
  return [
      # 120 steps from 10:00:30 to 10:02:30 UTC: 30, 60, 30.
      Rec(f"{HK}StepCount", "120", utc(2024, 3, 9, 10, 0, 30), utc(2024, 3, 9, 10, 2, 30),
          unit="count"),
      # Across the DST change: 01:58 -0800 to 03:02 -0700 is 4 minutes: 10 each.
      Rec(f"{HK}StepCount", "40", utc(2024, 3, 10, 9, 58), utc(2024, 3, 10, 10, 2),
          unit="count"),
      Rec(f"{HK}HeartRate", "70", utc(2024, 3, 10, 9, 59, 30), unit="count/min"),
      Rec(f"{HK}HeartRate", "1.2", utc(2024, 3, 10, 10, 0, 30), unit="count/s"),  # 72
      Rec(f"{HK}HeartRate", "80", utc(2024, 3, 10, 10, 0, 50), unit="count/min"),
      # Phone 10:00-10:10 (100 steps), watch 10:03-10:05 (50): the watch wins 2 minutes.
      Rec(f"{HK}StepCount", "100", utc(2024, 3, 11, 10, 0), utc(2024, 3, 11, 10, 10),
          unit="count", source=PHONE, device=PHONE_DEVICE),
      Rec(f"{HK}StepCount", "50", utc(2024, 3, 11, 10, 3), utc(2024, 3, 11, 10, 5),
          unit="count"),
      # The phone alone in a minute the watch also covers entirely: lost.
      Rec(f"{HK}StepCount", "7", utc(2024, 3, 11, 10, 3, 10), utc(2024, 3, 11, 10, 3, 40),
          unit="count", source=PHONE, device=PHONE_DEVICE),
      Rec(f"{HK}AppleSleepingWristTemperature", "95", utc(2024, 3, 11, 12, 0),
          utc(2024, 3, 11, 12, 2), unit="degF"),                                 # 35 C
      Rec(f"{HK}HeartRateVariabilitySDNN", "0.045", utc(2024, 3, 11, 13, 0, 10),
          utc(2024, 3, 11, 13, 1, 10), unit="s"),                                # 45 ms
      Rec(f"{HK}RestingHeartRate", "55", utc(2024, 3, 11, 14, 0), unit="count/min"),
      Rec(f"{HK}HeartRate", "90", utc(2024, 3, 11, 15, 0), unit="count/min"),
      Rec(f"{HK}HeartRate", "90", utc(2024, 3, 11, 15, 0), unit="count/min"),    # duplicate
      Rec(f"{HK}HeartRate", "91", utc(2024, 3, 11, 15, 1), unit="count/h"),      # unit
      Rec(f"{HK}HeartRate", "n/a", utc(2024, 3, 11, 15, 2), unit="count/min"),   # value
      Rec(f"{HK}HeartRate", "400", utc(2024, 3, 11, 15, 3), unit="count/min"),   # range
      Rec(f"{HK}StepCount", "5", utc(2024, 3, 11, 15, 5), utc(2024, 3, 11, 15, 4),
          unit="count"),                                                          # end < start
      Rec(f"{HK}BodyMass", "60", utc(2024, 3, 11, 16, 0), unit="kg"),
      Rec(f"{HK}BodyMass", "60.2", utc(2024, 3, 12, 16, 0), unit="kg"),
      ' <ActivitySummary dateComponents="2024-03-11" activeEnergyBurned="420"/>\n',
  ]


@pytest.fixture
def hand(tmp_path):
  return export(tmp_path / "p07" / "apple_health_export" / "export.xml",
                hand_export(tmp_path))


def test_dates_are_written_with_the_offset_of_their_instant(hand):
  text = open(hand, encoding="utf-8").read()
  assert 'startDate="2024-03-10 01:58:00 -0800" endDate="2024-03-10 03:02:00 -0700"' in text


def test_hand_computed_minutes(hand):
  r = apple_health.read_apple_health([hand])
  r.check_accounting()
  steps = series(r, "steps")
  expected = {at(2024, 3, 9, 10, 0): 30, at(2024, 3, 9, 10, 1): 60, at(2024, 3, 9, 10, 2): 30}
  expected.update({at(2024, 3, 10, 9, 58 + k) if k < 2 else at(2024, 3, 10, 10, k - 2): 10
                   for k in range(4)})
  expected.update({at(2024, 3, 11, 10, k): 10 for k in range(10)})
  expected.update({at(2024, 3, 11, 10, 3): 25, at(2024, 3, 11, 10, 4): 25})
  assert steps.to_dict() == pytest.approx(expected)
  assert series(r, "HR").to_dict() == pytest.approx(
      {at(2024, 3, 10, 9, 59): 70, at(2024, 3, 10, 10, 0): 76, at(2024, 3, 11, 15, 0): 90})
  assert series(r, "wrist_temperatures").to_dict() == pytest.approx(
      {at(2024, 3, 11, 12, 0): 35.0, at(2024, 3, 11, 12, 1): 35.0})
  assert series(r, "sdnn_percentile_0595").to_dict() == pytest.approx(
      {at(2024, 3, 11, 13, 0): 45.0, at(2024, 3, 11, 13, 1): 45.0})
  assert series(r, "hr_at_rest_mean").to_dict() == {at(2024, 3, 11, 14, 0): 55.0}
  assert r.provided == {"p07": frozenset({"steps", "HR", "wrist_temperatures",
                                          "sdnn_percentile_0595", "hr_at_rest_mean"})}


def test_hand_export_dead_letters_and_extras(hand):
  r = apple_health.read_apple_health([hand])
  dead = r.dead_letter.set_index("row")["reason"].to_dict()
  # Rows count the entries (Records, the ActivitySummary) from 1.
  assert dead == {8: "overlapping_source", 13: "duplicate", 14: "unsupported_unit",
                  15: "non_numeric", 16: "out_of_range", 17: "bad_timestamp"}
  assert "line " in r.dead_letter.set_index("row").loc[14, "raw"]
  assert r.extras[["row", "n_rows", "field"]].values.tolist() == [
      [18, 2, f"{HK}BodyMass"], [20, 1, "ActivitySummary"]]
  assert (r.entries_read, r.entries_used) == (20, 11)


def test_option_prefers_the_phone(hand):
  r = apple_health.read_apple_health([hand], apple_health_sources=PHONE)
  r.check_accounting()
  steps = series(r, "steps")
  assert steps[at(2024, 3, 11, 10, 3)] == pytest.approx(17.0)  # both phone records
  assert steps[at(2024, 3, 11, 10, 4)] == pytest.approx(10.0)
  lost = r.dead_letter[r.dead_letter["reason"] == "overlapping_source"]
  assert lost["row"].tolist() == [7]


def test_source_ranks_default_rule():
  names = ["Zed’s iPhone", "Ann’s Apple Watch", "Strava", "Polar"]
  assert apple_health.source_ranks(names, {"Polar"}).tolist() == [3, 0, 2, 1]
  assert apple_health.source_ranks(names, set(), ["Strava"]).tolist() == [3, 1, 0, 2]


def test_minute_shares_end_on_a_boundary():
  rec, minute, share = apple_health.minute_shares(np.array([60.0, 130.0]),
                                                  np.array([180.0, 130.0]))
  assert rec.tolist() == [0, 0, 1] and minute.tolist() == [1, 2, 2]
  assert share.tolist() == pytest.approx([0.5, 0.5, 1.0])


# ------------------------------------------------------------------ a synthetic week

def reference(records: list[Rec], preferred=()) -> dict[tuple[str, pd.Timestamp], float]:
  """The module docstring's rules written out record by record, minute by minute."""
  feature_of = apple_health.TYPES
  cells: dict = {}
  seen = set()
  for rec in records:
    if not isinstance(rec, Rec) or rec.type not in feature_of:
      continue
    key = (rec.type, rec.source, rec.start, rec.end, rec.value)
    if key in seen:
      continue
    seen.add(key)
    f = feature_of[rec.type]
    t0 = rec.start.timestamp()
    t1 = (rec.end or rec.start).timestamp()
    m = math.floor(t0 / 60)
    while True:
      overlap = min(t1, (m + 1) * 60) - max(t0, m * 60)
      share = overlap / (t1 - t0) if t1 > t0 else 1.0
      cells.setdefault((f, m), []).append((rec.source, float(rec.value), share))
      m += 1
      if m * 60 >= t1:
        break
  out = {}
  for (f, m), items in cells.items():
    best = min(items, key=lambda i: (i[0] not in preferred, "Watch" not in i[0], i[0]))[0]
    mine = [(v, s) for src, v, s in items if src == best]
    value = (sum(v * s for v, s in mine) if f == "steps"
             else sum(v for v, _ in mine) / len(mine))
    out[(f, pd.Timestamp(m * 60, unit="s", tz="UTC"))] = value
  return out


@pytest.fixture(scope="module")
def week(tmp_path_factory):
  records = list(days(utc(2024, 3, 7, 8), 7))
  records += [r for r in records if isinstance(r, Rec)
              and r.type == f"{HK}HeartRate"][::50]  # 41 repeated records
  path = export(tmp_path_factory.mktemp("week") / "bob" / "apple_health_export" /
                "export.xml", records)
  return path, records


@pytest.mark.parametrize("block", [apple_health.BLOCK, 7])
def test_week_matches_the_reference_minute_by_minute(week, block, monkeypatch):
  """Also in blocks of 7 (record, minute) pairs: records straddle the blocks."""
  monkeypatch.setattr(apple_health, "BLOCK", block)
  path, records = week
  r = apple_health.read_apple_health([path])
  r.check_accounting()
  got = {(f, t): v for f, t, v in r.readings[["feature", "timestamp", "value"]]
         .itertuples(index=False)}
  want = reference(records)
  assert got.keys() == want.keys()
  assert [got[k] for k in want] == pytest.approx(list(want.values()))
  assert set(r.readings["subject_id"]) == {"bob"}


def test_week_hr_is_regular_across_the_dst_change(week):
  hr = series(apple_health.read_apple_health([week[0]]), "HR")
  assert len(hr) == 7 * 288
  assert (np.diff(hr.index.asi8) == 5 * 60 * 10**9).all()
  assert hr[at(2024, 3, 10, 9, 55)] == 60 + 23  # 01:55 -0800, 5 min before 03:00 -0700


def test_week_accounting_extras_and_duplicates(week):
  path, records = week
  r = apple_health.read_apple_health([path])
  assert r.entries_read == len(records)
  dead = r.dead_letter.groupby("reason")["n_rows"].sum().to_dict()
  assert dead["duplicate"] == 41
  # Phone 08:00-22:00 against the watch's 08:00:30-19:59:10 each day: the phone's 72
  # records up to 20:00 have a watch step in every minute and are lost.
  assert dead["overlapping_source"] == 7 * 72
  extras = r.extras.groupby("field")["n_rows"].sum().to_dict()
  assert extras == {f"{HK}ActiveEnergyBurned": 7 * 960, f"{HK}BasalEnergyBurned": 7 * 288,
                    f"{HK}DistanceWalkingRunning": 7 * (98 + 84), "Workout": 7,
                    "HKCategoryTypeIdentifierSleepAnalysis": 7, "ActivitySummary": 7}


def test_chunks_do_not_change_the_result(week, monkeypatch):
  """Runs of unmapped entries that cross a chunk are joined; nothing else moves."""
  want = apple_health.read_apple_health([week[0]])
  monkeypatch.setattr(apple_health, "CHUNK", 7)
  got = apple_health.read_apple_health([week[0]])
  for table in ("readings", "extras", "dead_letter"):
    pd.testing.assert_frame_equal(getattr(got, table), getattr(want, table))


def test_week_prefer_phone_matches_the_reference(week):
  path, records = week
  r = apple_health.read_apple_health([path], apple_health_sources=PHONE)
  steps = {t: v for f, t, v in r.readings[["feature", "timestamp", "value"]]
           .itertuples(index=False) if f == "steps"}
  want = {t: v for (f, t), v in reference(records, (PHONE,)).items() if f == "steps"}
  assert steps.keys() == want.keys()
  assert [steps[k] for k in want] == pytest.approx(list(want.values()))


# ---------------------------------------------------------- files, zips, subjects

def zip_export(zip_path, xml_path, member=apple_health.ZIP_MEMBER):
  zip_path.parent.mkdir(parents=True, exist_ok=True)
  with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(xml_path, member)
    z.writestr("apple_health_export/export_cda.xml", "<ClinicalDocument/>")
  return str(zip_path)


def test_zip_gz_and_subject_names(hand, tmp_path):
  want = apple_health.read_apple_health([hand]).readings.drop(columns=["subject_id",
                                                                       "source"])
  alice = zip_export(tmp_path / "cohort" / "alice.zip", hand)
  carol = zip_export(tmp_path / "cohort" / "carol" / "export.zip", hand)
  gz = tmp_path / "dave" / "export.xml.gz"
  gz.parent.mkdir()
  gz.write_bytes(gzip.compress(open(hand, "rb").read()))
  r = apple_health.read_apple_health([alice, carol, str(gz)])
  r.check_accounting()
  assert set(r.provided) == {"alice", "carol", "dave"}
  for subject in ("alice", "carol", "dave"):
    mine = r.readings[r.readings["subject_id"] == subject].drop(columns=["subject_id",
                                                                         "source"])
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), want)
  assert set(apple_health.read_apple_health([alice], subject_id="s1").provided) == {"s1"}
  assert set(apple_health.read_apple_health(
      [alice], subject_id_pattern=r"cohort/(\w+)\.zip").provided) == {"alice"}


def test_zip_without_the_export_is_refused(tmp_path):
  path = tmp_path / "export.zip"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("other/export.xml", "<HealthData/>")
  with pytest.raises(common.SourceError, match="export.zip: a zip without "
                     "apple_health_export/export.xml"):
    apple_health.read_apple_health([str(path)])
  assert not apple_health.detect(sniff(path))


def test_truncated_export_names_file_and_line(hand, tmp_path):
  text = open(hand, encoding="utf-8").read()
  cut = tmp_path / "p1" / "export.xml"
  cut.parent.mkdir()
  cut.write_text(text[:text.index("BodyMass") + 20])
  with pytest.raises(common.SourceError, match=r"export.xml: not well-formed XML at "
                     r"line \d+, column \d+ \(unclosed token\)"):
    apple_health.read_apple_health([str(cut)])


def test_detects_by_content_not_name(hand, tmp_path):
  assert apple_health.detect(sniff(CASE))                      # no DTD: the root line
  head = common.read_head(hand, common.local_open, 8)
  assert not any(line.startswith("<HealthData") for line in head)
  assert apple_health.detect(sniff(hand))                      # the DTD's DOCTYPE line
  renamed = tmp_path / "my_data.txt"
  renamed.write_bytes(open(hand, "rb").read())
  assert apple_health.detect(sniff(renamed))
  gz = tmp_path / "export.xml.gz"
  gz.write_bytes(gzip.compress(open(hand, "rb").read()))
  assert apple_health.detect(sniff(gz))
  assert apple_health.detect(sniff(zip_export(tmp_path / "z.bin", hand)))
  other = tmp_path / "export.xml"
  other.write_text('<?xml version="1.0"?>\n<gpx version="1.1"><trk/></gpx>\n')
  assert not apple_health.detect(sniff(other))
  csv = tmp_path / "export.csv"
  csv.write_text("subject_id,timestamp,feature,value\n")
  assert not apple_health.detect(sniff(csv))
  plain_zip = tmp_path / "export.zip"
  with zipfile.ZipFile(plain_zip, "w") as z:
    z.writestr("notes.txt", "x")
  assert not apple_health.detect(sniff(plain_zip))
  assert not apple_health.detect(registry.Sniff(str(tmp_path / "gone.zip"), [],
                                                b"PK\x03\x04"))


def test_device_declaration():
  d = apple_health.DEVICE
  assert d.name == "apple_health" and d.read is apple_health.read_apple_health
  assert not d.needs_tz and [o.name for o in d.options] == ["apple_health_sources"]


def test_ios16_malformed_dtd_is_skipped_line_numbers_kept(hand, tmp_path):
  """iOS 16 wrote an ATTLIST never closed and a stray '>' before ']>'."""
  import xml.etree.ElementTree as ET
  text = open(hand, encoding="utf-8").read()
  closed = "  value CDATA #REQUIRED\n>\n<!ELEMENT HeartRateVariabilityMetadataList"
  assert closed in text
  broken = text.replace(closed, closed.replace("\n>\n", "\n", 1)).replace("]>\n", ">\n]>\n")
  path = tmp_path / "p07" / "ios16.xml"
  path.write_text(broken, encoding="utf-8")
  with pytest.raises(ET.ParseError):
    ET.parse(path)
  want = apple_health.read_apple_health([hand])
  got = apple_health.read_apple_health([str(path)])
  pd.testing.assert_frame_equal(got.readings.drop(columns="source"),
                                want.readings.drop(columns="source"))
  raw = got.dead_letter.set_index("row").loc[14, "raw"]
  line = int(raw.split(":")[0].split()[1])
  assert "count/h" in broken.splitlines()[line - 1]


def test_zip_member_found_by_content_not_name(hand, tmp_path):
  """iPhones in other languages translate export.xml; __MACOSX holds resource forks."""
  path = tmp_path / "erin" / "export.zip"
  path.parent.mkdir()
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("__MACOSX/apple_health_export/._export.xml", "\x00\x05\x16\x07")
    z.writestr("apple_health_export/export_cda.xml", "<?xml version=\"1.0\"?>\n<ClinicalDocument/>")
    z.write(hand, "apple_health_export/\u5bfc\u51fa.xml")
  assert apple_health.detect(sniff(path))
  r = apple_health.read_apple_health([str(path)])
  assert set(r.provided) == {"erin"} and len(r.readings) == len(
      apple_health.read_apple_health([hand]).readings)
