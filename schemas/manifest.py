"""manifest.json: what the pipeline wrote, and how the trainer finds its shards.

The pipeline writes DIR/manifest.json beside its shards; the trainer and evaluation
read it through this module only. Keys the trainer relies on:

  manifest_version: int (MANIFEST_VERSION)
  record_version: int (schemas.record.VERSION of every record)
  window_minutes, feature_names: the window shape the records hold
  datasets: {dataset: {split: [{"path": str relative to DIR, "records": int}, ...]}}
      dataset "pretrain": windows cut over the whole stream (stride as configured);
      dataset "labelled": windows placed around labelled sessions (when --labels).
  train_statistics: {feature_name: {"mean": float, "std": float, "count": int,
      "source": str}} over observed training values in physical units (to invert the
      normalisation); source "train", or "population (no observed train value)" where
      count is 0 and the graph applied LSM's population mean and std
  transform_dir: path of the saved tf.Transform graph, relative to DIR

Other keys (options, inputs, counts, dead-letter location, ...) are for people.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
DATASETS = ("pretrain", "labelled")


class ManifestError(ValueError):
  """A data directory whose manifest is missing, of another version, or lacks a split."""


def shard_name(split: str, index: int, count: int) -> str:
  return f"{split}-{index:05d}-of-{count:05d}.array_record"


def load(data_dir: str) -> dict[str, Any]:
  path = os.path.join(data_dir, MANIFEST_NAME)
  try:
    with open(path) as f:
      manifest = json.load(f)
  except FileNotFoundError:
    raise ManifestError(f"{path}: no manifest; is {data_dir} a pipeline output?") from None
  if manifest.get("manifest_version") != MANIFEST_VERSION:
    raise ManifestError(f"{path}: manifest_version {manifest.get('manifest_version')}, "
                        f"this reader understands {MANIFEST_VERSION}")
  return manifest


def shards(data_dir: str, split: str, dataset: str = "pretrain",
           manifest: dict[str, Any] | None = None) -> list[tuple[str, int]]:
  """(absolute path, record count) of every shard of one split, in order."""
  manifest = manifest or load(data_dir)
  try:
    entries = manifest["datasets"][dataset][split]
  except KeyError:
    raise ManifestError(f"{data_dir}: manifest has no {dataset!r} split {split!r}") from None
  return [(os.path.join(data_dir, e["path"]), int(e["records"])) for e in entries]


def check_listed(data_dir: str, manifest: dict[str, Any]) -> None:
  """Raises ManifestError naming a shard (*.array_record) in a dataset folder of
  data_dir that `manifest` does not list: another run's, which a glob over the folder
  would read beside this run's windows (a subject in two splits at once)."""
  listed = {os.path.normpath(os.path.join(data_dir, e["path"]))
            for splits in manifest.get("datasets", {}).values()
            for entries in splits.values() for e in entries}
  for dataset in DATASETS:
    for path in sorted(glob.glob(os.path.join(glob.escape(data_dir), dataset,
                                              "*.array_record"))):
      if os.path.normpath(path) not in listed:
        raise ManifestError(f"{path}: a shard that {MANIFEST_NAME} does not list (left by "
                            "another run?); the folder is not one run's output: rerun "
                            "lsm-pipeline into it with --overwrite, or into an empty folder")
