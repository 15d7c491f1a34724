"""Stage 1, ReadRaw: input globs to batches of raw rows, as read, per file.

Files are CSV (optionally gzipped), Parquet or JSON lines, on any filesystem Beam
knows (local, gs://). A batch keeps cells as the file had them (CSV and JSONL cells
as bytes/strings, Parquet columns typed) with the line (CSV, JSONL) or row (Parquet)
number of every row, so that parsing can dead-letter any cell with its origin.
Rows that fail before any cell can be read (wrong field count, invalid JSON) travel
in `malformed`. A file that cannot be opened or decoded at all fails the pipeline
with its name: that is an unreadable input, not bad rows.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import logging
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline import exchange, gcs
from schemas.features import normalise_alias

BATCH_ROWS = 65_536


@dataclasses.dataclass
class RawBatch:
  """Up to BATCH_ROWS rows of one file.

  rows: int64 [n], 1-based line number (CSV counts the header as line 1; JSONL) or
    0-based row index (Parquet) of each row of `table`.
  malformed: (row number, raw text) of rows that could not be split into cells.
  """
  source: str
  layout: str
  table: pa.Table
  rows: np.ndarray
  malformed: list


exchange.register(RawBatch)


class UnreadableFileError(IOError):
  """An input file that cannot be opened or decoded as its format: fails the run."""


def file_format(path: str, forced: str = "auto") -> str:
  if forced != "auto":
    return forced
  name = path.lower()
  for suffix in (".gz", ".gzip"):
    if name.endswith(suffix):
      name = name[:-len(suffix)]
  for fmt, suffixes in (("csv", (".csv",)), ("parquet", (".parquet", ".pq")),
                        ("jsonl", (".jsonl", ".json", ".ndjson"))):
    if name.endswith(suffixes):
      return fmt
  raise UnreadableFileError(f"{path}: unknown input format (extension); pass --format")


def layout(columns) -> str:
  """'long' when the columns name a feature and a value, else 'wide' (from the header)."""
  names = {normalise_alias(c) for c in columns}
  return "long" if {"feature", "value"} <= names else "wide"


def match_inputs(patterns) -> list[str]:
  """Every file the globs match, sorted so that input order never changes the output.

  A folder (a path ending in '/', or a local directory) is an Empatica E4 session:
  it stands for its sensor files (ACC.csv, HR.csv, ...); other files in it, such
  as info.txt, are documentation and not read (logged).
  """
  paths = set()
  for pattern in patterns:
    if _is_folder(pattern):
      paths.update(_session_files(pattern))
      continue
    found = [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
    if not found:
      raise UnreadableFileError(f"--input {pattern}: matches no file")
    paths.update(found)
  return sorted(paths)


def _is_folder(pattern: str) -> bool:
  return pattern.endswith("/") or (gcs.is_local(pattern) and os.path.isdir(pattern))


def _session_files(folder: str) -> list[str]:
  from pipeline.sources import empatica  # the E4 file names live with the E4 adapter
  members = sorted(m.path for r in FileSystems.match([folder.rstrip("/") + "/*"])
                   for m in r.metadata_list)
  sensors = [m for m in members if empatica.sensor_of(m)]
  if not sensors:
    raise UnreadableFileError(f"--input {folder}: a folder, but not an Empatica E4 "
                              "session (no ACC/BVP/EDA/HR/IBI/TEMP/tags.csv); pass its "
                              "files or a glob")
  skipped = sorted(set(members) - set(sensors))
  if skipped:
    logging.info("%s: not E4 sensor files, not read: %s", folder, ", ".join(skipped))
  return sensors


def _gzipped(path: str) -> bool:
  return path.lower().endswith((".gz", ".gzip"))


def _open(path: str):
  """A binary stream of the file's bytes (gunzipped when the name ends in .gz)."""
  f = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
  return gzip.GzipFile(fileobj=f, mode="rb") if _gzipped(path) else f


def read_csv(path: str):
  """Streams a CSV file: cells as bytes, so one undecodable byte spoils one row only."""
  try:
    with _open(path) as f:
      header = f.readline().decode("utf-8", errors="replace").rstrip("\r\n")
  except (OSError, EOFError) as e:
    raise UnreadableFileError(f"{path}: cannot read as CSV: {e}") from e
  columns = next(csv.reader([header])) if header else []
  if not columns or not any(columns):
    raise UnreadableFileError(f"{path}: empty file or no CSV header")
  malformed = []

  def invalid(row):
    malformed.append((int(row.number), row.text))
    return "skip"

  line = 2
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    try:
      stream = pa.PythonFile(f, mode="r")
      if _gzipped(path):
        stream = pa.CompressedInputStream(stream, "gzip")
      reader = pcsv.open_csv(
          stream, read_options=pcsv.ReadOptions(use_threads=False, block_size=8 << 20,
                                           skip_rows=1, column_names=columns),
          parse_options=pcsv.ParseOptions(invalid_row_handler=invalid,
                                          ignore_empty_lines=False),
          convert_options=pcsv.ConvertOptions(
              column_types={c: pa.binary() for c in columns}, strings_can_be_null=False,
              quoted_strings_can_be_null=False))
      for batch in reader:
        n = batch.num_rows
        bad = sorted(m[0] for m in malformed if m[0] >= line)
        rows, line = _skip_lines(line, n, bad)
        table = pa.Table.from_batches([batch])
        for start in range(0, n, BATCH_ROWS):
          yield RawBatch(path, layout(columns), table.slice(start, BATCH_ROWS),
                         rows[start:start + BATCH_ROWS], [])
    except (pa.ArrowInvalid, OSError, EOFError, gzip.BadGzipFile) as e:
      raise UnreadableFileError(f"{path}: cannot read as CSV: {e}") from e
  if malformed:
    yield RawBatch(path, layout(columns), pa.table({c: pa.array([], pa.binary())
                                                   for c in columns}),
                   np.zeros(0, np.int64), sorted(malformed))


def _skip_lines(line: int, n: int, bad: list[int]) -> tuple[np.ndarray, int]:
  """Line numbers of the next n parsed rows from `line` on, skipping malformed lines."""
  rows = np.arange(line, line + n + len(bad), dtype=np.int64)
  if bad:
    rows = rows[~np.isin(rows, bad)][:n]
  end = int(rows[-1]) + 1 if n else line
  return rows, end


def read_parquet(path: str):
  try:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
      parquet = pq.ParquetFile(f)
      columns = parquet.schema_arrow.names
      start = 0
      # Arrow's decoding threads (5-8% more CPU on wide float columns) put the
      # second core to work while the local runner's one Python thread parses.
      for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        n = batch.num_rows
        yield RawBatch(path, layout(columns), pa.Table.from_batches([batch]),
                       np.arange(start, start + n, dtype=np.int64), [])
        start += n
  except (pa.ArrowInvalid, OSError) as e:
    raise UnreadableFileError(f"{path}: cannot read as Parquet: {e}") from e


def read_jsonl(path: str):
  """JSON lines: one object a line; a line that is not a JSON object is malformed."""
  try:
    with _open(path) as f:
      text = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="\n")
      records, rows, malformed, columns = [], [], [], {}
      for number, line in enumerate(text, start=1):
        record = _json_object(line)
        if record is None:
          if line.strip():
            malformed.append((number, line.rstrip("\n")))
          else:
            malformed.append((number, ""))
          continue
        records.append(record)
        rows.append(number)
        columns.update(dict.fromkeys(record))
        if len(records) == BATCH_ROWS:
          yield _json_batch(path, records, rows, columns, malformed)
          records, rows, malformed = [], [], []
      if records or malformed:
        yield _json_batch(path, records, rows, columns, malformed)
  except (OSError, EOFError) as e:
    raise UnreadableFileError(f"{path}: cannot read as JSON lines: {e}") from e


def _json_object(line: str):
  try:
    record = json.loads(line)
  except ValueError:
    return None
  return record if isinstance(record, dict) else None


def _json_cell(value):
  """A JSON value as the text cell of its column (numbers and objects as JSON)."""
  if value is None or isinstance(value, str):
    return value
  return json.dumps(value)


def _json_batch(path, records, rows, columns, malformed) -> RawBatch:
  table = pa.table({c: pa.array([_json_cell(r.get(c)) for r in records], pa.string())
                    for c in columns})
  return RawBatch(path, layout(columns), table, np.asarray(rows, np.int64), malformed)


def head_timestamps(path: str, fmt: str, n: int = 32) -> tuple[str, pa.Array] | None:
  """(name, first n cells as the reader yields them) of a canonical file's timestamp
  column, for pipeline.parse.check_times before the pipeline runs; None when the
  head names no such column or cannot be read (the reader then names the problem)."""
  try:
    if fmt == "parquet":
      with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        parquet = pq.ParquetFile(f)
        name = _timestamp_name(parquet.schema_arrow.names)
        batch = name and next(parquet.iter_batches(batch_size=n, columns=[name]), None)
        return (name, batch.column(0)) if batch else None
    with _open(path) as f:
      lines = [f.readline().decode("utf-8-sig", errors="replace") for _ in range(n + 1)]
  except (OSError, EOFError, ValueError):
    return None
  if fmt == "jsonl":
    records = [r for r in map(_json_object, lines) if r is not None]
    name = _timestamp_name(list(dict.fromkeys(k for r in records for k in r)))
    cells = [_json_cell(r.get(name)) for r in records]
  else:
    rows = list(csv.reader(line for line in lines if line))
    name = _timestamp_name(rows[0]) if rows else None
    cells = [row[rows[0].index(name)] for row in rows[1:]
             if name and len(row) == len(rows[0])]
  return (name, pa.array(cells, pa.string())) if name and cells else None


def _timestamp_name(columns) -> str | None:
  """The column parse_batch reads timestamps from: the first whose alias is timestamp."""
  return next((c for c in columns if normalise_alias(c) == "timestamp"), None)


READERS = {"csv": read_csv, "parquet": read_parquet, "jsonl": read_jsonl}


class ReadRaw(beam.PTransform):
  """Sorted input paths -> RawBatch elements (reshuffled so files spread over workers)."""

  def __init__(self, paths: list[str], forced_format: str = "auto"):
    super().__init__()
    self._paths = sorted(paths)
    self._format = forced_format
    for path in self._paths:  # fail fast, before any work, on an unknown extension
      file_format(path, forced_format)

  def expand(self, pbegin):
    forced = self._format
    return (pbegin
            | "Paths" >> beam.Create(self._paths)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.FlatMap(lambda p: READERS[file_format(p, forced)](p)
                                     ).with_output_types(RawBatch))
