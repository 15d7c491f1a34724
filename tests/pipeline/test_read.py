"""ReadRaw: every format and layout, row numbers, malformed rows, unreadable files."""

import gzip
import json
import os
import pathlib
import shutil

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline import counts, devices, keys, main, parse, read
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


CASES = pathlib.Path(__file__).resolve().parents[1] / "data" / "cases"


def test_bom_crlf_case_end_to_end_with_relative_glob_and_empty_file(tmp_path, monkeypatch):
  # Excel's "CSV UTF-8" (BOM + CRLF), a header-only and a zero-byte file, matched by a
  # glob relative to the current folder: the empty file is skipped and counted.
  for name in ("canonical_long_bom_crlf/hr_steps_excel_utf8.csv",
               "empty_and_header_only_files/cohort_p10.csv",
               "empty_and_header_only_files/cohort_p11.csv"):
    shutil.copy(CASES / name, tmp_path)
  monkeypatch.chdir(tmp_path)
  main.run(["--input=*.csv", "--output=out", "--subject_hash_key=k", "--window_minutes=10",
            "--split=1,0,0"])
  manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
  assert manifest["counts"]["rows"]["read"] == 120
  assert manifest["counts"]["readings"]["used"] == 120
  assert manifest["counts"]["windows"]["pretrain"]["written"]["train"] == 6
  assert manifest["inputs_skipped_empty"] == 1
  assert {i["id"]: i["format"] for i in manifest["inputs"]} == {  # ids, not paths
      keys.input_id(p, b"k"): f for p, f in (
          ("./cohort_p10.csv", "canonical_long"), ("./cohort_p11.csv", "empty"),
          ("./hr_steps_excel_utf8.csv", "canonical_long"))}


def test_bom_header_is_stripped():
  (batch,) = read.read_csv(str(CASES / "canonical_long_bom_crlf" / "hr_steps_excel_utf8.csv"))
  assert batch.table.column_names == ["subject_id", "timestamp", "feature", "value"]
  assert (batch.rows[0], batch.rows[-1], batch.malformed) == (2, 121, [])
  assert batch.table.column("value")[0].as_py() == b"70.0"  # no '\r' left


def test_a_repeated_header_column_is_an_error_naming_it(tmp_path):
  def header(name, text):
    (tmp_path / name).write_text(text + "\ns1,2024-03-01T00:00:00Z,60,61\n")
    return str(tmp_path / name)
  with pytest.raises(UnreadableFileError,
                     match=r"two_hr.csv: column 'HR' \(column 4\) repeats column 'HR' "
                           r"\(column 3\)"):
    list(read.read_csv(header("two_hr.csv", "subject_id,timestamp,HR,HR")))
  with pytest.raises(UnreadableFileError, match=r"two_ts.csv: column 'Timestamp'"):
    list(read.read_csv(header("two_ts.csv", "subject_id,timestamp,Timestamp,HR")))
  # two aliases of one feature: read, the second column's readings are duplicates
  (batch,) = read.read_csv(header("alias.csv", "subject_id,timestamp,HR,heart_rate"))
  assert batch.table.column_names == ["subject_id", "timestamp", "HR", "heart_rate"]


def test_gzip_is_told_by_the_bytes_not_the_name(tmp_path):
  text = b"subject_id,timestamp,HR\ns1,2024-03-01T00:00:00Z,60\n"
  (tmp_path / "packed.csv").write_bytes(gzip.compress(text))
  (tmp_path / "plain.csv.gz").write_bytes(text)
  for name in ("packed.csv", "plain.csv.gz"):
    path = str(tmp_path / name)
    (batch,) = read.read_csv(path)
    assert batch.table.to_pylist() == [
        {"subject_id": b"s1", "timestamp": b"2024-03-01T00:00:00Z", "HR": b"60"}]
    assert devices._detect(path) == "canonical_wide"  # detection reads the same bytes


def test_an_unterminated_quote_spoils_its_line_only(tmp_path):
  lines = ["subject_id,timestamp,HR"]
  lines += [f"s1,2024-03-01T{m // 60:02d}:{m % 60:02d}:00Z,{60 + m % 50}" for m in range(300)]
  lines[11] = 's1,"2024-03-01T00:10:00Z,70'   # line 12: the closing quote is lost
  lines[19] = "s1,2024-03-01T00:18:00Z"       # line 20: too few fields
  (tmp_path / "q.csv").write_text("\r\n".join(lines) + "\r\n")
  batches = list(read.read_csv(str(tmp_path / "q.csv")))
  rows = np.concatenate([b.rows for b in batches])
  malformed = [m for b in batches for m in b.malformed]
  assert malformed == [(12, 's1,"2024-03-01T00:10:00Z,70'), (20, "s1,2024-03-01T00:18:00Z")]
  assert rows.tolist() == [r for r in range(2, 302) if r not in (12, 20)]
  table = pa.concat_tables(b.table for b in batches)
  assert table.column("timestamp")[-1].as_py() == b"2024-03-01T04:59:00Z"  # line 301


def test_semicolons_and_decimal_commas_need_their_options(caplog):
  folder = CASES / "decimal_comma_semicolon"
  semicolon = str(folder / "temp_semicolon_de.csv")
  quoted = str(folder / "temp_quoted_decimal_comma.csv")
  hint = r"temp_semicolon_de.csv: .*pass --csv_delimiter ';'"
  with pytest.raises(UnreadableFileError, match=hint):
    list(read.read_csv(semicolon))
  with pytest.raises(UnreadableFileError, match=hint):
    devices.plan_inputs([semicolon])
  assert devices.plan_inputs([semicolon], delimiter=";").inputs[0]["format"] == "canonical_long"

  def values(path, **options):
    out = {}
    for batch in read.read_csv(path, **options):
      for item in parse.parse_batch(batch, b"k"):
        if isinstance(item, beam.pvalue.TaggedOutput):
          if item.tag == counts.COUNTS:
            out.update(item.value)
        else:
          out["values"] = item[1].long()[2][:2].tolist()
    return out
  # without --decimal ',' a decimal comma is never a number (not 3300, not 33)
  assert values(quoted)["readings_dead_letter/non_numeric"] == 60
  assert "values like '33,00' look like decimal commas; pass --decimal ','" in caplog.text
  assert values(semicolon, delimiter=";")["readings_dead_letter/non_numeric"] == 60
  for path, options in ((quoted, {}), (semicolon, {"delimiter": ";"})):
    read_as = values(path, decimal=",", **options)
    assert read_as["values"] == [33.0, 33.06]
    assert read_as["readings_read"] == 60 and "readings_dead_letter/non_numeric" not in read_as


def test_empty_and_header_only_files(tmp_path):
  folder = CASES / "empty_and_header_only_files"
  assert list(read.read_csv(str(folder / "cohort_p10.csv"))) == []  # header only: no rows
  plan = devices.plan_inputs([str(folder / "cohort_p10.csv"), str(folder / "cohort_p11.csv")])
  assert [i["format"] for i in plan.inputs] == ["canonical_long", "empty"]
  assert plan.canonical == [str(folder / "cohort_p10.csv")]
  with pytest.raises(UnreadableFileError, match="every input is an empty file: .*cohort_p11.csv"):
    devices.plan_inputs([str(folder / "cohort_p11.csv")])


def test_a_glob_relative_to_the_current_folder(tmp_path, monkeypatch):
  (tmp_path / "part1.csv").write_text("subject_id,timestamp,HR\n")
  monkeypatch.chdir(tmp_path)
  assert read.match_inputs(["part*.csv"]) == read.match_inputs(["./part*.csv"]) == [
      "./part1.csv"]


def test_a_json_document_is_refused_before_the_run_not_read_as_json_lines(tmp_path):
  """A JSON document no device format accepts, read line by line, would make every
  physical line a malformed row and lose everything (Takeout's Fitbit arrays are
  read by the takeout_fitbit device instead)."""
  pretty = tmp_path / "pretty.json"
  pretty.write_text('{\n  "subject_id": "s1",\n  "timestamp": "2024-03-01T08:00Z"\n}\n')
  array = tmp_path / "array.json"
  array.write_text('[\n  {"subject_id": "s1", "timestamp": "2024-03-01T08:00Z"}\n]\n')
  for path in (str(pretty), str(array)):
    with pytest.raises(read.UnreadableFileError) as error:
      devices.plan_inputs([path])
    assert str(error.value).startswith(f"{path}: one JSON document")
    assert "not JSON lines" in str(error.value) and "--format" in str(error.value)
  lines = tmp_path / "ok.jsonl"
  lines.write_text('\n{"subject_id": "s1", "timestamp": "2024-03-01T08:00Z", "HR": 60}\n')
  assert devices.plan_inputs([str(lines)]).canonical == [str(lines)]


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_a_canonical_table_without_subject_id_is_refused_naming_the_column(tmp_path, suffix):
  """A one-person wide file without subject_id used to dead-letter every row as
  malformed_row under --format; now the plan names the file and the column."""
  path = tmp_path / f"me.{suffix}"
  rows = [{"timestamp": f"2024-03-01T00:0{i}:00Z", "heart_rate": 60 + i} for i in range(3)]
  if suffix == "csv":
    path.write_text("timestamp,heart_rate\n" + "".join(
        f"{r['timestamp']},{r['heart_rate']}\n" for r in rows))
  elif suffix == "jsonl":
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  else:
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    pq.write_table(pa.Table.from_pylist(rows), str(path))
  expected = rf"me\.{suffix}: a canonical table needs a subject_id column; its columns are " \
             r"timestamp, heart_rate"
  forced = {"csv": "canonical_wide", "jsonl": "jsonl", "parquet": "parquet"}[suffix]
  with pytest.raises(UnreadableFileError, match=expected):
    devices.plan_inputs([str(path)], forced)
  if suffix == "csv":  # auto-detection: an unknown format whose advice names the column
    with pytest.raises(UnreadableFileError, match="timestamp column but no subject_id"):
      devices.plan_inputs([str(path)])
  else:
    with pytest.raises(UnreadableFileError, match=expected):
      devices.plan_inputs([str(path)])


def test_two_alias_columns_of_one_feature_are_named_in_a_warning(tmp_path, caplog):
  path = tmp_path / "wide.csv"
  path.write_text("subject_id,timestamp,heart_rate,HR\n"
                  "s1,2024-03-01T00:00:00Z,60,120\n")
  with caplog.at_level("WARNING"):
    list(read.read_csv(str(path)))
  assert "columns 'heart_rate' and 'HR' both hold HR; where a row has both, 'heart_rate' " \
         "is read and 'HR' is dead-lettered as duplicate" in caplog.text
