"""Stage 2, ParseReadings: raw batches to validated readings per subject, and dead letters.

Vectorised over a batch with Arrow casts; only the rare bad cells fall back to
per-cell Python. Row reasons are checked in schemas.raw.ROW_REASONS order, then each
reading of a parsed row in READING_REASONS order (the first failing reason wins).
Subject ids are replaced by their keyed hash here, so grouping and everything after
sees only hashes. Dead-letter entries keep the raw cells (with the raw id): they stay
in the output's dead_letter/ folder and are for the data owner, not for sharing.
"""

from __future__ import annotations

import dataclasses
import json
import typing

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import counts, exchange
from schemas import record
from schemas.features import FEATURES, canonical_name, feature_array, normalise_alias
from schemas.raw import READING_REASONS, ROW_REASONS

VALID_LOW = feature_array("valid_range")[:, 0]
VALID_HIGH = feature_array("valid_range")[:, 1]
UNKNOWN = -1
_OK = len(READING_REASONS)  # reading code for "used so far"


@dataclasses.dataclass
class Readings:
  """Valid readings of one subject from one batch of one file, in one of two forms.

  time: int64 nanoseconds since the epoch, UTC; row: row number in `source`.
  Long form (`feature` set): one reading per entry, feature int16 (LSM order) and
  value float64 [n]. Wide form (`feature` None): one input row per entry, value
  float32 [n, F] with NaN where the row has no valid reading; 5x smaller to shuffle
  than one entry per reading. Range checks happen before the float32 cast.
  """
  source: str
  time: np.ndarray
  row: np.ndarray
  value: np.ndarray
  feature: np.ndarray | None = None

  def long(self):
    """(time, feature, value, row), one entry per reading."""
    if self.feature is not None:
      return self.time, self.feature, self.value, self.row
    r, f = np.nonzero(~np.isnan(self.value))
    return self.time[r], f.astype(np.int16), self.value[r, f].astype(np.float64), self.row[r]


exchange.register(Readings)


def dead_letter(source: str, row, reason: str, raw, subject: str | None = None) -> str:
  entry = {"source": source, "row": None if row is None else int(row), "reason": reason,
           "raw": raw}
  if subject is not None:
    entry["subject"] = subject
  return json.dumps(entry, sort_keys=True, default=str)


class _Column:
  """One input column: numeric columns as float64, text as an Arrow string array.

  empty: null or blank cells; undecodable: cells whose bytes are not UTF-8.
  values (numeric): a read-only view of the column's data; undefined where empty.
  """

  def __init__(self, column):
    column = _one_array(column)
    n = len(column)
    self.undecodable = np.zeros(n, bool)
    self.numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if self.numeric:
      self.array = column
      self.values = _values(pc.cast(column, pa.float64()))
      self.empty = _nulls(column)
      return
    if pa.types.is_binary(column.type):
      try:
        column = pc.cast(column, pa.string())
      except pa.ArrowInvalid:
        column = self._decode(column)
    elif pa.types.is_timestamp(column.type):
      self.array = column
      self.empty = _nulls(column)
      return
    elif not pa.types.is_string(column.type):
      column = pc.cast(column, pa.string())
    self.array = pc.utf8_trim_whitespace(column)
    self.empty = pc.fill_null(pc.equal(self.array, ""), True).to_numpy(zero_copy_only=False)

  def _decode(self, column):
    cells = column.to_pylist()
    for i, cell in enumerate(cells):
      try:
        cells[i] = None if cell is None else cell.decode("utf-8")
      except UnicodeDecodeError:
        cells[i], self.undecodable[i] = None, True
    return pa.array(cells, pa.string())

  def numbers(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 values at `index` and a bool array of cells that are not numbers.

    A numeric column's value at an empty cell is undefined: callers count empty
    cells as no number (long) or as no reading (wide) and never use that value.
    """
    if self.numeric:
      return self.values[index], np.zeros(len(index), bool)
    cells = self.array.take(pa.array(index, pa.int64()))
    try:
      return (pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64),
              np.zeros(len(index), bool))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
      pass  # some cell is not a number: parse one by one
    values = np.full(len(index), np.nan)
    bad = np.zeros(len(index), bool)
    for i, cell in enumerate(cells.to_pylist()):
      try:
        values[i] = float(cell)
      except (TypeError, ValueError):
        bad[i] = True
    return values, bad

  def readings(self, reading: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """numbers() for the cells where `reading`, as full-length columns (values
    undefined elsewhere); None for "no cell is a non-number", the numeric case."""
    if self.numeric:
      return self.values, None
    index = np.flatnonzero(reading)
    values, bad = self.numbers(index)
    full, not_number = np.full(len(reading), np.nan), np.zeros(len(reading), bool)
    full[index], not_number[index] = values, bad
    return full, not_number

  def codes(self) -> tuple[np.ndarray, list]:
    """Dictionary codes (-1 for empty) and the distinct values, for ids and names."""
    array = self.array if not self.numeric else pc.cast(self.array, pa.string())
    encoded = pc.dictionary_encode(array)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def _one_array(column) -> pa.Array:
  """The column as one Arrow array; a batch's columns are one chunk, taken as is
  (combine_chunks would copy every buffer)."""
  if isinstance(column, pa.ChunkedArray):
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
  return column


def _values(array: pa.Array) -> np.ndarray:
  """A float64 array's data buffer, without copy and without filling its nulls."""
  if array.null_count == len(array):  # the data buffer may be missing
    return np.full(len(array), np.nan)
  return np.frombuffer(array.buffers()[1], np.float64, len(array), array.offset * 8)


def _nulls(array: pa.Array) -> np.ndarray:
  """Null cells as bool [n], unpacked from the validity bitmap (is_null() is 8x slower)."""
  n, start = len(array), array.offset
  if array.null_count in (0, n):
    return np.full(n, array.null_count > 0)
  bitmap = np.frombuffer(array.buffers()[0], np.uint8)[start // 8:(start + n + 7) // 8]
  return np.unpackbits(bitmap, bitorder="little")[start % 8:start % 8 + n] == 0


_BAD_TIME = np.iinfo(np.int64).min
_UTC_NS = pa.timestamp("ns", tz="UTC")


def parse_times(column) -> np.ndarray:
  """int64 ns since the epoch (UTC); INT64_MIN where not ISO 8601 with an offset.

  Text is cast whole; where the cast rejects a cell, halves are cast, down to single
  cells once small, so that a few bad timestamps cost a few more casts, not one cast
  per cell (30 us a cell: 2 s per batch).
  """
  if pa.types.is_timestamp(column.type):
    if column.type.tz is None:  # a naive timestamp: the offset is unknown
      return np.full(len(column), _BAD_TIME, np.int64)
    return _nanoseconds(pc.cast(column, _UTC_NS))
  out = np.full(len(column), _BAD_TIME, np.int64)
  parts = [(0, len(column))]
  while parts:
    start, n = parts.pop()
    try:
      out[start:start + n] = _nanoseconds(pc.cast(column.slice(start, n), _UTC_NS))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
      if n > 1:
        step = n // 2 if n > 16 else 1
        parts += [(s, min(step, start + n - s)) for s in range(start, start + n, step)]
  return out


def _nanoseconds(values) -> np.ndarray:
  return values.fill_null(pa.scalar(_BAD_TIME, values.type)).to_numpy().view(np.int64)


def _raw_row(table: pa.Table, i: int) -> dict:
  return {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
          for k, v in table.slice(i, 1).to_pylist()[0].items()}


_PARSED = len(ROW_REASONS)


def parse_batch(batch, key: bytes):
  """Yields (subject hash, Readings), dead-letter JSON lines (tagged) and counts (tagged)."""
  table, source, n = batch.table, batch.source, batch.table.num_rows
  tally = {"rows_read": n + len(batch.malformed),
           "rows_dead_letter/malformed_row": len(batch.malformed)}
  for row, text in batch.malformed:
    yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
        source, row, "malformed_row", text))
  names = {normalise_alias(c): c for c in reversed(table.column_names)}
  columns = {c: _Column(table.column(c)) for c in table.column_names}
  row_reason = np.full(n, _PARSED, np.int8)
  all_empty = np.ones(n, bool)
  for column in columns.values():
    all_empty &= column.empty
    row_reason[column.undecodable] = 0  # undecodable bytes spoil the whole row
  if "subject_id" in names and "timestamp" in names:
    subject, stamp = columns[names["subject_id"]], columns[names["timestamp"]]
    times = parse_times(stamp.array)
    codes, ids = subject.codes()
    row_reason[(times == _BAD_TIME) & (row_reason == _PARSED)] = 2
    row_reason[subject.empty & (row_reason >= 1)] = 1
  else:
    row_reason[:] = 0
  row_reason[all_empty] = 0
  for code, reason in enumerate(ROW_REASONS):
    bad = np.flatnonzero(row_reason == code)
    tally[f"rows_dead_letter/{reason}"] = tally.get(f"rows_dead_letter/{reason}", 0) + len(bad)
    for i in bad:
      yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
          source, batch.rows[i], reason, _raw_row(table, i)))
  parsed = row_reason == _PARSED
  tally["rows_parsed"] = int(parsed.sum())
  if not parsed.any():
    yield counts.emit(tally, source)
    return
  hashes = [record.subject_hash(s, key) if s else None for s in ids]
  feature_columns = [c for c in table.column_names
                     if normalise_alias(c) not in ("subject_id", "timestamp")]
  if batch.layout == "long":
    parts = _long_readings(columns[names["feature"]], columns[names["value"]], parsed)
  else:
    parts = _wide_readings(columns, feature_columns, parsed)
  tally["readings_read"], index, reason, name, readings = parts
  for code, why in enumerate(READING_REASONS):
    bad = np.flatnonzero(reason == code)
    if len(bad):
      tally[f"readings_dead_letter/{why}"] = len(bad)
    for j in bad:
      i = index[j]
      yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
          source, batch.rows[i], why, _raw_row(table, i) | {"reading": name[j]},
          hashes[codes[i]]))
  yield counts.emit(tally, source)
  yield from _per_subject(source, readings, codes, hashes, times, batch.rows)


def _per_subject(source, readings, codes, hashes, times, source_rows):
  """(subject hash, Readings) per subject in order of first appearance; rows of a
  subject are usually contiguous already, and then need no sort."""
  rows, feature, value = readings
  subject_codes = codes[rows]
  if np.any(subject_codes[1:] < subject_codes[:-1]):
    order = np.argsort(subject_codes, kind="stable")
    rows, value, subject_codes = rows[order], value[order], subject_codes[order]
    feature = None if feature is None else feature[order]
  time, row = times[rows], source_rows[rows]
  bounds = [0, *(np.flatnonzero(subject_codes[1:] != subject_codes[:-1]) + 1), len(rows)]
  for start, end in zip(bounds[:-1], bounds[1:]):
    if end > start:
      yield hashes[subject_codes[start]], Readings(
          source, time[start:end], row[start:end], value[start:end],
          None if feature is None else feature[start:end])


def _check(feature, values, not_number):
  """Reading codes in READING_REASONS order (unknown_feature first, out_of_range last)."""
  reason = np.full(len(values), _OK, np.int8)
  known = feature >= 0
  f = np.where(known, feature, 0)
  with np.errstate(invalid="ignore"):
    outside = (values < VALID_LOW[f]) | (values > VALID_HIGH[f])
  reason[outside] = READING_REASONS.index("out_of_range")
  reason[~np.isfinite(values)] = READING_REASONS.index("non_finite")
  reason[not_number] = READING_REASONS.index("non_numeric")
  reason[~known] = READING_REASONS.index("unknown_feature")
  return reason


def _valid(target: int, values: np.ndarray, not_number: np.ndarray | None) -> np.ndarray:
  """Where _check would find nothing wrong with a column of one feature (of index
  `target`): the whole column at once, as most cells are fine."""
  if target == UNKNOWN:
    return np.zeros(len(values), bool)
  with np.errstate(invalid="ignore"):
    valid = (np.isfinite(values) & (values >= VALID_LOW[target])
             & (values <= VALID_HIGH[target]))
  return valid if not_number is None else valid & ~not_number


def _long_readings(feature_column, value_column, parsed):
  """Every parsed row is one reading; returns (readings read, row index, reason and
  name of each bad reading, readings)."""
  index = np.flatnonzero(parsed)
  codes, names = feature_column.codes()
  lookup = np.array([_INDEX.get(canonical_name(n), UNKNOWN) if n else UNKNOWN
                     for n in names] + [UNKNOWN], np.int16)
  feature = lookup[codes[index]]  # code -1 (empty) -> the trailing UNKNOWN
  values, not_number = value_column.numbers(index)
  not_number |= value_column.empty[index]
  reason = _check(feature, values, not_number)
  ok = reason == _OK
  bad = np.flatnonzero(~ok)
  return len(index), index[bad], reason[bad], \
      _Lazy(np.array(names + [""], dtype=object), codes[index[bad]]), \
      (index[ok], feature[ok], values[ok])


def _wide_readings(columns, feature_columns, parsed):
  """Non-empty feature cells of parsed rows are readings; a second column of the same
  feature (an alias) in one row is a duplicate of the first valid one.

  Checked a whole column at a time: only the (rare) bad cells go through _check for
  their reason. Returns what _long_readings does.
  """
  n = len(parsed)
  matrix = np.full((n, len(FEATURES)), np.nan, np.float32)
  seen, used = set(), np.zeros(n, bool)
  read, index_parts, reason_parts, name_parts = 0, [], [], []
  for number, column in enumerate(feature_columns):
    cells = columns[column]
    reading = parsed & ~cells.empty
    read += int(np.count_nonzero(reading))
    target = _INDEX.get(canonical_name(column), UNKNOWN)
    values, not_number = cells.readings(reading)
    ok = reading & _valid(target, values, not_number)
    bad = reading & ~ok
    if target != UNKNOWN:
      if target in seen:  # an alias column: cells the first valid reading took
        taken = ok & ~np.isnan(matrix[:, target])
        ok &= ~taken
        bad |= taken
      np.copyto(matrix[:, target], values, casting="same_kind", where=ok)
      seen.add(target)
      used |= ok
    index = np.flatnonzero(bad)
    if len(index):
      reason = _check(np.full(len(index), target, np.int16), values[index],
                      np.zeros(len(index), bool) if not_number is None else not_number[index])
      reason[reason == _OK] = READING_REASONS.index("duplicate")  # valid, but taken
      index_parts.append(index)
      reason_parts.append(reason)
      name_parts.append(np.full(len(index), number, np.int32))
  rows = np.flatnonzero(used)
  readings = (rows, None, matrix if len(rows) == n else matrix[rows])
  if not index_parts:
    return read, np.zeros(0, np.int64), np.zeros(0, np.int8), [], readings
  names = np.array(feature_columns, dtype=object)
  return (read, np.concatenate(index_parts), np.concatenate(reason_parts),
          _Lazy(names, np.concatenate(name_parts)), readings)


class _Lazy:
  """names[codes[j]] on access: the column name of a reading, built only for bad ones."""

  def __init__(self, names, codes):
    self._names, self._codes = names, codes

  def __getitem__(self, j):
    return self._names[self._codes[j]]


_INDEX = {f.name: i for i, f in enumerate(FEATURES)}


class ParseReadings(beam.PTransform):
  """RawBatch -> main: (subject hash, Readings); 'dead_letter': JSON lines; 'counts'."""

  def __init__(self, key: bytes):
    super().__init__()
    self._key = key

  def expand(self, batches):
    key = self._key
    return batches | "Parse" >> beam.FlatMap(parse_batch, key).with_output_types(
        typing.Tuple[str, Readings]).with_outputs(
        counts.DEAD_LETTER, counts.COUNTS, main="readings")
