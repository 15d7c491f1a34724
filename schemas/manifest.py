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
  """A data directory whose manifest is missing, unreadable, of another version, lacks a
  split, or has a key of the wrong type."""


def shard_name(split: str, index: int, count: int) -> str:
  """File name of shard `index` (0-based) of `count`: SPLIT-00000-of-00004.array_record."""
  return f"{split}-{index:05d}-of-{count:05d}.array_record"


def load(data_dir: str) -> dict[str, Any]:
  """DIR/manifest.json, checked for what the trainer relies on.

  Raises ManifestError naming the file and the problem: missing, not valid JSON
  (truncated: with the line and column), another manifest_version, or a key above
  (manifest_version, datasets and its shard entries; record_version, window_minutes,
  feature_names, train_statistics, transform_dir where present) missing or of the
  wrong type.
  """
  path = os.path.join(data_dir, MANIFEST_NAME)
  try:
    with open(path) as f:
      manifest = json.load(f)
  except FileNotFoundError:
    raise ManifestError(f"{path}: no manifest; is {data_dir} a pipeline output?") from None
  except json.JSONDecodeError as e:
    raise ManifestError(f"{path}: not valid JSON (truncated or corrupted?): {e.msg} at "
                        f"line {e.lineno} column {e.colno}") from None
  except UnicodeDecodeError as e:
    raise ManifestError(f"{path}: not UTF-8 text (corrupted?): {e.reason} at byte "
                        f"{e.start}") from None
  if not isinstance(manifest, dict):
    raise ManifestError(f"{path}: a JSON {type(manifest).__name__}, expected an object")
  if manifest.get("manifest_version") != MANIFEST_VERSION:
    raise ManifestError(f"{path}: manifest_version {manifest.get('manifest_version')}, "
                        f"this reader understands {MANIFEST_VERSION}")
  problem = _problem(manifest)
  if problem:
    raise ManifestError(f"{path}: {problem}")
  return manifest


def _problem(manifest: dict[str, Any]) -> str | None:
  """The first key the trainer relies on that is missing or of the wrong type."""
  datasets = manifest.get("datasets")
  if not isinstance(datasets, dict):
    return "no 'datasets' object" if datasets is None else "'datasets' is not an object"
  for dataset, splits in datasets.items():
    if not isinstance(splits, dict):
      return f"datasets.{dataset} is not an object of splits"
    for split, entries in splits.items():
      where = f"datasets.{dataset}.{split}"
      if not isinstance(entries, list):
        return f"{where} is not a list of shards"
      for i, e in enumerate(entries):
        if not (isinstance(e, dict) and isinstance(e.get("path"), str)
                and _is_int(e.get("records")) and e["records"] >= 0):
          return f'{where}[{i}] is not {{"path": str, "records": int >= 0}}: {e!r}'
  for key, kind, name in (("record_version", _is_int, "an integer"),
                          ("window_minutes", _is_int, "an integer"),
                          ("transform_dir", lambda v: isinstance(v, str), "a string"),
                          ("feature_names", lambda v: isinstance(v, list) and all(
                              isinstance(n, str) for n in v), "a list of strings"),
                          ("train_statistics", _statistics, "an object of "
                           '{"mean": number, "std": number, "count": int}')):
    if key in manifest and not kind(manifest[key]):
      return f"{key} is not {name}"
  return None


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _statistics(value: Any) -> bool:
  return isinstance(value, dict) and all(
      isinstance(s, dict) and all(isinstance(s.get(k), (int, float)) for k in ("mean", "std"))
      and _is_int(s.get("count", 0)) for s in value.values())


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
