"""Stage 2, ParseReadings: raw batches to validated readings per subject, and dead letters.

Vectorised over a batch with Arrow casts; only the rare bad cells fall back to
per-cell Python. Row reasons are checked in schemas.raw.ROW_REASONS order, then each
reading of a parsed row in READING_REASONS order (the first failing reason wins).
Timestamps: every unambiguous form is read (parse_times: ISO 8601 with offset or
'Z', with 'T' or a space, Apple's ' -0800'; epoch seconds or milliseconds; Parquet
timestamp types), one form per batch; local times without offset (naive ISO, US
m/d/Y from spreadsheets, naive Parquet timestamps) only under --tz, by the device
adapters' DST rule; times outside --min_time/--max_time are bad_timestamp.
Subject ids are replaced by their keyed hash here (the key resolved on the worker:
pipeline.keys), so grouping and everything after sees only hashes. Dead-letter
entries keep the raw cells (with the raw id) and no hash: they go to --dead_letter_dir,
outside the shareable output, and are for the data owner.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import json
import logging
import re
import typing

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import counts, exchange, read
from pipeline.keys import KeyedFlatMap, KeyRef
from pipeline.sources import common
from schemas import record
from schemas.features import (ALIASES, FEATURES, canonical_name, feature_array,
                              normalise_alias)
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


def dead_letter(source: str, row, reason: str, raw, readings: int | None = None) -> str:
  """One dead-letter JSON line; `readings`: how many readings the entry stands for
  (an unknown wide column: all its readings of a batch, from `row` on).

  No subject hash: the raw content (and the path) may name the subject, and a hash
  beside it would re-identify the subject's windows in the shareable output."""
  entry = {"source": source, "row": None if row is None else int(row), "reason": reason,
           "raw": raw}
  if readings is not None:
    entry["readings"] = int(readings)
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
  """Null cells as bool [n], unpacked from the validity bitmap (faster than is_null())."""
  n, start = len(array), array.offset
  if array.null_count in (0, n):
    return np.full(n, array.null_count > 0)
  bitmap = np.frombuffer(array.buffers()[0], np.uint8)[start // 8:(start + n + 7) // 8]
  return np.unpackbits(bitmap, bitorder="little")[start % 8:start % 8 + n] == 0


_BAD_TIME = np.iinfo(np.int64).min  # also NaT in numpy and pandas
_UTC_NS = pa.timestamp("ns", tz="UTC")
_NAIVE_NS = pa.timestamp("ns")
UNITS = ("auto", "iso", "s", "ms")
# Epoch numbers below this are seconds, others milliseconds (--timestamp_unit auto):
# 10 vs 13 digits for present-day times. Seconds from 1e11 on (year 5138) or
# milliseconds below it (before 1973-03-03) lie outside any sensible --min_time /
# --max_time, so the guess never reads a plausible time wrongly.
EPOCH_MS_FROM = 1e11
MIN_TIME, MAX_TIME = "1990-01-01", "2100-01-01"


@dataclasses.dataclass(frozen=True)
class TimeRule:
  """How timestamp cells become UTC instants.

  tz: timezone of local times without offset (pipeline.sources.common.parse_tz text:
    IANA name or fixed offset); None: such times fail the file (TimestampError).
  unit: epoch numbers as 's', 'ms', 'auto' (by magnitude, EPOCH_MS_FROM) or 'iso'
    (numbers are no timestamps: TimestampError).
  min_ns, max_ns: plausible instants [min, max), int64 ns UTC; others are bad.
  """
  tz: str | None = None
  unit: str = "auto"
  min_ns: int = int(np.datetime64(MIN_TIME, "ns").astype(np.int64))
  max_ns: int = int(np.datetime64(MAX_TIME, "ns").astype(np.int64))


class TimestampError(ValueError):
  """A timestamp column that cannot be read without an option (--tz, --timestamp_unit)
  or whose dates read two ways; the message says what to pass."""


# Cell forms, one per batch (the most common among a sample of cells), so that a
# column is cast once in one form; cells of another form are bad_timestamp.
_FORMS = (
    ("epoch", re.compile(r"[+-]?\d+(\.\d*)?")),
    ("offset", re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?"
                          r"(Z|[+-]\d{2}(:?\d{2})?)", re.IGNORECASE)),
    ("spaced_offset", re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)? "
                                 r"[+-]\d{2}:?\d{2}")),
    ("naive", re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?")),
    ("%m/%d/%Y %H:%M", re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}")),
    ("%m/%d/%Y %H:%M:%S", re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2}")),
    ("%m/%d/%Y %I:%M %p", re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2} [AP]M", re.I)),
    ("%m/%d/%Y %I:%M:%S %p", re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M",
                                        re.I)),
)
_PATTERNS = dict(_FORMS)
_SPACED_OFFSET = r"^(.*\d) ([+-]\d{2}:?\d{2})$"
_SAMPLE = 31


def _sample(column) -> list[str]:
  """Up to _SAMPLE non-empty cells spread over the column, as text."""
  index = np.unique(np.linspace(0, len(column) - 1, min(len(column), _SAMPLE)).astype(int))
  cells = column.take(pa.array(index, pa.int64())).to_pylist() if len(column) else []
  return [str(c).strip() for c in cells if c is not None and str(c).strip()]


def time_form(column) -> tuple[str | None, str]:
  """(form, an example cell) of a timestamp column: 'aware' / 'naive_type' (Arrow
  timestamp types), 'epoch' (numbers), 'offset', 'spaced_offset', 'naive' or a US
  strptime format; None when no sampled cell has a known form."""
  cells = _sample(column)
  example = cells[0] if cells else ""
  if pa.types.is_timestamp(column.type):
    return ("naive_type" if column.type.tz is None else "aware"), example
  if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
    return "epoch", example
  votes = collections.Counter()
  for cell in cells:
    form = next((name for name, pattern in _FORMS if pattern.fullmatch(cell)), None)
    if form:
      votes[form] += 1
  if not votes:
    return None, example
  form = votes.most_common(1)[0][0]
  return form, next(c for c in cells if _PATTERNS[form].fullmatch(c))


def parse_times(column, rule: TimeRule = TimeRule(), group: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
  """(int64 ns since the epoch UTC, int8 local-time reason) of each cell; INT64_MIN
  where the cell is not a timestamp of the column's form, is a local time inside a
  spring-forward gap (reason: the row reason nonexistent_local_time, like the device
  adapters, never shifted onto another minute) or in a fall-back hour whose two
  passes the row order cannot tell apart (ambiguous_local_time, never merged), or
  lies outside [rule.min_ns, rule.max_ns). The reason is 0 for other cells.

  The form is decided once per column (time_form) and the column cast whole in it.
  Local times without offset (naive ISO, US m/d/Y, naive Parquet timestamps) become
  UTC by pipeline.sources.common.localise under rule.tz, the device adapters' DST
  rule, with `group` (int [n], e.g. subject codes) as its groups. Raises
  TimestampError for naive times without rule.tz, numbers under unit 'iso', and
  m/d/Y dates whose first field exceeds 12 (day first: they would read wrongly).
  """
  form, example = time_form(column)
  gap = np.zeros(len(column), np.int8)
  if form == "aware":
    out = _cast_cells(column, _UTC_NS)
  elif form == "epoch":
    out = _epoch(column, rule, example)
  elif form in ("offset", "spaced_offset"):
    if form == "spaced_offset":  # Apple: '2024-02-06 19:00:17 -0800'
      column = pc.replace_substring_regex(column, _SPACED_OFFSET, r"\1\2")
    out = _cast_cells(column, _UTC_NS)
  elif form is None:
    out = np.full(len(column), _BAD_TIME, np.int64)
  else:
    out, gap = _local(_naive(column, form), rule, group, example)
  return np.where((out >= rule.min_ns) & (out < rule.max_ns), out, _BAD_TIME), gap


def _naive(column, form: str) -> np.ndarray:
  """Local wall-clock times as int64 ns (INT64_MIN where unreadable)."""
  if form in ("naive_type", "naive"):
    return _cast_cells(column, _NAIVE_NS)
  first = pc.extract_regex(column, r"^(?P<first>\d{1,2})/")
  month = pc.cast(pc.struct_field(first, "first"), pa.int64()).to_numpy(zero_copy_only=False)
  if np.nanmax(month, initial=0) > 12:
    raise TimestampError(
        f"dates like {column[int(np.nanargmax(month))].as_py()!r} have a first field "
        "above 12, so they are day/month/year; only US month/day/year is read (the "
        "others would read wrongly): write ISO 8601 (YYYY-MM-DD) instead")
  return _nanoseconds(pc.strptime(column, format=form, unit="ns", error_is_null=True))


def _local(naive: np.ndarray, rule: TimeRule, group, example: str):
  """Local wall-clock ns -> (UTC ns, local-time reason) by the device adapters' rule."""
  if rule.tz is None:
    raise TimestampError(f"local times without a UTC offset (e.g. {example!r}); pass "
                         "--tz with their timezone (an IANA name such as Europe/Berlin, "
                         "or a fixed offset such as +01:00)")
  local = common.localise(pd.Series(naive.view("datetime64[ns]")),
                          common.parse_tz(rule.tz, "--tz"), group)
  why = np.where(local.nonexistent, _NONEXISTENT, np.where(local.unresolved, _AMBIGUOUS, 0))
  return common.naive_utc(local.utc).view(np.int64), why.astype(np.int8)


def _epoch(column, rule: TimeRule, example: str) -> np.ndarray:
  """Epoch numbers (seconds or milliseconds, by rule.unit) as int64 ns."""
  if rule.unit == "iso":
    raise TimestampError(f"numbers (e.g. {example!r}), not ISO 8601 times, while "
                         "--timestamp_unit is iso; pass --timestamp_unit s or ms")
  if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
    values = pc.cast(column, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
  else:
    values = _cast_cells(column, pa.float64())
  if rule.unit == "auto":
    scale = np.where(np.abs(values) < EPOCH_MS_FROM, 10**9, 10**6)
  else:
    scale = np.full(len(values), 10**9 if rule.unit == "s" else 10**6)
  with np.errstate(invalid="ignore"):
    seconds = values * (scale / 1e9)
    ok = (seconds >= rule.min_ns / 1e9) & (seconds < rule.max_ns / 1e9)
  out = np.full(len(values), _BAD_TIME, np.int64)
  whole = np.trunc(values[ok])
  out[ok] = (whole.astype(np.int64) * scale[ok]
             + np.round((values[ok] - whole) * scale[ok]).astype(np.int64))
  return out


def _cast_cells(column, to: pa.DataType) -> np.ndarray:
  """A column cast to `to` (a timestamp type: int64 ns, INT64_MIN where bad; float64: NaN
  where bad).

  Cast whole; where the cast rejects a cell, halves are cast, down to single cells
  once small, so that a few bad cells cost a few more casts, not one cast per cell
  (benchmarks/README.md has the cost of casting cell by cell).
  """
  timestamp = pa.types.is_timestamp(to)
  out = np.full(len(column), _BAD_TIME if timestamp else np.nan,
                np.int64 if timestamp else np.float64)
  parts = [(0, len(column))]
  while parts:
    start, n = parts.pop()
    try:
      cast = pc.cast(column.slice(start, n), to)
      out[start:start + n] = (_nanoseconds(cast) if timestamp else
                              cast.fill_null(np.nan).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
      if n > 1:
        step = n // 2 if n > 16 else 1
        parts += [(s, min(step, start + n - s)) for s in range(start, start + n, step)]
  return out


def _nanoseconds(values) -> np.ndarray:
  return values.fill_null(pa.scalar(_BAD_TIME, values.type)).to_numpy().view(np.int64)


def check_times(source: str, name: str, cells, rule: TimeRule) -> None:
  """Reads a file's first timestamp cells as parse_batch will, so that a file that
  needs --tz or --timestamp_unit, or whose first timestamps are all unreadable or
  implausible, fails before the pipeline runs; raises read.UnreadableFileError naming
  the file, the column and an example value."""
  column = _Column(cells).array
  try:
    times, gap = parse_times(column, rule)
    if len(times) and (times == _BAD_TIME).all() and not gap.any():
      example = (_sample(column) or [""])[0]
      raise TimestampError(
          f"none of the first {len(times)} timestamps is a time of a known form between "
          f"--min_time and --max_time (e.g. {example!r}); "
          "read are ISO 8601 with a UTC offset or Z, epoch seconds or milliseconds, "
          "and with --tz local times (YYYY-MM-DD hh:mm[:ss], US M/D/YYYY h:mm[:ss] [AM])")
  except TimestampError as e:
    raise read.UnreadableFileError(f"{source}: column {name!r}: {e}") from None


def _raw_row(table: pa.Table, i: int) -> dict:
  return {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
          for k, v in table.slice(i, 1).to_pylist()[0].items()}


def _raw_cells(table: pa.Table, i: int, columns) -> dict:
  """Row i's cells of `columns` only: a wide row may have thousands of columns."""
  return {c: _raw_cell(table, c, i) for c in columns}


def _raw_cell(table: pa.Table, column: str, i: int):
  value = table.column(column)[i].as_py()
  return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


_PARSED = len(ROW_REASONS)
_BAD_TIMESTAMP = ROW_REASONS.index("bad_timestamp")
_NONEXISTENT = ROW_REASONS.index("nonexistent_local_time")
_AMBIGUOUS = ROW_REASONS.index("ambiguous_local_time")


def parse_batch(batch, key: bytes, rule: TimeRule = TimeRule()):
  """Yields (subject hash, Readings), dead-letter JSON lines (tagged) and counts (tagged).

  Timestamps are read by parse_times under `rule`; raises read.UnreadableFileError
  naming the file and column where it raises TimestampError.
  """
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
    codes, ids = subject.codes()
    try:
      times, gap = parse_times(stamp.array, rule, codes)
    except TimestampError as e:
      raise read.UnreadableFileError(f"{source}: column {names['timestamp']!r}: {e}") from None
    failed = (times == _BAD_TIME) & (row_reason == _PARSED)
    row_reason[failed] = np.where(gap[failed] > 0, gap[failed], _BAD_TIMESTAMP)
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
  tally["readings_read"], index, reason, name, readings, unknown = parts
  ids = [names["subject_id"], names["timestamp"]]
  for code, why in enumerate(READING_REASONS):
    bad = np.flatnonzero(reason == code)
    if len(bad):
      tally[f"readings_dead_letter/{why}"] = len(bad)
    if why == "non_numeric" and len(bad):
      _hint_decimal_comma(source, _raw_cell(
          table, names["value"] if batch.layout == "long" else name[bad[0]],
          index[bad[0]]))
    for j in bad:
      i = index[j]
      raw = (_raw_row(table, i) | {"reading": name[j]} if batch.layout == "long"
             else _raw_cells(table, i, ids + [name[j]]) | {"reading": name[j]})
      yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
          source, batch.rows[i], why, raw))
  for column, i, n_readings in unknown:  # one entry per unknown wide column
    key = "readings_dead_letter/unknown_feature"
    tally[key] = tally.get(key, 0) + n_readings
    _warn_unknown_column(source, column, n_readings)
    yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
        source, batch.rows[i], "unknown_feature",
        {"column": column, "example": _raw_cell(table, column, i)}, readings=n_readings))
  yield counts.emit(tally, source)
  yield from _per_subject(source, readings, codes, hashes, times, batch.rows)


def _warn_unknown_column(source: str, column: str, n_readings: int) -> None:
  """Logs a wide column that names no LSM feature (a typo loses a whole sensor),
  with the closest feature names or aliases (schemas.features.ALIASES)."""
  close = difflib.get_close_matches(normalise_alias(column), list(ALIASES), n=2, cutoff=0.75)
  names = dict.fromkeys(ALIASES[c] for c in close)
  hint = f" (did you mean {' or '.join(map(repr, names))}?)" if names else ""
  logging.warning("lsm-pipeline: %s: column %r names no LSM feature%s; its %d readings "
                  "are dead-lettered as unknown_feature", source, column, hint, n_readings)


def _hint_decimal_comma(source: str, cell) -> None:
  """Logs which option reads a non-number like '33,00' (never guessed: 3,300 or 3.3?)."""
  if isinstance(cell, str) and re.fullmatch(r"\s*[-+]?\d*,\d+\s*", cell):
    logging.warning("lsm-pipeline: %s: non-numeric values like %r look like decimal "
                    "commas; pass --decimal ',' to read them as numbers", source, cell)


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
  with np.errstate(invalid="ignore"):
    valid = (np.isfinite(values) & (values >= VALID_LOW[target])
             & (values <= VALID_HIGH[target]))
  return valid if not_number is None else valid & ~not_number


def _long_readings(feature_column, value_column, parsed):
  """Every parsed row is one reading; returns (readings read, row index, reason and
  name of each bad reading, readings, unknown wide columns: none)."""
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
      (index[ok], feature[ok], values[ok]), ()


def _wide_readings(columns, feature_columns, parsed):
  """Non-empty feature cells of parsed rows are readings; a second column of the same
  feature (an alias) in one row is a duplicate of the first valid one.

  Checked a whole column at a time: only the (rare) bad cells go through _check for
  their reason. A column that names no LSM feature is not read at all: its readings
  are one entry of `unknown`, (column, row index of its first reading, readings), so
  that a file of thousands of unknown columns costs one dead letter per column, not
  one per cell. Returns what _long_readings does.
  """
  n = len(parsed)
  matrix = np.full((n, len(FEATURES)), np.nan, np.float32)
  seen, used = set(), np.zeros(n, bool)
  read, index_parts, reason_parts, name_parts, unknown = 0, [], [], [], []
  for number, column in enumerate(feature_columns):
    cells = columns[column]
    reading = parsed & ~cells.empty
    count = int(np.count_nonzero(reading))
    read += count
    target = _INDEX.get(canonical_name(column), UNKNOWN)
    if target == UNKNOWN:
      if count:
        unknown.append((column, int(np.argmax(reading)), count))
      continue
    values, not_number = cells.readings(reading)
    ok = reading & _valid(target, values, not_number)
    bad = reading & ~ok
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
    return read, np.zeros(0, np.int64), np.zeros(0, np.int8), [], readings, unknown
  names = np.array(feature_columns, dtype=object)
  return (read, np.concatenate(index_parts), np.concatenate(reason_parts),
          _Lazy(names, np.concatenate(name_parts)), readings, unknown)


class _Lazy:
  """names[codes[j]] on access: the column name of a reading, built only for bad ones."""

  def __init__(self, names, codes):
    self._names, self._codes = names, codes

  def __getitem__(self, j):
    return self._names[self._codes[j]]


_INDEX = {f.name: i for i, f in enumerate(FEATURES)}


class ParseReadings(beam.PTransform):
  """RawBatch -> main: (subject hash, Readings); 'dead_letter': JSON lines; 'counts'.

  key: where the subject-hash key lives (resolved on the worker, never in the graph);
  rule: how timestamps are read (TimeRule: --tz, --timestamp_unit, --min_time,
  --max_time)."""

  def __init__(self, key: KeyRef, rule: TimeRule = TimeRule()):
    super().__init__()
    self._key, self._rule = key, rule

  def expand(self, batches):
    """Readings: time int64 ns since the epoch (UTC), values in the feature's physical
    unit (schemas.features). A bad cell is a dead letter naming file, row and reason;
    a column that cannot be read as a whole raises UnreadableFileError or
    TimestampError naming the file, column and an example value."""
    return batches | "Parse" >> beam.ParDo(
        KeyedFlatMap(parse_batch, self._key, self._rule)).with_output_types(
        typing.Tuple[str, Readings]).with_outputs(
        counts.DEAD_LETTER, counts.COUNTS, main="readings")
