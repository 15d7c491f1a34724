"""Stage 1, ReadRaw: input globs to batches of raw rows, as read, per file.

Files are CSV (optionally gzipped: the bytes tell, not the name), Parquet or JSON
lines, on any filesystem Beam knows (local, gs://). A batch keeps cells as the file
had them (CSV and JSONL cells as bytes/strings, Parquet columns typed; only
--decimal ',' rewrites decimal-comma numbers) with the line (CSV, JSONL) or row
(Parquet) number of every row, so that parsing can dead-letter any cell with its
origin.
Rows that fail before any cell can be read (wrong field count, invalid JSON) travel
in `malformed`. A file that cannot be opened or decoded at all fails the pipeline
with its name: that is an unreadable input, not bad rows.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import io
import json
import logging
import os
import zlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline import exchange, gcs
from pipeline.sources import common, detection, registry
from schemas.features import canonical_name, normalise_alias

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

  A folder (a path ending in '/', or a local directory) is a device's export folder
  (registry.Device.folder_file; an Empatica E4 session): it stands for its files
  (ACC.csv, HR.csv, ...); other files in it, such as info.txt, are documentation
  and not read (logged).
  """
  paths = set()
  for pattern in patterns:
    if gcs.is_local(pattern) and glob.has_magic(pattern.split("/", 1)[0]):
      pattern = "./" + pattern  # Beam's local match finds nothing for 'part*.csv'
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
  """The files of a device's export folder (registry.Device.folder_file)."""
  members = sorted(m.path for r in FileSystems.match([folder.rstrip("/") + "/*"])
                   for m in r.metadata_list)
  try:
    _, names = registry.folder_device(folder, [common.basename(m) for m in members])
  except common.SourceError as e:
    raise UnreadableFileError(f"--input {e}") from None
  files = [m for m in members if common.basename(m) in names]
  skipped = sorted(set(members) - set(files))
  if skipped:
    logging.info("%s: not export files, not read: %s", folder, ", ".join(skipped))
  return files


@contextlib.contextmanager
def _open(path: str):
  """A binary stream of the file's bytes, gunzipped when the bytes are gzip's (the
  one rule of pipeline.sources.common.ungzip, which detection uses too)."""
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    yield common.ungzip(f)


# Columns that say what a row is; a header may name each once only (check_columns).
_ID_COLUMNS = ("subject_id", "timestamp", "feature", "value")
# Columns whose cells are text, never numbers: --decimal leaves them as they are.
_TEXT_COLUMNS = ("subject_id", "timestamp", "feature")
# A number written with a decimal comma ('33,00', '-0,5'), for --decimal ','.
_DECIMAL_COMMA = r"^(\s*[-+]?\d*),(\d+\s*)$"


def read_csv(path: str, delimiter: str = ",", decimal: str = "."):
  """Streams a CSV file: cells as bytes, so one undecodable byte spoils one row only.

  delimiter: the field separator (--csv_delimiter). decimal: '.' or ',' (--decimal);
  with ',' a cell of a numeric column that is a decimal-comma number ('33,00') is
  read as that number ('33.00'); other cells stay as they are. A UTF-8 byte-order
  mark and CRLF line ends are accepted. A row is one line: a line whose quotes do
  not pair up is malformed (see _PairedQuotes), so an unterminated quote cannot
  swallow the lines after it. Raises UnreadableFileError (naming the file) for a
  file that cannot be read, has no header, or whose header repeats a column.
  """
  malformed = []
  try:
    with _open(path) as f:
      columns = _header(path, f.readline(), delimiter)
      lines = _PairedQuotes(f, malformed)

      def invalid(row):
        malformed.append((lines.physical(row.number), row.text))
        return "skip"

      try:
        reader = pcsv.open_csv(
            pa.PythonFile(lines, mode="r"),
            read_options=pcsv.ReadOptions(use_threads=False, block_size=_BLOCK,
                                          column_names=columns),
            parse_options=pcsv.ParseOptions(delimiter=delimiter,
                                            invalid_row_handler=invalid,
                                            ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.binary() for c in columns}, strings_can_be_null=False,
                quoted_strings_can_be_null=False))
      except pa.ArrowInvalid:
        if lines.handed:
          raise
        reader = ()  # a header-only file (or every line set aside): no rows, no error
      line = 2
      for batch in reader:
        n = batch.num_rows
        bad = sorted(m[0] for m in malformed if m[0] >= line)
        rows, line = _skip_lines(line, n, bad)
        table = pa.Table.from_batches([batch])
        if decimal == ",":
          table = _decimal_commas(table)
        for start in range(0, n, BATCH_ROWS):
          yield RawBatch(path, layout(columns), table.slice(start, BATCH_ROWS),
                         rows[start:start + BATCH_ROWS], [])
  except UnreadableFileError:
    raise
  except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as e:
    raise UnreadableFileError(f"{path}: cannot read as CSV: {e}") from e
  if malformed:
    yield RawBatch(path, layout(columns), pa.table({c: pa.array([], pa.binary())
                                                   for c in columns}),
                   np.zeros(0, np.int64), sorted(malformed))


def _header(path: str, line: bytes, delimiter: str) -> list[str]:
  """The column names of a CSV header line (BOM and line end stripped)."""
  header = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
  columns = next(csv.reader([header], delimiter=delimiter)) if header else []
  if not columns or not any(columns):
    raise UnreadableFileError(f"{path}: empty file or no CSV header")
  if len(columns) == 1:
    hint = detection.delimiter_hint(header)
    if hint:
      raise UnreadableFileError(f"{path}: the header {header[:120]!r} is one column "
                                f"when split on {delimiter!r}; {hint}")
  check_columns(path, columns)
  warn_alias_columns(path, columns)
  return columns


def warn_alias_columns(path: str, columns) -> None:
  """Warns, naming the columns, when two columns hold one LSM feature under different
  aliases ('heart_rate' and 'HR'): allowed (check_columns), but where a row has both,
  the second column's reading is dead-lettered as a duplicate, so the user should know
  which column wins."""
  first: dict[str, str] = {}
  for name in columns:
    feature = canonical_name(name)
    if feature and feature in first:
      logging.warning("%s: columns %r and %r both hold %s; where a row has both, %r is "
                      "read and %r is dead-lettered as duplicate", path, first[feature],
                      name, feature, first[feature], name)
    elif feature:
      first[feature] = name


def check_columns(path: str, columns) -> None:
  """Raises UnreadableFileError, naming the file and the column, when a header names
  a column twice, or names two columns that both mean subject_id, timestamp, feature
  or value ('timestamp' and 'Timestamp'): which one holds the data cannot be told.
  Two columns of one LSM feature under different aliases ('HR', 'heart_rate') are
  allowed: the second column's readings of a row that the first has are duplicates.
  """
  seen = {}
  for number, name in enumerate(columns, start=1):
    key = name if normalise_alias(name) not in _ID_COLUMNS else normalise_alias(name)
    if key in seen:
      raise UnreadableFileError(
          f"{path}: column {name!r} (column {number}) repeats column "
          f"{columns[seen[key] - 1]!r} (column {seen[key]}) of the header; rename or "
          "remove one")
    seen[key] = number


def _decimal_commas(table: pa.Table) -> pa.Table:
  """Decimal-comma numbers in the numeric columns as decimal-point ones (--decimal ',')."""
  for i, name in enumerate(table.column_names):
    if normalise_alias(name) not in _TEXT_COLUMNS:
      table = table.set_column(i, name, pc.replace_substring_regex(
          table.column(i), _DECIMAL_COMMA, r"\1.\2"))
  return table


_BLOCK = 8 << 20


class _PairedQuotes(io.RawIOBase):
  """A CSV stream after its header, less the lines whose '"' do not pair up.

  A CSV cell may quote a line break, but in per-minute data it never does, while a
  lost closing quote would make the parser swallow every line up to the next '"'
  (hundreds of rows, silently). So a row is one line here: a line with an odd
  number of quotes is set aside as malformed, (line number, text), and the parser
  never sees it. Lines without any quote (most files) cost one bytes.find a block.
  """

  def __init__(self, stream, malformed: list):
    super().__init__()
    self._stream, self._malformed = stream, malformed
    self._line = 2  # the line number of the next line read (line 1 is the header)
    self._rest, self._out, self._eof = b"", b"", False
    self._dropped = []  # line numbers set aside, ascending
    self.handed = 0  # bytes handed to the parser

  def readable(self) -> bool:
    return True

  def read(self, size: int = -1) -> bytes:
    while not self._eof and (size < 0 or len(self._out) < size):
      self._out += self._next_block()
    cut = len(self._out) if size < 0 else size
    data, self._out = self._out[:cut], self._out[cut:]
    self.handed += len(data)
    return data

  def physical(self, number: int) -> int:
    """The file's line number of the parser's row `number` (1-based among the lines
    it was handed, which start at line 2 and skip the dropped ones)."""
    dropped = np.asarray(self._dropped, np.int64)
    before = np.searchsorted(dropped - 1 - np.arange(len(dropped)), number, side="right")
    return int(number + 1 + before)

  def _next_block(self) -> bytes:
    chunk = self._stream.read(_BLOCK)
    data = self._rest + chunk
    if chunk:
      cut = data.rfind(b"\n") + 1
      data, self._rest = data[:cut], data[cut:]
    else:
      self._eof, self._rest = True, b""
    first = self._line
    self._line += data.count(b"\n")
    return data if b'"' not in data else self._drop_unpaired(data, first)

  def _drop_unpaired(self, data: bytes, first: int) -> bytes:
    """`data` (whole lines, the first numbered `first`) less its lines of odd quotes."""
    octets = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(octets == ord("\n")) + 1
    if not len(ends) or ends[-1] != len(data):
      ends = np.append(ends, len(data))
    starts = np.concatenate([[0], ends[:-1]])
    quotes = np.flatnonzero(octets == ord('"'))
    odd = np.flatnonzero((np.searchsorted(quotes, ends) - np.searchsorted(quotes, starts))
                         % 2)
    if not len(odd):
      return data
    kept, start = [], 0
    for i in odd:
      kept.append(data[start:starts[i]])
      start = ends[i]
      self._dropped.append(first + int(i))
      self._malformed.append((first + int(i), data[starts[i]:ends[i]].decode(
          "utf-8", errors="replace").rstrip("\r\n")))
    kept.append(data[start:])
    return b"".join(kept)


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
      check_columns(path, columns)
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


def check_json_lines(path: str) -> None:
  """Raises UnreadableFileError when a .json/.jsonl file is one JSON document (an
  array, or a pretty-printed object) rather than one object per line: read as JSON
  lines, each of its physical lines would be dead-lettered as a malformed row.
  Arrays a device reads (Google Takeout's Fitbit heart_rate-YYYY-MM-DD.json) are
  detected before this check (devices._detect)."""
  try:
    with _open(path) as f:
      first = next((line for line in iter(f.readline, b"") if line.strip()), b"")
  except (OSError, EOFError) as e:
    raise UnreadableFileError(f"{path}: cannot read as JSON lines: {e}") from e
  text = first.decode("utf-8-sig", errors="replace").strip()
  if text and _json_object(text) is None and text[0] in "[{":
    raise UnreadableFileError(
        f"{path}: one JSON document (first line {text[:60]!r}), not JSON lines (one "
        "object per line, schemas/raw.py), and no device format accepts it (see "
        "--format): convert it to the canonical long format "
        "(subject_id,timestamp,feature,value)")


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


def _json_table(records, columns) -> pa.Table:
  """JSON records as a table of text cells, one column per name in `columns`."""
  return pa.table({c: pa.array([_json_cell(r.get(c)) for r in records], pa.string())
                   for c in columns})


def _json_batch(path, records, rows, columns, malformed) -> RawBatch:
  return RawBatch(path, layout(columns), _json_table(records, columns),
                  np.asarray(rows, np.int64), malformed)


def head_table(path: str, fmt: str, n: int = 32, delimiter: str = ",") -> pa.Table | None:
  """A canonical file's first n rows as the reader yields them (CSV and JSON lines:
  text cells; a JSON lines file's columns are the keys of its first n records), for
  the plan's checks before the pipeline runs (its id columns, pipeline.parse.check_times
  on its timestamps); None when the head cannot be read (the reader then names the
  problem). delimiter: the CSV separator (--csv_delimiter)."""
  try:
    if fmt == "parquet":
      with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        parquet = pq.ParquetFile(f)
        batch = next(parquet.iter_batches(batch_size=n), None)
        return pa.Table.from_batches([batch] if batch else [], schema=parquet.schema_arrow)
    with _open(path) as f:
      lines = [f.readline().decode("utf-8-sig", errors="replace") for _ in range(n + 1)]
  except (OSError, EOFError, ValueError):
    return None
  if fmt == "jsonl":
    records = [r for r in map(_json_object, lines) if r is not None]
    return _json_table(records, list(dict.fromkeys(k for r in records for k in r)))
  rows = list(csv.reader((line for line in lines if line), delimiter=delimiter))
  if not rows:
    return None
  full = [row for row in rows[1:] if len(row) == len(rows[0])]
  return pa.Table.from_arrays([pa.array([row[i] for row in full], pa.string())
                               for i in range(len(rows[0]))], names=rows[0])


def timestamp_name(columns) -> str | None:
  """The column parse_batch reads timestamps from: the first whose alias is timestamp."""
  return next((c for c in columns if normalise_alias(c) == "timestamp"), None)


READERS = {"csv": read_csv, "parquet": read_parquet, "jsonl": read_jsonl}


class ReadRaw(beam.PTransform):
  """Sorted input paths -> RawBatch elements (reshuffled so files spread over workers)."""

  def __init__(self, paths: list[str], forced_format: str = "auto",
               delimiter: str = ",", decimal: str = "."):
    super().__init__()
    self._paths = sorted(paths)
    self._format, self._csv = forced_format, {"delimiter": delimiter, "decimal": decimal}
    for path in self._paths:  # fail fast, before any work, on an unknown extension
      file_format(path, forced_format)

  def expand(self, pbegin):
    """RawBatch: up to BATCH_ROWS rows of one file as an Arrow table plus row numbers.
    Raises UnreadableFileError naming the file when it cannot be read as its format
    (an unknown extension fails at construction, before anything runs)."""
    return (pbegin
            | "Paths" >> beam.Create(self._paths)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.FlatMap(read_file, self._format, self._csv
                                     ).with_output_types(RawBatch))


def read_file(path: str, forced: str = "auto", csv_options: dict | None = None):
  """RawBatches of one file, by its format; csv_options: read_csv's delimiter, decimal."""
  fmt = file_format(path, forced)
  return READERS[fmt](path, **(csv_options or {})) if fmt == "csv" else READERS[fmt](path)
