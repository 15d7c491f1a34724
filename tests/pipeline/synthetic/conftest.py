"""Shared fixtures: small cohorts on disk and an independent reader of the raw files.

The reader re-implements schemas.raw's accounting from scratch (Python csv module,
pyarrow for Parquet, datetime for timestamps) so the generator's truth.json is
checked against what is actually in the files, not against its own bookkeeping.
"""

import collections
import csv
import datetime
import functools
import gzip
import io
import math
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.synthetic import main as synth_main
from schemas.features import (FEATURE_INDEX, FEATURES, HRV_GOOD_FEATURE, HRV_GOOD_THRESHOLD,
                              canonical_name)
from schemas.raw import LONG_COLUMNS, WIDE_ID_COLUMNS


@pytest.fixture(scope="session")
def make_cohort(tmp_path_factory):
  """make_cohort(**generate kwargs) -> output directory, cached per argument set."""
  cache = {}

  def make(**kwargs):
    key = tuple(sorted(kwargs.items()))
    if key not in cache:
      out = str(tmp_path_factory.mktemp("cohort"))
      synth_main.generate(output=out, **kwargs)
      cache[key] = out
    return cache[key]

  return make


def _raw_rows(path):
  """(header, list of rows as lists of str-or-None-or-float) from any raw file."""
  if path.endswith(".parquet"):
    table = pq.read_table(path)
    columns = [c.to_pylist() for c in table.columns]
    return table.column_names, [list(r) for r in zip(*columns)]
  data = open(path, "rb").read()
  if path.endswith(".gz"):
    data = gzip.decompress(data)
  lines = list(csv.reader(io.StringIO(data.decode())))
  return lines[0], lines[1:]


@functools.cache
def parse_time(text):
  """UTC instant of an ISO 8601 timestamp with offset, None if it is not one."""
  try:
    t = datetime.datetime.fromisoformat(text)
  except (TypeError, ValueError):
    return None
  if t.tzinfo is None or "T" not in text:
    return None
  return t.astimezone(datetime.timezone.utc)


_feature_name = functools.cache(canonical_name)


def account(directory):
  """Independent schemas.raw accounting of DIR/raw/*: counts and the used readings."""
  rows = collections.Counter()
  dead_rows = collections.Counter()
  dead = collections.Counter()
  used = {}                      # (subject, utc instant, feature) -> float
  readings_read = 0
  pg_by_minute = {}
  hrv = []
  raw = os.path.join(directory, "raw")
  for name in sorted(os.listdir(raw)):
    header, body = _raw_rows(os.path.join(raw, name))
    long = tuple(header) == LONG_COLUMNS
    assert long or tuple(header[:2]) == WIDE_ID_COLUMNS, header
    for row in body:
      rows["read"] += 1
      if len(row) != len(header):
        dead_rows["malformed_row"] += 1
        continue
      if not row[0]:
        dead_rows["missing_subject"] += 1
        continue
      instant = parse_time(row[1])
      if instant is None:
        dead_rows["bad_timestamp"] += 1
        continue
      rows["parsed"] += 1
      cells = [(row[2], row[3])] if long else list(zip(header[2:], row[2:]))
      for column, value in cells:
        if value is None or value == "":
          continue
        readings_read += 1
        feature = _feature_name(column)
        if feature is None:
          dead["unknown_feature"] += 1
          continue
        try:
          number = float(value)
        except ValueError:
          dead["non_numeric"] += 1
          continue
        if not math.isfinite(number):
          dead["non_finite"] += 1
          continue
        lo, hi = FEATURES[FEATURE_INDEX[feature]].valid_range
        if not lo <= number <= hi:
          dead["out_of_range"] += 1
          continue
        key = (row[0], instant, feature)
        if key in used:
          dead["duplicate"] += 1
          continue
        used[key] = number
        minute = (row[0], instant.replace(second=0))
        if feature == HRV_GOOD_FEATURE:
          pg_by_minute[minute] = number
        elif FEATURES[FEATURE_INDEX[feature]].hrv_gated:
          hrv.append((minute, key))
  for minute, key in hrv:
    if pg_by_minute.get(minute, 1.0) < HRV_GOOD_THRESHOLD:
      dead["hrv_low_quality"] += 1
      del used[key]
  return {"rows_read": rows["read"], "rows_parsed": rows["parsed"],
          "readings_read": readings_read, "readings_used": len(used),
          "dead_rows": dead_rows, "dead_readings": dead, "used": used}


@pytest.fixture(scope="session")
def reference_account():
  return account


@pytest.fixture(scope="session")
def timestamp_parser():
  return parse_time


def minute_matrix(used, subject_id, start_date, tz_minutes, days):
  """Used readings of one subject back into a [T, 26] float32 matrix (sub-minute HR
  samples averaged), for comparison with the generator's arrays."""
  tz = datetime.timezone(datetime.timedelta(minutes=tz_minutes))
  origin = datetime.datetime.fromisoformat(start_date).replace(tzinfo=tz)
  sums = np.zeros((days * 1440, len(FEATURES)))
  counts = np.zeros_like(sums)
  for (sid, instant, feature), value in used.items():
    if sid != subject_id:
      continue
    minute = int((instant - origin).total_seconds() // 60)
    sums[minute, FEATURE_INDEX[feature]] += value
    counts[minute, FEATURE_INDEX[feature]] += 1
  with np.errstate(invalid="ignore"):
    return (sums / counts).astype(np.float32)


@pytest.fixture(scope="session")
def to_minutes():
  return minute_matrix
