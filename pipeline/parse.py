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
import pandas as pd
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
  """Validated readings of one subject from one batch (all arrays the same length).

  time: int64 nanoseconds since the epoch, UTC; feature: int16 index in LSM order;
  value: float64 physical value; row: row number in `source`.
  """
  source: str
  time: np.ndarray
  feature: np.ndarray
  value: np.ndarray
  row: np.ndarray


def dead_letter(source: str, row, reason: str, raw, subject: str | None = None) -> str:
  entry = {"source": source, "row": None if row is None else int(row), "reason": reason,
           "raw": raw}
  if subject is not None:
    entry["subject"] = subject
  return json.dumps(entry, sort_keys=True, default=str)


def _strings(column: pa.ChunkedArray):
  """Cells as an object array of str (None when null) and a bool array of undecodable cells."""
  column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
  if pa.types.is_binary(column.type):
    try:
      column = pc.cast(column, pa.string())
    except pa.ArrowInvalid:
      cells = column.to_pylist()
      bad = np.zeros(len(cells), bool)
      for i, cell in enumerate(cells):
        try:
          cells[i] = None if cell is None else cell.decode("utf-8")
        except UnicodeDecodeError:
          cells[i], bad[i] = None, True
      return np.asarray(cells, dtype=object), bad
  elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
    column = pc.cast(column, pa.string())
  return column.to_numpy(zero_copy_only=False), np.zeros(len(column), bool)


def _empty(cells: np.ndarray) -> np.ndarray:
  return np.array([c is None or not c.strip() for c in cells], dtype=bool) \
      if cells.dtype == object else np.zeros(len(cells), bool)


def parse_times(column) -> np.ndarray:
  """int64 ns since the epoch (UTC); INT64_MIN where not ISO 8601 with an offset."""
  bad = np.iinfo(np.int64).min
  if pa.types.is_timestamp(column.type):
    if column.type.tz is None:  # a naive timestamp: the offset is unknown
      return np.full(len(column), bad, np.int64)
    values = pc.cast(column, pa.timestamp("ns", tz="UTC"))
    return values.fill_null(pa.scalar(bad, values.type)).to_numpy().view(np.int64).copy()
  strings = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
  try:
    values = pc.cast(strings, pa.timestamp("ns", tz="UTC"))
    return values.fill_null(pa.scalar(bad, values.type)).to_numpy().view(np.int64).copy()
  except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
    pass  # some cell is bad: parse one by one
  out = np.full(len(strings), bad, np.int64)
  for i, cell in enumerate(strings.to_pylist()):
    if cell:
      try:
        out[i] = pc.cast(pa.array([cell.strip()]), pa.timestamp("ns", tz="UTC"))[0].value
      except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
        pass
  return out


def parse_numbers(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """float64 values and a bool array of cells that are not numbers (objects or floats in)."""
  if cells.dtype != object:
    return cells.astype(np.float64), np.zeros(len(cells), bool)
  try:
    return pc.cast(pa.array(cells, pa.string()), pa.float64()).to_numpy(
        zero_copy_only=False).astype(np.float64), np.zeros(len(cells), bool)
  except (pa.ArrowInvalid, pa.ArrowTypeError):
    pass
  values = np.full(len(cells), np.nan)
  bad = np.zeros(len(cells), bool)
  for i, cell in enumerate(cells):
    try:
      values[i] = float(cell)
    except (TypeError, ValueError):
      bad[i] = True
  return values, bad


def _column_cells(column):
  """Numeric Arrow columns stay numeric (float64, NaN kept, null -> None mask)."""
  column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
  if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
    null = column.is_null().to_numpy(zero_copy_only=False)
    values = pc.cast(column, pa.float64()).fill_null(0.0).to_numpy().copy()
    return values, null, np.zeros(len(column), bool)
  cells, undecodable = _strings(column)
  return cells, _empty(cells), undecodable


def _raw_row(table: pa.Table, i: int) -> dict:
  return {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
          for k, v in table.slice(i, 1).to_pylist()[0].items()}


def parse_batch(batch, key: bytes):
  """Yields (subject hash, Readings), dead-letter JSON lines (tagged) and counts (tagged)."""
  table, source = batch.table, batch.source
  n = table.num_rows
  tally = {"rows_read": n + len(batch.malformed)}
  letters = [dead_letter(source, row, "malformed_row", text) for row, text in batch.malformed]
  tally["rows_dead_letter/malformed_row"] = len(batch.malformed)
  names = {normalise_alias(c): c for c in reversed(table.column_names)}
  row_reason = np.full(n, len(ROW_REASONS), np.int8)  # = parsed
  if "subject_id" not in names or "timestamp" not in names:
    row_reason[:] = 0
    subjects = times = None
  else:
    subjects, subject_empty, subject_bad = _column_cells(table.column(names["subject_id"]))
    if subjects.dtype != object:
      subjects = np.array([str(int(s)) if float(s).is_integer() else str(s)
                           for s in subjects], dtype=object)
    times = parse_times(table.column(names["timestamp"]).combine_chunks())
    row_reason[times == np.iinfo(np.int64).min] = 2
    row_reason[subject_empty] = 1
    row_reason[subject_bad] = 0
  feature_columns = [c for c in table.column_names
                     if normalise_alias(c) not in ("subject_id", "timestamp")]
  cells = {c: _column_cells(table.column(c)) for c in feature_columns}
  all_empty = np.ones(n, bool)
  for c in feature_columns:
    all_empty &= cells[c][1]
    row_reason[cells[c][2]] = 0  # undecodable bytes spoil the whole row
  if subjects is not None:
    all_empty &= subject_empty
  row_reason[all_empty] = 0
  for code, reason in enumerate(ROW_REASONS):
    bad = np.flatnonzero(row_reason == code)
    tally[f"rows_dead_letter/{reason}"] = tally.get(f"rows_dead_letter/{reason}", 0) + len(bad)
    letters += [dead_letter(source, batch.rows[i], reason, _raw_row(table, i)) for i in bad]
  parsed = row_reason == len(ROW_REASONS)
  tally["rows_parsed"] = int(parsed.sum())
  for letter in letters:
    yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, letter)
  if not parsed.any():
    yield counts.emit(tally)
    return
  hashes = {s: record.subject_hash(s, key) for s in set(subjects[parsed])}
  if batch.layout == "long":
    readings = _long_readings(cells, names, parsed)
  else:
    readings = _wide_readings(cells, feature_columns, parsed)
  index, feature, value, reason, name = readings
  tally["readings_read"] = len(index)
  ok = reason == _OK
  for code, why in enumerate(READING_REASONS):
    bad = np.flatnonzero(reason == code)
    if len(bad):
      tally[f"readings_dead_letter/{why}"] = len(bad)
    for j in bad:
      i = index[j]
      yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
          source, batch.rows[i], why, _raw_row(table, i) | {"reading": name[j]},
          hashes[subjects[i]]))
  yield counts.emit(tally)
  index, feature, value = index[ok], feature[ok], value[ok]
  subject_of = np.array([hashes[s] for s in subjects[index]], dtype=object)
  order = np.argsort(subject_of, kind="stable")
  subject_of, index, feature, value = (subject_of[order], index[order], feature[order],
                                       value[order])
  bounds = np.flatnonzero(subject_of[1:] != subject_of[:-1]) + 1
  for part in np.split(np.arange(len(index)), bounds):
    if len(part):
      yield subject_of[part[0]], Readings(source, times[index[part]], feature[part],
                                          value[part], batch.rows[index[part]])


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


def _long_readings(cells, names, parsed):
  index = np.flatnonzero(parsed)
  feature_cells = cells[names["feature"]][0]
  lookup = {}
  feature = np.empty(len(index), np.int16)
  for j, i in enumerate(index):
    cell = feature_cells[i]
    if cell not in lookup:
      canonical = canonical_name(cell) if isinstance(cell, str) else None
      lookup[cell] = UNKNOWN if canonical is None else _INDEX[canonical]
    feature[j] = lookup[cell]
  value_cells, value_empty, _ = cells[names["value"]]
  values, not_number = parse_numbers(value_cells[index])
  not_number |= value_empty[index]
  name = np.array([str(feature_cells[i]) for i in index], dtype=object)
  return index, feature, values, _check(feature, values, not_number), name


def _wide_readings(cells, feature_columns, parsed):
  parts = []
  for column in feature_columns:
    column_cells, empty, _ = cells[column]
    index = np.flatnonzero(parsed & ~empty)
    canonical = canonical_name(column)
    feature = np.full(len(index), UNKNOWN if canonical is None else _INDEX[canonical],
                      np.int16)
    values, not_number = parse_numbers(column_cells[index])
    parts.append((index, feature, values, _check(feature, values, not_number),
                  np.full(len(index), column, dtype=object)))
  if not parts:
    empty = np.zeros(0, np.int64)
    return empty, empty.astype(np.int16), empty.astype(float), empty.astype(np.int8), \
        empty.astype(object)
  return tuple(np.concatenate(p) for p in zip(*parts))


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
