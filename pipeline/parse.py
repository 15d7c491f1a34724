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

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import counts
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


def dead_letter(source: str, row, reason: str, raw, subject: str | None = None) -> str:
  entry = {"source": source, "row": None if row is None else int(row), "reason": reason,
           "raw": raw}
  if subject is not None:
    entry["subject"] = subject
  return json.dumps(entry, sort_keys=True, default=str)


class _Column:
  """One input column: numeric columns as float64, text as an Arrow string array.

  empty: null or blank cells; undecodable: cells whose bytes are not UTF-8.
  """

  def __init__(self, column):
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(column)
    self.undecodable = np.zeros(n, bool)
    self.numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if self.numeric:
      self.array = column
      self.values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
      self.empty = column.is_null().to_numpy(zero_copy_only=False)
      return
    if pa.types.is_binary(column.type):
      try:
        column = pc.cast(column, pa.string())
      except pa.ArrowInvalid:
        column = self._decode(column)
    elif pa.types.is_timestamp(column.type):
      self.array = column
      self.empty = column.is_null().to_numpy(zero_copy_only=False)
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
    """float64 values at `index` and a bool array of cells that are not numbers."""
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

  def codes(self) -> tuple[np.ndarray, list]:
    """Dictionary codes (-1 for empty) and the distinct values, for ids and names."""
    array = self.array if not self.numeric else pc.cast(self.array, pa.string())
    encoded = pc.dictionary_encode(array)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


_BAD_TIME = np.iinfo(np.int64).min


def parse_times(column) -> np.ndarray:
  """int64 ns since the epoch (UTC); INT64_MIN where not ISO 8601 with an offset."""
  if pa.types.is_timestamp(column.type):
    if column.type.tz is None:  # a naive timestamp: the offset is unknown
      return np.full(len(column), _BAD_TIME, np.int64)
    values = pc.cast(column, pa.timestamp("ns", tz="UTC"))
  else:
    try:
      values = pc.cast(column, pa.timestamp("ns", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
      return _parse_times_one_by_one(column)
  return values.fill_null(pa.scalar(_BAD_TIME, values.type)).to_numpy().view(np.int64).copy()


def _parse_times_one_by_one(column) -> np.ndarray:
  out = np.full(len(column), _BAD_TIME, np.int64)
  for i, cell in enumerate(column.to_pylist()):
    if cell:
      try:
        out[i] = pc.cast(pa.array([cell]), pa.timestamp("ns", tz="UTC"))[0].value
      except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
        pass
  return out


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
    yield counts.emit(tally)
    return
  hashes = [record.subject_hash(s, key) if s else None for s in ids]
  feature_columns = [c for c in table.column_names
                     if normalise_alias(c) not in ("subject_id", "timestamp")]
  if batch.layout == "long":
    parts = _long_readings(columns[names["feature"]], columns[names["value"]], parsed)
  else:
    parts = _wide_readings(columns, feature_columns, parsed)
  index, reason, name, readings = parts
  tally["readings_read"] = len(index)
  for code, why in enumerate(READING_REASONS):
    bad = np.flatnonzero(reason == code)
    if len(bad):
      tally[f"readings_dead_letter/{why}"] = len(bad)
    for j in bad:
      i = index[j]
      yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
          source, batch.rows[i], why, _raw_row(table, i) | {"reading": name[j]},
          hashes[codes[i]]))
  yield counts.emit(tally)
  rows, feature, value = readings
  order = np.argsort(codes[rows], kind="stable")
  rows, value = rows[order], value[order]
  feature = None if feature is None else feature[order]
  subject_codes = codes[rows]
  bounds = np.flatnonzero(subject_codes[1:] != subject_codes[:-1]) + 1
  for part in np.split(np.arange(len(rows)), bounds):
    if len(part):
      yield hashes[subject_codes[part[0]]], Readings(
          source, times[rows[part]], batch.rows[rows[part]], value[part],
          None if feature is None else feature[part])


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


def _long_readings(feature_column, value_column, parsed):
  """Every parsed row is one reading; returns (row index, reason, name, readings)."""
  index = np.flatnonzero(parsed)
  codes, names = feature_column.codes()
  lookup = np.array([_INDEX.get(canonical_name(n), UNKNOWN) if n else UNKNOWN
                     for n in names] + [UNKNOWN], np.int16)
  feature = lookup[codes[index]]  # code -1 (empty) -> the trailing UNKNOWN
  values, not_number = value_column.numbers(index)
  not_number |= value_column.empty[index]
  reason = _check(feature, values, not_number)
  ok = reason == _OK
  return index, reason, _Lazy(np.array(names + [""], dtype=object), codes[index]), \
      (index[ok], feature[ok], values[ok])


def _wide_readings(columns, feature_columns, parsed):
  """Non-empty feature cells of parsed rows are readings; a second column of the same
  feature (an alias) in one row is a duplicate of the first valid one."""
  n = len(parsed)
  matrix = np.full((n, len(FEATURES)), np.nan)
  index_parts, reason_parts, name_parts = [], [], []
  for number, column in enumerate(feature_columns):
    cells = columns[column]
    index = np.flatnonzero(parsed & ~cells.empty)
    target = _INDEX.get(canonical_name(column), UNKNOWN)
    values, not_number = cells.numbers(index)
    reason = _check(np.full(len(index), target, np.int16), values, not_number)
    if target != UNKNOWN:
      ok = reason == _OK
      taken = ok & ~np.isnan(matrix[index, target])
      reason[taken] = READING_REASONS.index("duplicate")
      ok &= ~taken
      matrix[index[ok], target] = values[ok]
    index_parts.append(index)
    reason_parts.append(reason)
    name_parts.append(np.full(len(index), number, np.int32))
  rows = np.flatnonzero(~np.all(np.isnan(matrix), axis=1))
  readings = (rows, None, matrix[rows].astype(np.float32))
  if not index_parts:
    return np.zeros(0, np.int64), np.zeros(0, np.int8), [], readings
  names = np.array(feature_columns, dtype=object)
  return (np.concatenate(index_parts), np.concatenate(reason_parts),
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
    return batches | "Parse" >> beam.FlatMap(parse_batch, key).with_outputs(
        counts.DEAD_LETTER, counts.COUNTS, main="readings")
