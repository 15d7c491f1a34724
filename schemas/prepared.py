"""Prepared recordings: what lsm-impute's pipeline step hands to the model step.

The pipeline step (pipeline/prepare.py, a TensorFlow process) reads a person's or a
cohort's export with the pipeline's adapters and validation, aligns every subject to
its minute grid, cuts overlapping windows covering every minute and normalises them
with the pre-training run's saved transform graph (never re-analysed). The model
step (trainer/impute.py, no TensorFlow) fills and de-normalises. This module is the
contract between them, numpy and json only:

  DIR/prepared.json: {"prepared_version": int (VERSION), "transform_sha256": str
      (transform_fingerprint of the graph applied), "window_minutes": int,
      "stride_minutes": int, "grids": [path relative to DIR, ...], "counts": {...}}
  DIR/grids/<subject hash>-<segment>.npz (np.savez, no pickled objects):
      subject: str (keyed hash), start: int64 (UTC minutes since the epoch),
      values: float32 [M, F] physical units after alignment and clipping, NaN
          missing (the minutes an output passes through unchanged),
      offsets: int64 [n] window starts, minutes from `start`,
      z: float32 [n, T, F] the windows as the graph normalised them (0 missing),
      mean, scale: float32 [F] the graph's centre and scale (std, 1 where std is 0),
          read off its __mean / __std outputs, to invert z.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any, Iterator

import numpy as np

VERSION = 1
META_NAME = "prepared.json"
GRIDS = "grids"
FIELDS = ("subject", "start", "values", "offsets", "z", "mean", "scale")


class PreparedError(ValueError):
  """A prepared folder that is missing, of another version, or lacks a field."""


def transform_fingerprint(transform_dir: str) -> str:
  """SHA-256 over the saved transform graph's files (relative path and bytes, in
  sorted order): what identifies the normalisation a model was trained with.
  Raises PreparedError when the folder holds no file."""
  digest = hashlib.sha256()
  files = sorted(os.path.relpath(os.path.join(root, name), transform_dir)
                 for root, _, names in os.walk(transform_dir) for name in names)
  if not files:
    raise PreparedError(f"{transform_dir}: no saved transform graph there")
  for rel in files:
    digest.update(rel.replace(os.sep, "/").encode() + b"\0")
    with open(os.path.join(transform_dir, rel), "rb") as f:
      digest.update(hashlib.sha256(f.read()).digest())
  return digest.hexdigest()


def grid_bytes(grid: dict[str, Any]) -> bytes:
  """One grid (FIELDS) as .npz bytes."""
  buffer = io.BytesIO()
  np.savez(buffer, **{k: np.asarray(grid[k]) for k in FIELDS})
  return buffer.getvalue()


def grid_name(subject: str, segment: int) -> str:
  return f"{GRIDS}/{subject}-{segment:04d}.npz"


def load_meta(folder: str) -> dict[str, Any]:
  """DIR/prepared.json; raises PreparedError naming the file and the problem."""
  path = os.path.join(folder, META_NAME)
  try:
    with open(path) as f:
      meta = json.load(f)
  except FileNotFoundError:
    raise PreparedError(f"{path}: missing; is {folder} a prepared recording?") from None
  except json.JSONDecodeError as e:
    raise PreparedError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}") from None
  if meta.get("prepared_version") != VERSION:
    raise PreparedError(f"{path}: prepared_version {meta.get('prepared_version')}, "
                        f"this reader understands {VERSION}")
  return meta


def grids(folder: str, meta: dict[str, Any]) -> Iterator[dict[str, np.ndarray]]:
  """Every grid of the folder, in the meta's (sorted) order."""
  for rel in meta["grids"]:
    path = os.path.join(folder, rel)
    with np.load(path, allow_pickle=False) as data:
      missing = [k for k in FIELDS if k not in data]
      if missing:
        raise PreparedError(f"{path}: lacks {', '.join(missing)}")
      grid = {k: data[k] for k in FIELDS}
    grid["subject"] = str(grid["subject"])
    grid["start"] = int(grid["start"])
    yield grid
