"""ParseReadings: every row and reading reason, counted and dead-lettered with its origin."""

import json

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.testing.util import assert_that, equal_to

from pipeline import counts, parse, read
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
  with make_pipeline() as p:
    parsed = (p | ReadRaw([str(tmp_path / "wide.csv"), str(tmp_path / "long.csv")])
              | ParseReadings(KEY))
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
  def check(parsed):
    letters = parsed[counts.DEAD_LETTER] | beam.Map(json.loads) | beam.Map(
        lambda e: (e["source"].rsplit("/", 1)[1], e["row"], e["reason"],
                   e.get("subject"), e["raw"].get("reading") if isinstance(e["raw"], dict)
                   else e["raw"]))
    s2, s3 = record.subject_hash("s2", KEY), record.subject_hash("s3", KEY)
    assert_that(letters, equal_to([
        ("wide.csv", 3, "malformed_row", None, "s1,2024-03-01T08:16:00+01:00"),
        ("wide.csv", 4, "missing_subject", None, None),
        ("wide.csv", 5, "bad_timestamp", None, None),
        ("wide.csv", 6, "bad_timestamp", None, None),
        ("wide.csv", 7, "non_numeric", s2, "HR"),
        ("wide.csv", 7, "non_finite", s2, "steps"),
        ("wide.csv", 7, "unknown_feature", s2, "mystery"),
        ("wide.csv", 8, "out_of_range", s2, "HR"),
        ("wide.csv", 9, "malformed_row", None, None),
        ("long.csv", 3, "unknown_feature", record.subject_hash("s1", KEY), "wat"),
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
  times = parse.parse_times(pa.array(cells, pa.string()))
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
