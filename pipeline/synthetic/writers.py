"""Raw files in the canonical formats of schemas.raw, labels, and --dirty fault injection.

A part file holds a block of subjects over part of their days (a subject's rows are
split across files, as real exports are). Rows are built as numpy columns, timestamps
as fixed-width bytes filled by broadcasting (no per-row Python), and written through
Arrow. In dirty mode faults are injected at disjoint rows so that the exact
dead-letter counts the pipeline must report under schemas.raw's accounting are known.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime
import gzip
import io
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.synthetic.physiology import (MINUTES_PER_DAY, SUBSAMPLES_PER_MINUTE,
                                           Subject)
from schemas.features import FEATURE_INDEX, FEATURE_NAMES, HRV_GOOD_FEATURE, canonical_name
from schemas.raw import LONG_COLUMNS, READING_REASONS, ROW_REASONS, WIDE_ID_COLUMNS

LAYOUTS = ("long", "wide")
FORMATS = ("csv", "csv.gz", "parquet")
TIMESTAMP_BYTES = 25          # 2024-03-04T07:15:00-05:00
SECONDS_PER_SAMPLE = 60 // SUBSAMPLES_PER_MINUTE

FAULT_KINDS = ("duplicate", "out_of_order", "mixed_offset", "out_of_range", "non_numeric",
               "non_finite", "unknown_feature", "bad_timestamp", "truncated_line")
# Faults a typed Parquet column cannot hold, or that only exist for text lines.
NOT_IN_PARQUET = ("non_numeric", "truncated_line")
UNKNOWN_FEATURES = ("spo2", "calories_burned", "stress_score", "body_battery")
BAD_TIMESTAMPS = ("2024-03-04T07:15:00", "03/04/2024 07:15:00 AM", "not-a-time",
                  "2024-13-45T25:61:00+01:00")
NON_NUMERIC = ("error", "#VALUE!", "72.5bpm", "--")
NON_FINITE = (float("nan"), float("inf"), float("-inf"))
FAULTS_PER_ROWS = 2000        # one fault of each kind per 2,000 rows (at least one)

assert all(canonical_name(name) is None for name in UNKNOWN_FEATURES)


def offset_text(minutes: int) -> str:
  sign = "+" if minutes >= 0 else "-"
  return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_timestamps(start_date: np.datetime64, tz_offset_minutes: int, minutes: np.ndarray,
                     seconds: np.ndarray | int = 0) -> np.ndarray:
  """ISO 8601 local times with offset as a uint8 [n, 25] matrix, built by broadcasting."""
  minutes = np.asarray(minutes, np.int64)
  days = minutes // MINUTES_PER_DAY
  dates = np.datetime_as_string(start_date + np.arange(days.max(initial=0) + 1))
  dates = np.frombuffer(dates.astype("S10").tobytes(), np.uint8).reshape(-1, 10)
  minute_of_day = minutes % MINUTES_PER_DAY
  seconds = np.broadcast_to(np.asarray(seconds, np.int64), minutes.shape)
  fields = np.stack([minute_of_day // 60, minute_of_day % 60, seconds], axis=1)
  digits = np.stack([fields // 10, fields % 10], axis=2).reshape(-1, 6) + ord("0")
  out = np.empty((minutes.size, TIMESTAMP_BYTES), np.uint8)
  out[:, :10] = dates[days]
  out[:, 10] = ord("T")
  out[:, [11, 12, 14, 15, 17, 18]] = digits
  out[:, [13, 16]] = ord(":")
  out[:, 19:] = np.frombuffer(offset_text(tz_offset_minutes).encode(), np.uint8)
  return out


def _text_array(matrix: np.ndarray) -> pa.Array:
  """uint8 [n, w] fixed-width text to an Arrow string array without a Python loop."""
  n, width = matrix.shape
  offsets = np.arange(n + 1, dtype=np.int32) * width
  return pa.StringArray.from_buffers(n, pa.py_buffer(offsets),
                                     pa.py_buffer(np.ascontiguousarray(matrix)))


@dataclasses.dataclass
class Rows:
  """One part file's rows as columns, before any fault is injected.

  subject: row -> position in subject_ids. timestamp: uint8 [n, 25]. Long layout:
  feature (int8 code) and value (float32) per row. Wide layout: values [n, 26].
  Missing cells are NaN; a row never has zero readings.
  """
  layout: str
  subject_ids: list[str]
  tz_offsets: list[int]
  subject: np.ndarray
  timestamp: np.ndarray
  values: np.ndarray
  feature: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.subject)

  def readings_per_row(self) -> np.ndarray:
    if self.layout == "long":
      return np.ones(len(self), np.int64)
    return (~np.isnan(self.values)).sum(axis=1)

  def take(self, order: np.ndarray) -> Rows:
    return dataclasses.replace(
        self, subject=self.subject[order], timestamp=self.timestamp[order],
        values=self.values[order],
        feature=None if self.feature is None else self.feature[order])


def _subject_rows(subject: Subject, minutes: slice, layout: str, position: int):
  """The rows of one subject over a span of minutes, in time order per feature."""
  values = subject.values[minutes]
  base = minutes.start
  hr = FEATURE_INDEX["HR"]
  if subject.hr_samples is not None:
    # Row :00 carries the first sample; :15/:30/:45 rows carry only HR.
    samples = subject.hr_samples[minutes]
    values = values.copy()
    values[:, hr] = samples[:, 0]
    sub_minute, sub_index = np.nonzero(~np.isnan(samples[:, 1:]))
    sub_values = samples[sub_minute, sub_index + 1]
    sub_seconds = (sub_index + 1) * SECONDS_PER_SAMPLE
  else:
    sub_minute = np.zeros(0, np.int64)
    sub_values = np.zeros(0, np.float32)
    sub_seconds = np.zeros(0, np.int64)
  start, tz = subject.start_date, subject.tz_offset_minutes
  if layout == "wide":
    minute = np.flatnonzero(~np.isnan(values).all(axis=1))
    row_minute = np.concatenate([minute, sub_minute])
    row_seconds = np.concatenate([np.zeros(minute.size, np.int64), sub_seconds])
    wide = np.full((row_minute.size, len(FEATURE_NAMES)), np.nan, np.float32)
    wide[:minute.size] = values[minute]
    wide[minute.size:, hr] = sub_values
    order = np.lexsort((row_seconds, row_minute))
    row_minute, row_seconds, wide = row_minute[order], row_seconds[order], wide[order]
    feature = None
    row_values = wide
  else:
    minute, column = np.nonzero(~np.isnan(values.T))[::-1]   # feature-major order
    row_minute = np.concatenate([minute, sub_minute])
    row_seconds = np.concatenate([np.zeros(minute.size, np.int64), sub_seconds])
    feature = np.concatenate([column, np.full(sub_minute.size, hr)]).astype(np.int8)
    row_values = np.concatenate([values[minute, column], sub_values]).astype(np.float32)
    order = np.lexsort((row_seconds, row_minute, feature))
    row_minute, row_seconds = row_minute[order], row_seconds[order]
    feature, row_values = feature[order], row_values[order]
  timestamp = local_timestamps(start, tz, row_minute + base, row_seconds)
  return np.full(row_minute.size, position, np.int32), timestamp, row_values, feature


def build_rows(subjects: Sequence[Subject], layout: str, minutes: slice) -> Rows:
  """All rows of a part file: the subjects' rows over `minutes`, subject after subject."""
  if layout not in LAYOUTS:
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
  parts = [_subject_rows(s, minutes, layout, i) for i, s in enumerate(subjects)]
  return Rows(layout=layout, subject_ids=[s.subject_id for s in subjects],
              tz_offsets=[s.tz_offset_minutes for s in subjects],
              subject=np.concatenate([p[0] for p in parts]),
              timestamp=np.concatenate([p[1] for p in parts]),
              values=np.concatenate([p[2] for p in parts]),
              feature=None if layout == "wide" else np.concatenate([p[3] for p in parts]))


@dataclasses.dataclass
class Faults:
  """Edits that turn clean rows into dirty ones, and their exact accounting."""
  order: np.ndarray                       # final row order (duplicates repeat a row)
  timestamp_text: dict[int, str]          # final position -> replaced timestamp
  feature_text: dict[int, str]            # long: final position -> unknown name
  cells: dict[tuple[int, int], object]    # (final position, column) -> str or float
  row_faults: dict[int, str]              # final position -> ROW_REASONS entry
  reading_faults: collections.Counter     # READING_REASONS entry -> readings
  injected: collections.Counter


def _pick(rng, eligible: np.ndarray, used: np.ndarray, count: int) -> np.ndarray:
  pool = np.flatnonzero(eligible & ~used)
  picks = np.sort(rng.choice(pool, min(count, pool.size), replace=False))
  used[picks] = True
  return picks


def plan_faults(rows: Rows, fmt: str, rng: np.random.Generator) -> Faults:
  """Chooses disjoint fault sites so every expected count is exact.

  The last row is never touched (it may be truncated), and no hrv_percent_good
  reading is ever corrupted, so no HRV reading changes its quality verdict.
  """
  n = len(rows)
  if n < 2:
    raise ValueError(f"a dirty part file needs at least 2 rows, got {n}")
  count = max(1, n // FAULTS_PER_ROWS)
  used = np.zeros(n, bool)
  used[-1:] = True
  readings = rows.readings_per_row()
  pg = FEATURE_INDEX[HRV_GOOD_FEATURE]
  hr = FEATURE_INDEX["HR"]
  if rows.layout == "long":
    not_pg = rows.feature != pg
    has_hr = rows.feature == hr
  else:
    others = ~np.isnan(rows.values)
    others[:, pg] = False
    not_pg = others.any(axis=1)
    has_hr = ~np.isnan(rows.values[:, hr])
  kinds = [k for k in FAULT_KINDS if not (fmt == "parquet" and k in NOT_IN_PARQUET)
           and k != "truncated_line" and not (k == "unknown_feature" and rows.layout == "wide")]
  sites = {k: _pick(rng, has_hr if k == "out_of_range" else not_pg, used, count)
           for k in kinds}
  # Final order: moved rows and duplicate copies are slotted in before random rows.
  keys = np.arange(n, dtype=np.float64)
  moved = sites.get("out_of_order", np.zeros(0, np.int64))
  target = rng.integers(0, n - 1, moved.size)
  near = np.abs(target - moved) < 2                       # would not really move
  target[near] = (target[near] + n // 2) % (n - 1)
  keys[moved] = target + 0.5
  dup = sites["duplicate"]
  order_keys = np.concatenate([keys, rng.integers(0, n - 1, dup.size) + 0.25])
  source = np.concatenate([np.arange(n), dup])
  sort = np.argsort(order_keys, kind="stable")
  order = source[sort]
  final = np.empty(n, np.int64)
  final[sort[sort < n]] = np.flatnonzero(sort < n)      # original row -> final position
  faults = Faults(order=order, timestamp_text={},
                  feature_text={}, cells={}, row_faults={},
                  reading_faults=collections.Counter(), injected=collections.Counter())
  faults.reading_faults["duplicate"] = int(readings[dup].sum())
  for kind, picks in sites.items():
    faults.injected[kind] = int(picks.size)
    for row in picks:
      _edit(rows, faults, kind, int(row), int(final[row]), fmt, rng)
  return faults


def _edit(rows: Rows, faults: Faults, kind: str, row: int, position: int, fmt: str, rng):
  """Records one fault at original `row` (now at final `position`)."""
  if kind in ("duplicate", "out_of_order"):
    return
  if kind == "mixed_offset":
    faults.timestamp_text[position] = _shift_offset(
        rows.timestamp[row].tobytes().decode(), rows.tz_offsets[rows.subject[row]], rng)
  elif kind == "bad_timestamp":
    faults.timestamp_text[position] = str(rng.choice(BAD_TIMESTAMPS))
    faults.row_faults[position] = "bad_timestamp"
  elif kind == "unknown_feature":
    faults.feature_text[position] = str(rng.choice(UNKNOWN_FEATURES))
    faults.reading_faults["unknown_feature"] += 1
  else:
    if rows.layout == "long":
      column = 0
    elif kind == "out_of_range":
      column = FEATURE_INDEX["HR"]
    else:
      present = np.flatnonzero(~np.isnan(rows.values[row]))
      present = present[present != FEATURE_INDEX[HRV_GOOD_FEATURE]]
      column = int(rng.choice(present))
    value = {"out_of_range": lambda: float(rng.choice([0.0, 400.0])),
             "non_numeric": lambda: str(rng.choice(NON_NUMERIC)),
             "non_finite": lambda: NON_FINITE[int(rng.integers(len(NON_FINITE)))]}[kind]()
    faults.cells[(position, column)] = value
    faults.reading_faults[kind] += 1


def _shift_offset(text: str, home_offset: int, rng) -> str:
  """The same instant written in another UTC offset (travel, a phone in another zone)."""
  other = int(rng.choice([o for o in (0, 60, -300, 330, 540) if o != home_offset]))
  instant = datetime.datetime.fromisoformat(text)
  tz = datetime.timezone(datetime.timedelta(minutes=other))
  return instant.astimezone(tz).isoformat()


def _value_array(values: np.ndarray, column: int, cells: dict, fmt: str) -> pa.Array:
  """One value column; cells with injected text become a string column."""
  edits = {pos: v for (pos, col), v in cells.items() if col == column}
  missing = np.isnan(values)
  if not edits:
    return pa.array(values, mask=missing)
  if fmt == "parquet":
    values = values.copy()
    for pos, v in edits.items():
      values[pos] = v
      missing[pos] = False
    return pa.array(values, mask=missing)
  text = pc.cast(pa.array(values, mask=missing), pa.string()).to_numpy(zero_copy_only=False)
  for pos, v in edits.items():
    text[pos] = v if isinstance(v, str) else {"nan": "NaN", "inf": "inf",
                                              "-inf": "-inf"}.get(str(v), str(v))
  return pa.array(text, type=pa.string())


def _text_column(matrix: np.ndarray, edits: dict[int, str]) -> pa.Array:
  if not edits:
    return _text_array(matrix)
  text = matrix.view(f"S{matrix.shape[1]}").ravel().astype(object)
  text = np.array([t.decode() for t in text], dtype=object)
  for pos, value in edits.items():
    text[pos] = value
  return pa.array(text, type=pa.string())


def to_table(rows: Rows, faults: Faults | None, fmt: str) -> pa.Table:
  """Arrow table of the file, with faults applied when given."""
  if faults is not None:
    rows = rows.take(faults.order)
  ts_edits = faults.timestamp_text if faults else {}
  cells = faults.cells if faults else {}
  ids = pa.DictionaryArray.from_arrays(pa.array(rows.subject), pa.array(rows.subject_ids))
  columns = {"subject_id": ids.cast(pa.string()),
             "timestamp": _text_column(rows.timestamp, ts_edits)}
  if rows.layout == "long":
    names = np.array(FEATURE_NAMES, dtype=object)[rows.feature]
    for pos, name in (faults.feature_text if faults else {}).items():
      names[pos] = name
    columns["feature"] = pa.array(names, type=pa.string())
    columns["value"] = _value_array(rows.values, 0, cells, fmt)
    assert tuple(columns) == LONG_COLUMNS
  else:
    for i, name in enumerate(FEATURE_NAMES):
      columns[name] = _value_array(rows.values[:, i], i, cells, fmt)
    assert tuple(columns)[:2] == WIDE_ID_COLUMNS
  return pa.table(columns)


def encode(table: pa.Table, fmt: str, truncate_last: bool = False) -> bytes:
  """File bytes; deterministic (gzip without a timestamp, fixed Parquet options)."""
  if fmt == "parquet":
    sink = io.BytesIO()
    # Dictionary-encode only the subject column: timestamps and values are near unique.
    pq.write_table(table, sink, compression="zstd", use_dictionary=["subject_id"])
    return sink.getvalue()
  if fmt not in FORMATS:
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
  sink = io.BytesIO()
  sink.write((",".join(table.column_names) + "\n").encode())
  pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False,
                                                    quoting_style="none"))
  data = sink.getvalue()
  if truncate_last:
    data = _truncate_last_line(data)
  return gzip.compress(data, compresslevel=6, mtime=0) if fmt == "csv.gz" else data


def _truncate_last_line(data: bytes) -> bytes:
  """A writer that died mid-line: the last line keeps half its fields, no newline."""
  start = data.rstrip(b"\n").rfind(b"\n") + 1
  fields = data[start:].rstrip(b"\n").split(b",")
  return data[:start] + b",".join(fields[:len(fields) // 2])


def write_part(subjects: Sequence[Subject], minutes: slice, layout: str, fmt: str,
               dirty_rng: np.random.Generator | None = None,
               truncate_last: bool = False) -> tuple[bytes, dict]:
  """One part file's bytes and its accounting (see truth_json)."""
  rows = build_rows(subjects, layout, minutes)
  if len(rows) == 0:
    raise ValueError("a part file with no rows: the subjects have no readings in the span")
  faults = plan_faults(rows, fmt, dirty_rng) if dirty_rng is not None else None
  truncate_last = truncate_last and fmt != "parquet"
  table = to_table(rows, faults, fmt)
  readings = rows.readings_per_row()
  if faults is not None:
    readings = readings[faults.order]
  row_faults = dict(faults.row_faults) if faults else {}
  if truncate_last:
    row_faults[len(readings) - 1] = "malformed_row"
  failed = np.array(sorted(row_faults), np.int64)
  stats = {
      "rows_written": len(readings),
      "readings_written": int(readings.sum()),
      "readings_in_failed_rows": int(readings[failed].sum()) if failed.size else 0,
      "injected": dict(faults.injected) if faults else {},
      "rows": dict(collections.Counter(row_faults.values())),
      "readings": dict(faults.reading_faults) if faults else {},
  }
  if truncate_last:
    stats["injected"]["truncated_line"] = 1
  return encode(table, fmt, truncate_last), stats


def truth_json(part_stats: Sequence[dict], fmt: str, layout: str, dirty: bool) -> dict:
  """What was written and exactly what the pipeline must count (schemas.raw).

  rows_read == rows_parsed + sum(expected_dead_letter.rows); readings_read (readings
  of parsed rows) == readings_used + sum(expected_dead_letter.readings).
  """
  total = collections.Counter()
  rows_dead = collections.Counter({r: 0 for r in ROW_REASONS})
  readings_dead = collections.Counter({r: 0 for r in READING_REASONS})
  injected = collections.Counter({k: 0 for k in FAULT_KINDS})
  for s in part_stats:
    total.update({k: s[k] for k in ("rows_written", "readings_written",
                                    "readings_in_failed_rows")})
    rows_dead.update(s["rows"])
    readings_dead.update(s["readings"])
    injected.update(s["injected"])
  rows_parsed = total["rows_written"] - sum(rows_dead.values())
  readings_read = total["readings_written"] - total["readings_in_failed_rows"]
  return {
      "dirty": dirty, "layout": layout, "format": fmt, "files": len(part_stats),
      "rows_written": total["rows_written"],
      "readings_written": total["readings_written"],
      "injected": dict(injected),
      "not_applicable": list(NOT_IN_PARQUET) if fmt == "parquet" else [],
      "expected_dead_letter": {"rows": dict(rows_dead), "readings": dict(readings_dead)},
      "expected": {
          "rows_read": total["rows_written"], "rows_parsed": rows_parsed,
          "readings_read": readings_read,
          "readings_used": readings_read - sum(readings_dead.values()),
      },
  }


def label_rows(subject: Subject) -> list[list[str]]:
  """sessions.csv rows (schemas.raw.LABEL_COLUMNS) for one subject's events."""
  if not subject.events:
    return []
  bounds = np.array([(s, e) for s, e, _, _ in subject.events], np.int64).ravel()
  text = local_timestamps(subject.start_date, subject.tz_offset_minutes, bounds)
  text = text.view(f"S{TIMESTAMP_BYTES}").ravel()
  return [[subject.subject_id, text[2 * i].decode(), text[2 * i + 1].decode(), activity,
           str(exercise)] for i, (_, _, activity, exercise) in enumerate(subject.events)]


SUBJECT_COLUMNS = ("subject_id", "age", "sex", "fitness", "resting_hr", "hr_max",
                   "rmssd_level", "eda_level", "chronotype_minutes", "device_model",
                   "tz_offset_minutes", "start_date", "sub_minute_hr", "exercise_per_day",
                   "fit_quality", "long_removal_per_day", "activity_preference")


def subject_row(subject: Subject) -> list[str]:
  traits = dict(subject.traits, subject_id=subject.subject_id)
  traits["activity_preference"] = ";".join(str(p) for p in traits["activity_preference"])
  return [str(traits[c]) for c in SUBJECT_COLUMNS]


def csv_lines(rows: Sequence[Sequence[str]]) -> str:
  """CSV text of rows without a header (blocks are joined under one header later)."""
  sink = io.StringIO()
  csv.writer(sink, lineterminator="\n").writerows(rows)
  return sink.getvalue()


def csv_header(columns: Sequence[str]) -> str:
  return csv_lines([columns])
