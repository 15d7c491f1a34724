"""Small raw cohorts in the canonical formats (schemas/raw.py), written by the tests.

A cohort is {raw subject id: (first UTC minute, values float [M, 26], NaN = no
reading)}; values lie inside every feature's clip range and hrv_percent_good stays
>= 0.2, so each written reading is used as is unless a test adds problems.
"""

from __future__ import annotations

import gzip
import json
import os
import types

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.localfilesystem import LocalFileSystem

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
  return types.SimpleNamespace(
      make_cohort=make_cohort, wide_frame=wide_frame, long_frame=long_frame, write=write,
      iso=iso, pipeline_args=pipeline_args, KEY=KEY, START=START)


class FakeRemoteFileSystem(LocalFileSystem):
  """fakegs://PATH -> ROOT/PATH: a non-local Beam file system, as gs:// is to the code.

  Every answer (match, metadata) keeps the fakegs:// form, as GCS does, so code that
  takes a local shortcut (os.path.isdir, open) on such a path fails here too; what
  is created, renamed and deleted is recorded in order. Defined once here: Beam
  picks a file system by its scheme among all subclasses, so a second class with
  this scheme would make every fakegs:// path ambiguous.
  """
  root = None
  events = []

  @classmethod
  def scheme(cls):
    return "fakegs"

  @classmethod
  def _local(cls, path):
    return os.path.join(cls.root, path[len("fakegs://"):])

  @classmethod
  def _remote(cls, local):
    return "fakegs://" + os.path.relpath(local, cls.root)

  def create(self, path, *args, **kwargs):
    self.events.append(("create", path, sorted(os.listdir(self.root))))
    return super().create(self._local(path), *args, **kwargs)

  def open(self, path, *args, **kwargs):
    return super().open(self._local(path), *args, **kwargs)

  def rename(self, sources, destinations):
    self.events.append(("rename", sources[0], destinations[0]))
    for path in destinations:  # GCS has no folders: any name can be written
      os.makedirs(os.path.dirname(self._local(path)), exist_ok=True)
    return super().rename([self._local(p) for p in sources],
                          [self._local(p) for p in destinations])

  def exists(self, path):
    return super().exists(self._local(path))

  def delete(self, paths):  # LocalFileSystem.delete would match the local paths again
    self.events.append(("delete", paths[0]))
    for path in paths:
      os.remove(self._local(path))

  def metadata(self, path):
    local = self._local(path)
    return FileMetadata(path, os.path.getsize(local), os.path.getmtime(local))

  def _list(self, dir_or_prefix):
    for folder, _, files in os.walk(self._local(dir_or_prefix)):
      for name in files:
        local = os.path.join(folder, name)
        yield FileMetadata(self._remote(local), os.path.getsize(local),
                           os.path.getmtime(local))


@pytest.fixture
def remote(tmp_path):
  """A fresh fakegs:// bucket: .dir (its local folder), .events, .url(relative path)."""
  FakeRemoteFileSystem.root = str(tmp_path)
  FakeRemoteFileSystem.events.clear()
  return types.SimpleNamespace(dir=tmp_path, events=FakeRemoteFileSystem.events,
                               url=lambda rel="": "fakegs://" + rel)
