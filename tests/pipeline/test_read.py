"""ReadRaw: every format and layout, row numbers, malformed rows, unreadable files."""

import gzip

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline import read
from pipeline.read import ReadRaw, UnreadableFileError


def _summary(batch):
  return (batch.source.rsplit("/", 1)[1], batch.layout, batch.table.num_rows,
          tuple(int(r) for r in batch.rows[:2]), tuple(m[0] for m in batch.malformed))


def test_reads_every_format_and_layout(tmp_path, make_pipeline, raw):
  cohort = raw.make_cohort(2, 5)
  wide, long, write = raw.wide_frame(cohort), raw.long_frame(cohort), raw.write
  paths = [write(wide, str(tmp_path / "a.csv")), write(long, str(tmp_path / "b.csv.gz")),
           write(wide, str(tmp_path / "c.parquet")), write(long, str(tmp_path / "d.jsonl"))]
  with make_pipeline() as p:
    out = p | ReadRaw(paths) | beam.Map(_summary)
    assert_that(out, equal_to([
        ("a.csv", "wide", 10, (2, 3), ()),
        ("b.csv.gz", "long", len(long), (2, 3), ()),
        ("c.parquet", "wide", 10, (0, 1), ()),
        ("d.jsonl", "long", len(long), (1, 2), ()),
    ]))


def test_csv_malformed_lines_keep_line_numbers(tmp_path):
  path = tmp_path / "bad.csv"
  path.write_bytes(b"subject_id,timestamp,HR\n"
                   b"s1,2024-03-01T08:15:00+01:00,60\n"
                   b"s1,2024-03-01T08:16:00+01:00\n"            # line 3: too few fields
                   b"s1,2024-03-01T08:17:00+01:00,61,9\n"       # line 4: too many
                   b"s1,2024-03-01T08:18:00+01:00,\xff\n"       # line 5: bad bytes, parsed later
                   b"s1,2024-03-01T08:19:00+01:00,62\n")
  batches = list(read.read_csv(str(path)))
  rows = np.concatenate([b.rows for b in batches])
  assert list(rows) == [2, 5, 6]
  assert [m for b in batches for m in b.malformed] == [
      (3, "s1,2024-03-01T08:16:00+01:00"), (4, "s1,2024-03-01T08:17:00+01:00,61,9")]


def test_jsonl_lines_that_are_not_objects_are_malformed(tmp_path):
  path = tmp_path / "x.jsonl"
  path.write_text('{"subject_id": "s", "timestamp": "2024-03-01T00:00:00Z", "HR": 60}\n'
                  '{"subject_id": "s", "timestamp": \n[1, 2]\n')
  (batch,) = read.read_jsonl(str(path))
  assert list(batch.rows) == [1] and [m[0] for m in batch.malformed] == [2, 3]


def test_unreadable_file_fails_fast_naming_it(tmp_path):
  broken = tmp_path / "broken.parquet"
  broken.write_bytes(b"this is not parquet")
  with pytest.raises(UnreadableFileError, match="broken.parquet"):
    list(read.read_parquet(str(broken)))
  truncated = tmp_path / "cut.csv.gz"
  truncated.write_bytes(gzip.compress(b"subject_id,timestamp,HR\n" + b"s,t,1\n" * 1000)[:60])
  with pytest.raises(UnreadableFileError, match="cut.csv.gz"):
    list(read.read_csv(str(truncated)))
  with pytest.raises(UnreadableFileError, match="nothing-here"):
    read.match_inputs([str(tmp_path / "nothing-here*.csv")])
  with pytest.raises(UnreadableFileError, match="unknown input format"):
    ReadRaw([str(tmp_path / "data.xlsx")])


def test_layout_detection():
  assert read.layout(["subject_id", "timestamp", "feature", "value"]) == "long"
  assert read.layout(["Subject ID", "Timestamp", "Feature", "Value"]) == "long"
  assert read.layout(["subject_id", "timestamp", "HR", "steps"]) == "wide"
