"""ParseReadings: every row and reading reason, counted and dead-lettered with its origin."""

import datetime
import json
import logging

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline import counts, devices, parse, read
from pipeline.keys import KeyRef
from pipeline.parse import ParseReadings
from pipeline.read import ReadRaw
from schemas import record

KEY = b"k"

WIDE = (b"subject_id,timestamp,HR,steps,mystery\n"
        b"s1,2024-03-01T08:15:00+01:00,60,5,\n"          # 2 readings used
        b"s1,2024-03-01T08:16:00+01:00\n"               # malformed_row
        b",2024-03-01T08:17:00+01:00,61,,\n"             # missing_subject
        b"s1,2024-03-01T08:18:00,61,,\n"                 # bad_timestamp (no offset)
        b"s1,yesterday,61,,\n"                           # bad_timestamp
        b"s2,2024-03-01T08:19:00Z,abc,nan,7\n"           # non_numeric, non_finite, unknown
        b"s2,2024-03-01T08:20:00Z,999,2,\n"              # out_of_range HR, steps used
        b",,,,\n")                                       # malformed_row (empty line)

LONG = ("subject_id,timestamp,feature,value\n"
        "s1,2024-03-01T08:15:30+01:00,heart_rate,62\n"   # alias: used
        "s1,2024-03-01T08:15:30+01:00,wat,1\n"           # unknown_feature
        "s3,2024-03-01T08:15:30.250Z,steps,inf\n"        # non_finite
        "s3,2024-03-01T08:15:30.250Z,steps,\n")          # non_numeric (no value)


def _run(tmp_path, make_pipeline, check):
  (tmp_path / "wide.csv").write_bytes(WIDE)
  (tmp_path / "long.csv").write_text(LONG)
  (tmp_path / "key").write_bytes(KEY)
  with make_pipeline() as p:
    parsed = (p | ReadRaw([str(tmp_path / "wide.csv"), str(tmp_path / "long.csv")])
              | ParseReadings(KeyRef(file=str(tmp_path / "key"))))
    check(parsed)


def test_counts_reconcile_per_reason(tmp_path, make_pipeline):
  def check(parsed):
    total = parsed[counts.COUNTS] | beam.CombineGlobally(counts.SumCounts())
    assert_that(total, equal_to([{
        "rows_read": 12, "rows_parsed": 7,
        "rows_dead_letter/malformed_row": 2, "rows_dead_letter/missing_subject": 1,
        "rows_dead_letter/bad_timestamp": 2,
        "readings_read": 11,
        "readings_dead_letter/unknown_feature": 2, "readings_dead_letter/non_numeric": 2,
        "readings_dead_letter/non_finite": 2, "readings_dead_letter/out_of_range": 1,
    }]))
  _run(tmp_path, make_pipeline, check)


def test_dead_letters_name_source_row_and_reason(tmp_path, make_pipeline):
  """Raw content and path for the data owner, never the subject hash beside them."""
  def check(parsed):
    letters = parsed[counts.DEAD_LETTER] | beam.Map(json.loads) | beam.Map(
        lambda e: (e["source"].rsplit("/", 1)[1], e["row"], e["reason"],
                   e.get("subject", None), e["raw"].get("reading", e["raw"].get("column"))
                   if isinstance(e["raw"], dict) else e["raw"]))
    s1 = s2 = s3 = None  # no entry carries a subject hash
    assert_that(letters, equal_to([
        ("wide.csv", 3, "malformed_row", None, "s1,2024-03-01T08:16:00+01:00"),
        ("wide.csv", 4, "missing_subject", None, None),
        ("wide.csv", 5, "bad_timestamp", s1, None),
        ("wide.csv", 6, "bad_timestamp", s1, None),
        ("wide.csv", 7, "non_numeric", s2, "HR"),
        ("wide.csv", 7, "non_finite", s2, "steps"),
        ("wide.csv", 7, "unknown_feature", s2, "mystery"),
        ("wide.csv", 8, "out_of_range", s2, "HR"),
        ("wide.csv", 9, "malformed_row", None, None),
        ("long.csv", 3, "unknown_feature", s1, "wat"),
        ("long.csv", 4, "non_finite", s3, "steps"),
        ("long.csv", 5, "non_numeric", s3, "steps"),
    ]))
  _run(tmp_path, make_pipeline, check)


def test_readings_are_keyed_by_hash_in_utc_nanoseconds(tmp_path, make_pipeline):
  def summary(item):
    subject, r = item
    time, feature, value, row = r.long()
    return (subject, r.source.rsplit("/", 1)[1],
            tuple(zip((time // 1_000_000_000).tolist(), feature.tolist(), value.tolist(),
                      row.tolist())))

  def check(parsed):
    t = int(np.datetime64("2024-03-01T07:15:00", "s").astype(np.int64))
    assert_that(parsed.readings | beam.Map(summary), equal_to([
        (record.subject_hash("s1", KEY), "wide.csv", ((t, 0, 60.0, 2), (t, 3, 5.0, 2))),
        (record.subject_hash("s2", KEY), "wide.csv", ((t + 65 * 60, 3, 2.0, 8),)),
        (record.subject_hash("s1", KEY), "long.csv", ((t + 30, 0, 62.0, 2),)),
    ]))
  _run(tmp_path, make_pipeline, check)


def test_parse_times_rejects_only_the_bad_cells():
  # Bad cells scattered through a long column: the column cast fails, and only they
  # may end up INT64_MIN, whatever their position.
  good = [f"2024-03-01T08:{m % 60:02d}:30.250+01:00" for m in range(101)]
  cells = list(good)
  bad = {0: "2024-03-01T08:18:00", 17: "yesterday", 18: "", 63: None, 100: "2024-13-01T00:00Z"}
  for i, cell in bad.items():
    cells[i] = cell
  times, _ = parse.parse_times(pa.array(cells, pa.string()))
  expected = [int(np.datetime64(c[:23], "ns").astype(np.int64)) - 3_600_000_000_000
              for c in good]
  for i, cell in bad.items():
    expected[i] = np.iinfo(np.int64).min
  assert times.tolist() == expected


def test_a_batch_sliced_out_of_a_table_reads_only_its_own_cells():
  # Arrow slices share their parent's buffers at an offset: values and nulls must be
  # read from the slice's own rows.
  hr = [60.0, None, 999.0, float("nan"), 70.0, None, 80.0, 61.0, None, 62.0, 63.0] * 3
  table = pa.table({
      "subject_id": ["s1"] * 17 + ["s2"] * 16,
      "timestamp": [f"2024-03-01T08:{m:02d}:00Z" for m in range(33)],
      "HR": pa.array(hr, pa.float64()),
      "steps": pa.array([None if i % 4 else i for i in range(33)], pa.float64())})
  start, n = 5, 19
  sliced = table.slice(start, n)
  copied = pa.Table.from_pylist(sliced.to_pylist(), schema=table.schema)
  rows = np.arange(start, start + n)

  def outputs(t):
    out = []
    for item in parse.parse_batch(read.RawBatch("x.parquet", "wide", t, rows, []), KEY):
      if isinstance(item, beam.pvalue.TaggedOutput):
        out.append((item.tag, item.value))
      else:
        r = item[1]
        out.append((item[0], r.time.tolist(), r.row.tolist(), r.value.tobytes()))
    return out

  assert outputs(sliced) == outputs(copied)
  assert [o[1] for o in outputs(sliced) if o[0] == counts.COUNTS] == [{
      "rows_read": 19, "rows_parsed": 19, "readings_read": 17,
      "readings_dead_letter/non_finite": 1, "readings_dead_letter/out_of_range": 1,
      counts.SOURCE: "x.parquet"}]


def _utc(text):
  return int(np.datetime64(text, "ns").astype(np.int64))


BAD = np.iinfo(np.int64).min
BERLIN = parse.TimeRule(tz="Europe/Berlin")


@pytest.mark.parametrize("cells, arrow_type, rule, expected", [
    (["2024-03-01T08:15:00+01:00", "2024-03-01T08:16:30.250+01"], None, parse.TimeRule(),
     ["2024-03-01T07:15", "2024-03-01T07:16:30.250"]),
    (["2024-03-01 08:15:00+0100", "2024-03-01 08:16+01:00"], None, parse.TimeRule(),
     ["2024-03-01T07:15", "2024-03-01T07:16"]),
    (["2024-03-01T08:15:00Z", "2024-03-01 08:16Z"], None, parse.TimeRule(),
     ["2024-03-01T08:15", "2024-03-01T08:16"]),
    # Apple Health: a space before the offset.
    (["2024-02-06 19:00:17 -0800", "2024-02-06 19:01:17 -0800"], None, parse.TimeRule(),
     ["2024-02-07T03:00:17", "2024-02-07T03:01:17"]),
    # Epoch numbers as text (CSV, JSON lines): seconds or milliseconds by magnitude...
    (["1709535600", "1709535660000", "1709535720.5"], None, parse.TimeRule(),
     ["2024-03-04T07:00", "2024-03-04T07:01", "2024-03-04T07:02:00.500"]),
    # ... or by --timestamp_unit; an integer Parquet column the same way.
    (["1709535600000"], None, parse.TimeRule(unit="ms"), ["2024-03-04T07:00"]),
    ([1709535600, 1709535660], pa.int64(), parse.TimeRule(unit="s"),
     ["2024-03-04T07:00", "2024-03-04T07:01"]),
    ([1709535600000], pa.int64(), parse.TimeRule(), ["2024-03-04T07:00"]),
    # Local times without offset, with --tz (CET, +01:00, in March before the change).
    (["2024-03-04 08:00:00", "2024-03-04T08:01", "2024-03-04 08:02"], None, BERLIN,
     ["2024-03-04T07:00", "2024-03-04T07:01", "2024-03-04T07:02"]),
    (["4/12/2016 0:01", "4/12/2016 13:02"], None, BERLIN,
     ["2016-04-11T22:01", "2016-04-12T11:02"]),
    (["4/12/2016 0:01:30", "4/12/2016 13:02:00"], None, BERLIN,
     ["2016-04-11T22:01:30", "2016-04-12T11:02"]),
    (["4/12/2016 12:01:00 AM", "4/12/2016 1:02:00 PM", "4/12/2016 1:03 PM"], None, BERLIN,
     ["2016-04-11T22:01", "2016-04-12T11:02", BAD]),  # one form per column
    (["2024-03-04 08:00"], None, parse.TimeRule(tz="-08:00"), ["2024-03-04T16:00"]),
    # Parquet / pandas timestamp types: naive is local time, with a zone absolute.
    ([datetime.datetime(2024, 3, 4, 8)], pa.timestamp("us"), BERLIN, ["2024-03-04T07:00"]),
    ([datetime.datetime(2024, 3, 4, 8)], pa.timestamp("us", tz="America/New_York"),
     parse.TimeRule(), ["2024-03-04T08:00"]),
    ([datetime.datetime(2024, 3, 4, 8)], pa.timestamp("ms", tz="UTC"), BERLIN,
     ["2024-03-04T08:00"]),
])
def test_each_timestamp_form_reads_its_utc_instant(cells, arrow_type, rule, expected):
  times, gap = parse.parse_times(pa.array(cells, arrow_type), rule)
  assert times.tolist() == [e if e == BAD else _utc(e) for e in expected]
  assert not gap.any()


def test_naive_times_across_dst_changes_follow_the_adapters_rule():
  cells = ["2024-03-31 01:59", "2024-03-31 02:30", "2024-03-31 03:00",  # spring forward
           "2024-10-27 01:59", "2024-10-27 02:30", "2024-10-27 02:59",  # repeated hour,
           "2024-10-27 02:30", "2024-10-27 03:00"]                      # listed twice
  times, gap = parse.parse_times(pa.array(cells), BERLIN, np.zeros(len(cells), np.int64))
  assert times.tolist() == [_utc("2024-03-31T00:59"), BAD, _utc("2024-03-31T01:00"),
                            _utc("2024-10-26T23:59"), _utc("2024-10-27T00:30"),
                            _utc("2024-10-27T00:59"), _utc("2024-10-27T01:30"),
                            _utc("2024-10-27T02:00")]
  assert gap.tolist() == [0, parse._NONEXISTENT] + [0] * 6


def test_nonexistent_local_time_rows_are_dead_lettered_and_counted():
  table = pa.table({"subject_id": ["s1"] * 3, "timestamp": [
      "2024-03-31 01:59", "2024-03-31 02:30", "2024-03-31 03:00"], "HR": ["60"] * 3})
  rows = np.arange(2, 5)
  out = list(parse.parse_batch(read.RawBatch("x.csv", "wide", table, rows, []), KEY,
                               BERLIN))
  letters = [json.loads(o.value) for o in out
             if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == counts.DEAD_LETTER]
  assert [(e["row"], e["reason"], e["raw"]["timestamp"], e["raw"]["subject_id"])
          for e in letters] == [(3, "nonexistent_local_time", "2024-03-31 02:30", "s1")]
  assert "subject" not in letters[0]  # the raw id is there: its hash must not be
  tally = [o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput)
           and o.tag == counts.COUNTS][0]
  assert tally["rows_read"] == 3 and tally["rows_parsed"] == 2
  assert tally["rows_dead_letter/nonexistent_local_time"] == 1


def test_shuffled_repeated_hour_rows_are_dead_lettered_ambiguous_never_merged():
  """The fall-back hour listed twice, but the rows around it are out of order: the
  order cannot say which copy is which pass, so neither is guessed."""
  cells = ["2024-10-27 03:10", "2024-10-27 02:30", "2024-10-27 01:00", "2024-10-27 02:30",
           "2024-10-27 04:00", "2024-10-27 00:30"]
  table = pa.table({"subject_id": ["s1"] * len(cells), "timestamp": cells,
                    "HR": ["60", "61", "62", "63", "64", "65"]})
  out = list(parse.parse_batch(read.RawBatch("x.csv", "wide", table,
                                             np.arange(2, 2 + len(cells)), []), KEY, BERLIN))
  letters = [json.loads(o.value) for o in out
             if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == counts.DEAD_LETTER]
  assert [(e["row"], e["reason"]) for e in letters] == [
      (3, "ambiguous_local_time"), (5, "ambiguous_local_time")]


def test_plausible_range_dead_letters_bad_timestamp():
  rule = parse.TimeRule(min_ns=_utc("2000-01-01"), max_ns=_utc("2030-01-01"))
  cells = ["1970-01-01T00:00Z", "1999-12-31T23:59Z", "2000-01-01T00:00Z",
           "2029-12-31T23:59Z", "2030-01-01T00:00Z", "2100-01-01T00:00Z", "0"]
  times, _ = parse.parse_times(pa.array(cells), rule)
  assert times.tolist() == [BAD, BAD, _utc("2000-01-01"), _utc("2029-12-31T23:59"),
                            BAD, BAD, BAD]
  default, _ = parse.parse_times(pa.array(["1970-01-01T00:00Z", "2100-06-01T00:00Z"]))
  assert default.tolist() == [BAD, BAD]  # the defaults: [1990-01-01, 2100-01-01)


@pytest.mark.parametrize("name, text, arrow_type, rule, message", [
    ("local.csv", "subject_id,Timestamp,HR\ns1,2024-03-04 08:00:00,60\n", None,
     parse.TimeRule(), "local.csv: column 'Timestamp': local times without a UTC offset "
     "(e.g. '2024-03-04 08:00:00'); pass --tz"),
    ("us.jsonl", '{"subject_id": "s1", "timestamp": "4/12/2016 0:01", "HR": 60}\n', None,
     parse.TimeRule(), "us.jsonl: column 'timestamp': local times without a UTC offset "
     "(e.g. '4/12/2016 0:01'); pass --tz"),
    ("naive.parquet", None, pa.timestamp("ns"), parse.TimeRule(),
     "naive.parquet: column 'timestamp': local times without a UTC offset "
     "(e.g. '2024-03-04 08:00:00'); pass --tz"),
    ("epoch.csv", "subject_id,timestamp,HR\ns1,1709535600000,60\n", None,
     parse.TimeRule(unit="iso"), "epoch.csv: column 'timestamp': numbers "
     "(e.g. '1709535600000'), not ISO 8601 times, while --timestamp_unit is iso"),
    ("dmy.csv", "subject_id,timestamp,HR\ns1,12/04/2016 0:01,60\ns1,13/04/2016 0:01,60\n",
     None, BERLIN, "dmy.csv: column 'timestamp': dates like '13/04/2016 0:01' have a "
     "first field above 12, so they are day/month/year; only US month/day/year is read"),
    ("odd.csv", "subject_id,timestamp,HR\ns1,2024/03/04 08:00,60\ns1,1970-01-01T00:00Z,60\n",
     None, parse.TimeRule(), "odd.csv: column 'timestamp': none of the first 2 timestamps "
     "is a time of a known form between --min_time and --max_time (e.g. '2024/03/04 08:00')"),
])
def test_a_file_that_needs_an_option_fails_before_the_run(tmp_path, name, text, arrow_type,
                                                          rule, message):
  path = tmp_path / name
  if text is None:
    pq.write_table(pa.table({"subject_id": ["s1"], "HR": [60.0], "timestamp": pa.array(
        [datetime.datetime(2024, 3, 4, 8)], arrow_type)}), path)
  else:
    path.write_text(text)
  with pytest.raises(read.UnreadableFileError) as error:
    devices.plan_inputs([str(path)], "auto", rule=rule)
  assert str(error.value).startswith(f"{path.parent}/{message}")


def test_offset_files_need_no_tz(tmp_path):
  (tmp_path / "ok.csv").write_text("subject_id,timestamp,HR\ns1,2024-03-04 08:00Z,60\n")
  assert devices.plan_inputs([str(tmp_path / "ok.csv")]).canonical == [
      str(tmp_path / "ok.csv")]


def _parse(table, layout="wide"):
  rows = np.arange(2, table.num_rows + 2)
  items = list(parse.parse_batch(read.RawBatch("x.csv", layout, table, rows, []), KEY))
  letters = [json.loads(i.value) for i in items
             if isinstance(i, beam.pvalue.TaggedOutput) and i.tag == counts.DEAD_LETTER]
  tally = [i.value for i in items
           if isinstance(i, beam.pvalue.TaggedOutput) and i.tag == counts.COUNTS]
  readings = [i[1] for i in items if not isinstance(i, beam.pvalue.TaggedOutput)]
  return letters, tally[0], readings


def test_unknown_wide_columns_are_one_dead_letter_each_with_their_count():
  # 5,000 unknown columns x 50 rows: one entry per column (it used to be one entry per
  # cell, each holding the whole 5,000-cell row: quadratic), and the readings reconcile.
  n_rows, n_unknown = 50, 5000
  columns = {"subject_id": pa.array([b"s1"] * n_rows),
             "timestamp": pa.array([f"2024-03-01T08:{m:02d}:00Z".encode()
                                    for m in range(n_rows)]),
             "HR": pa.array([b"60"] * n_rows)}
  for c in range(n_unknown):
    columns[f"x{c}"] = pa.array([b""] * (c % 3) + [str(c).encode()] * (n_rows - c % 3))
  letters, tally, readings = _parse(pa.table(columns))
  assert len(letters) == n_unknown
  assert letters[1] == {"source": "x.csv", "row": 3, "reason": "unknown_feature",
                        "raw": {"column": "x1", "example": "1"}, "readings": n_rows - 1}
  unknown = sum(n_rows - c % 3 for c in range(n_unknown))
  assert sum(e["readings"] for e in letters) == unknown
  used = sum(int((~np.isnan(r.value)).sum()) for r in readings)
  assert used == n_rows
  assert tally["readings_read"] == used + unknown
  assert tally["readings_dead_letter/unknown_feature"] == unknown


def test_an_unknown_wide_column_is_warned_about_with_the_closest_feature(caplog):
  table = pa.table({"subject_id": [b"s1"] * 2, "timestamp": [b"2024-03-01T08:00:00Z",
                                                             b"2024-03-01T08:01:00Z"],
                    "stepz": [b"5", b"7"], "foo_sensor": [b"1", b""]})
  with caplog.at_level(logging.WARNING):
    _parse(table)
  assert ("x.csv: column 'stepz' names no LSM feature (did you mean 'steps'?); its 2 "
          "readings are dead-lettered as unknown_feature") in caplog.text
  assert "column 'foo_sensor' names no LSM feature; its 1 readings" in caplog.text


def test_a_bad_wide_reading_dead_letters_its_cell_not_the_row():
  table = pa.table({"subject_id": [b"s1"], "timestamp": [b"2024-03-01T08:00:00Z"],
                    "HR": [b"abc"], "steps": [b"5"], "notes": [b"x" * 1000]})
  letters, _, _ = _parse(table)
  assert [e["raw"] for e in letters] == [
      {"subject_id": "s1", "timestamp": "2024-03-01T08:00:00Z", "HR": "abc",
       "reading": "HR"},
      {"column": "notes", "example": "x" * 1000}]
