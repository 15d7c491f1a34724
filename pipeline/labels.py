"""Stage 5 input, ReadLabels: the session label table to per-subject session arrays.

The table has schemas.raw.LABEL_COLUMNS (lsm-synth's labels/sessions.csv, or a
study's annotations with the same columns). A bad row is dead-lettered with a
schemas.raw.ROW_REASONS reason (malformed_row also covers an exercise flag that is
not 0/1, an exercise activity not in ACTIVITY_CLASSES and end <= start) and counted
under label_rows; it never stops the run.
"""

from __future__ import annotations

import csv
import io

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline import counts
from pipeline.keys import KeyedFlatMap, KeyRef
from pipeline.parse import dead_letter
from pipeline.read import UnreadableFileError
from schemas import record
from schemas.constants import ACTIVITY_CLASSES, UNKNOWN_LABEL
from schemas.raw import LABEL_COLUMNS

NS_PER_MINUTE = 60_000_000_000


def _minute(text: str, ceil: bool) -> int | None:
  try:
    ns = pc.cast(pa.array([text.strip()]), pa.timestamp("ns", tz="UTC"))[0].value
  except (pa.ArrowInvalid, AttributeError):
    return None
  return -(-ns // NS_PER_MINUTE) if ceil else ns // NS_PER_MINUTE


# Why a label row is dead-lettered, beyond the raw rows' malformed_row, missing_subject
# and bad_timestamp (schemas.raw.ROW_REASONS).
LABEL_REASONS = (
    "end_not_after_start",  # end <= start (swapped columns?)
    "bad_exercise_flag",    # exercise is not 0 or 1
    "missing_activity",     # empty activity
    "unknown_activity",     # exercise = 1 with an activity not in ACTIVITY_CLASSES
)


def parse_session(row: dict):
  """(reason, None) or (None, (subject id, start minute, end minute, class, exercise));
  reasons: malformed_row (a missing field), missing_subject, bad_timestamp and
  LABEL_REASONS."""
  if any(row.get(c) is None for c in LABEL_COLUMNS):
    return "malformed_row", None
  subject = row["subject_id"].strip()
  if not subject:
    return "missing_subject", None
  start, end = _minute(row["start"], False), _minute(row["end"], True)
  if start is None or end is None:
    return "bad_timestamp", None
  exercise = row["exercise"].strip()
  activity = row["activity"].strip().lower()
  if end <= start:
    return "end_not_after_start", None
  if exercise not in ("0", "1"):
    return "bad_exercise_flag", None
  if not activity:
    return "missing_activity", None
  if exercise == "1" and activity not in ACTIVITY_CLASSES:
    return "unknown_activity", None
  label = ACTIVITY_CLASSES.index(activity) if activity in ACTIVITY_CLASSES else UNKNOWN_LABEL
  return None, (subject, start, end, label, int(exercise))


def read_sessions(path: str, key: bytes):
  """Yields (subject hash, session tuple), dead letters and counts."""
  try:
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as f:
      text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="").read()
  except OSError as e:
    raise UnreadableFileError(f"--labels {path}: cannot read: {e}") from e
  reader = csv.DictReader(io.StringIO(text))
  missing = set(LABEL_COLUMNS) - set(reader.fieldnames or ())
  if missing:
    raise UnreadableFileError(f"--labels {path}: header lacks columns {sorted(missing)}")
  tally = {"label_rows_read": 0, "label_rows_parsed": 0}
  for row in reader:
    tally["label_rows_read"] += 1
    reason, session = parse_session(row)
    if reason:
      tally[f"label_rows_dead_letter/{reason}"] = tally.get(
          f"label_rows_dead_letter/{reason}", 0) + 1
      yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
          path, reader.line_num, reason, row))
      continue
    tally["label_rows_parsed"] += 1
    subject, *rest = session
    yield record.subject_hash(subject, key), tuple(rest)
  yield counts.emit(tally)


class ReadLabels(beam.PTransform):
  """Label table path -> main: (subject hash, (start, end, class, exercise)); dead
  letters; counts. key: resolved on the worker (pipeline.keys)."""

  def __init__(self, path: str, key: KeyRef):
    super().__init__()
    self._path, self._key = path, key

  def expand(self, pbegin):
    """start and end are UTC minutes since the epoch; class an ACTIVITY_CLASSES index,
    exercise 1/0. Raises UnreadableFileError (naming the file) on an unreadable table
    or a header without the required columns; bad rows are dead-lettered."""
    return (pbegin
            | "Path" >> beam.Create([self._path])
            | "Parse" >> beam.ParDo(KeyedFlatMap(read_sessions, self._key)).with_outputs(
                counts.DEAD_LETTER, counts.COUNTS, main="sessions"))


def minute_labels(sessions, first: int, minutes: int) -> tuple[np.ndarray, np.ndarray]:
  """Per-minute activity class and exercise flag over [first, first + minutes); -1 unknown.

  Sessions are applied in (start, end, class, exercise) order, so where two overlap
  the later-starting one wins, whatever order the table listed them in.
  """
  labels = np.full(minutes, UNKNOWN_LABEL, np.int8)
  exercise = np.full(minutes, UNKNOWN_LABEL, np.int8)
  for start, end, label, flag in sorted(sessions):
    a, b = max(start - first, 0), min(end - first, minutes)
    if a < b:
      labels[a:b] = label
      exercise[a:b] = flag
  return labels, exercise


def dominant(values: np.ndarray, prefer_high: bool = False):
  """Most frequent known (>= 0) value of each row (the last axis); ties to the lowest
  (or highest); -1 where none is known. A 1-D input gives an int, [n, T] gives [n]."""
  values = np.asarray(values)
  rows = values.reshape(-1, values.shape[-1]).astype(np.int64)
  n, classes = len(rows), int(rows.max(initial=-1)) + 1
  best = np.full(n, UNKNOWN_LABEL, np.int64)
  if classes:
    row, value = np.nonzero(rows >= 0)[0], rows[rows >= 0]
    tally = np.bincount(row * classes + value, minlength=n * classes).reshape(n, classes)
    pick = (classes - 1 - tally[:, ::-1].argmax(axis=1) if prefer_high
            else tally.argmax(axis=1))
    best = np.where(tally.max(axis=1) > 0, pick, UNKNOWN_LABEL)
  return int(best[0]) if values.ndim == 1 else best.reshape(values.shape[:-1])
