"""Small raw cohorts in the canonical formats (schemas/raw.py), written by the tests.

A cohort is {raw subject id: (first UTC minute, values float [M, 26], NaN = no
reading)}; values lie inside every feature's clip range and hrv_percent_good stays
>= 0.2, so each written reading is used as is unless a test adds problems.
"""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.features import FEATURES, FEATURE_NAMES, HRV_GOOD_FEATURE

KEY = "test-key"
START = 28_000_000  # UTC minutes since the epoch (2023-03-28)
CLIP = np.array([f.clip_range for f in FEATURES], dtype=np.float64)


def make_cohort(subjects: int, minutes: int, seed: int = 0, missing: float = 0.2,
                prefix: str = "subject"):
  rng = np.random.default_rng(seed)
  cohort = {}
  for s in range(subjects):
    low, high = CLIP[:, 0], CLIP[:, 1]
    centre = low + (high - low) * rng.uniform(0.3, 0.7, len(FEATURES))
    values = centre + (high - low) * 0.05 * rng.standard_normal((minutes, len(FEATURES)))
    values = np.clip(values, low, high).round(3)
    good = FEATURE_NAMES.index(HRV_GOOD_FEATURE)
    values[:, good] = rng.uniform(0.3, 1.0, minutes).round(3)
    values[rng.random(values.shape) < missing] = np.nan
    cohort[f"{prefix}-{s:03d}"] = (START + 7 * s, values)
  return cohort


def iso(minute: int, second: int = 0, offset_hours: int = 0) -> str:
  t = pd.Timestamp(int(minute) * 60 + second, unit="s", tz="UTC")
  t = t.tz_convert(f"Etc/GMT{-offset_hours:+d}" if offset_hours else "UTC")
  return t.isoformat()


def wide_frame(cohort, offset_hours: int = 0) -> pd.DataFrame:
  frames = []
  for subject, (first, values) in cohort.items():
    frame = pd.DataFrame(values, columns=FEATURE_NAMES)
    frame.insert(0, "timestamp", [iso(first + m, 0, offset_hours) for m in range(len(values))])
    frame.insert(0, "subject_id", subject)
    frames.append(frame)
  return pd.concat(frames, ignore_index=True)


def long_frame(cohort) -> pd.DataFrame:
  wide = wide_frame(cohort)
  long = wide.melt(id_vars=["subject_id", "timestamp"], var_name="feature",
                   value_name="value").dropna()
  return long.sort_values(["subject_id", "timestamp"], kind="stable").reset_index(drop=True)


def write(frame: pd.DataFrame, path: str) -> str:
  """CSV (.csv, .csv.gz), Parquet or JSON lines by extension; empty cells for NaN."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if path.endswith(".parquet"):
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
  elif path.endswith(".jsonl"):
    with open(path, "w") as f:
      for row in frame.to_dict(orient="records"):
        f.write(json.dumps({k: v for k, v in row.items()
                            if not (isinstance(v, float) and np.isnan(v))}) + "\n")
  elif path.endswith(".csv.gz"):
    with gzip.open(path, "wt") as f:
      frame.to_csv(f, index=False)
  else:
    frame.to_csv(path, index=False)
  return path


def pipeline_args(inputs, output, *extra):
  args = [f"--input={i}" for i in inputs] + [f"--output={output}",
                                             f"--subject_hash_key={KEY}"]
  return args + list(extra)


@pytest.fixture(scope="session")
def key() -> bytes:
  return KEY.encode()


def test_pipeline():
  """A TestPipeline on the offline local runner (never the Prism download)."""
  from apache_beam.testing.test_pipeline import TestPipeline
  return TestPipeline(runner="FnApiRunner")


@pytest.fixture
def make_pipeline():
  return test_pipeline


@pytest.fixture(scope="session")
def raw():
  """The fixture writers above (test files cannot import conftest under importlib mode)."""
  import types
  return types.SimpleNamespace(
      make_cohort=make_cohort, wide_frame=wide_frame, long_frame=long_frame, write=write,
      iso=iso, pipeline_args=pipeline_args, KEY=KEY, START=START)
