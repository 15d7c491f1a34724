"""Small pipeline-like data directories for tests and benchmarks.

write_data_dir writes what lsm-pipeline writes (manifest.json and ArrayRecord shards
of schemas.record windows, train statistics) from synthetic, learnable windows, so
trainer tests and benchmarks/trainer_throughput.py need no pipeline run. Imports
neither TensorFlow nor the trainer.
"""

from __future__ import annotations

import json
import os

from array_record.python.array_record_module import ArrayRecordWriter
import numpy as np

from schemas import manifest as manifest_lib
from schemas import record
from schemas.constants import NUM_FEATURES, WINDOW_MINUTES
from schemas.features import FEATURE_NAMES


def make_window(rng: np.random.Generator, split: str, missing: float = 0.1,
                subject: int = 0, start: int = 0, label: int = -1,
                exercise: int = -1) -> dict:
  """A learnable window: a per-window level plus fixed per-feature daily-like curves,
  noise, and missing values; a labelled window (label >= 0) adds a class-dependent
  level to a few features, so a classifier has something to find."""
  t = np.arange(WINDOW_MINUTES)[:, None]
  freq = np.linspace(1, 3, NUM_FEATURES)[None] * 2 * np.pi / WINDOW_MINUTES
  phase = np.linspace(0, np.pi, NUM_FEATURES)[None]
  values = (rng.normal() + np.sin(freq * t + phase)
            + 0.1 * rng.normal(size=(WINDOW_MINUTES, NUM_FEATURES)))
  if exercise == 1:
    values[:, :4] += 1.0
  if label >= 0:
    values[:, 4 + label] += 1.5
  observed = rng.random((WINDOW_MINUTES, NUM_FEATURES)) >= missing
  values = np.where(observed, values, 0.0).astype(np.float32)
  return {"values": values, "mask": observed, "subject": f"{subject:032x}", "split": split,
          "start": int(start), "missing_ratio": float(1 - observed.mean()),
          "label": label, "exercise": exercise}


def _write_dataset(path: str, dataset: str, counts: dict[str, int], shards: int,
                   rng: np.random.Generator, subjects: int) -> dict[str, list]:
  """Shards of one dataset; window i of a split belongs to subject i % subjects (train
  subjects 0.., valid and test subjects offset so no subject spans splits); a
  "labelled" window i is exercise class i % 8 for odd i, non-exercise for even i."""
  splits = {}
  for s, (split, count) in enumerate(counts.items()):
    entries = []
    per_shard = np.array_split(np.arange(count), shards)
    for i, idx in enumerate(per_shard):
      name = manifest_lib.shard_name(split, i, shards)
      if dataset != "pretrain":
        name = f"{dataset}-{name}"
      writer = ArrayRecordWriter(os.path.join(path, name), "group_size:1")
      for j in idx:
        labels = {}
        if dataset == "labelled":
          labels = ({"label": int(j // 2 % 8), "exercise": 1} if j % 2
                    else {"label": -1, "exercise": 0})
        writer.write(record.encode(make_window(
            rng, split, subject=1000 * s + int(j % subjects), start=300 * int(j),
            **labels)))
      writer.close()
      entries.append({"path": name, "records": int(len(idx))})
    splits[split] = entries
  return splits


def write_data_dir(path: str, counts: dict[str, int], shards: int = 2, seed: int = 0,
                   labelled: dict[str, int] | None = None, subjects: int = 1) -> str:
  """Writes DIR/manifest.json and ArrayRecord shards like the pipeline does (with
  `labelled` counts also a "labelled" dataset, and train_statistics)."""
  os.makedirs(path, exist_ok=True)
  rng = np.random.default_rng(seed)
  datasets = {"pretrain": _write_dataset(path, "pretrain", counts, shards, rng, subjects)}
  if labelled:
    datasets["labelled"] = _write_dataset(path, "labelled", labelled, shards, rng, subjects)
  manifest = {"manifest_version": manifest_lib.MANIFEST_VERSION,
              "record_version": record.VERSION, "window_minutes": WINDOW_MINUTES,
              "feature_names": list(FEATURE_NAMES), "datasets": datasets,
              "train_statistics": {name: {"mean": 10.0 + i, "std": 2.0, "count": 1}
                                   for i, name in enumerate(FEATURE_NAMES)}}
  with open(os.path.join(path, manifest_lib.MANIFEST_NAME), "w") as f:
    json.dump(manifest, f)
  return path
