"""The windows lsm-eval reads, the embeddings it exports and the data summary it reports."""

from __future__ import annotations

import io
import os
from typing import Any, Mapping, Sequence

import numpy as np

from schemas import manifest as manifest_lib
from trainer import paths


def read_windows(data_dir: str, dataset: str, split: str, max_windows: int = 0,
                 seed: int = 0) -> dict[str, np.ndarray] | None:
  """All windows of one split as arrays (None when the split is absent or empty).

  With max_windows, a seeded sample of that many, kept in file order. A record that
  cannot be read or decoded raises RecordError naming its shard and index.
  """
  from trainer import input_pipeline
  try:
    shards = [(p, n) for p, n in manifest_lib.shards(data_dir, split, dataset) if n]
  except manifest_lib.ManifestError:
    return None
  total = sum(n for _, n in shards)
  if total == 0:
    return None
  keep = np.arange(total)
  if max_windows and total > max_windows:
    keep = np.sort(np.random.default_rng([seed, 7]).choice(total, max_windows, replace=False))
  source = input_pipeline.ShardSource(shards, window=None)
  fields = {k: [] for k in ("values", "observed", "subject", "start", "label", "exercise")}
  for i in keep:
    w = source[int(i)]
    fields["values"].append(np.array(w["values"], np.float32))
    fields["observed"].append(np.array(w["mask"], bool))
    for key in ("subject", "start", "label", "exercise"):
      fields[key].append(w[key])
  return {"values": np.stack(fields["values"]), "observed": np.stack(fields["observed"]),
          "subject": np.array(fields["subject"], dtype="U64"),
          "start": np.array(fields["start"], np.int64),
          "label": np.array(fields["label"], np.int64),
          "exercise": np.array(fields["exercise"], np.int64)}


def first_split(data_dir: str, dataset: str, splits: Sequence[str], max_windows: int,
                seed: int) -> tuple[str | None, dict[str, np.ndarray] | None]:
  """The first of `splits` that holds windows, and its windows."""
  for split in splits:
    windows = read_windows(data_dir, dataset, split, max_windows, seed)
    if windows is not None:
      return split, windows
  return None, None


def export_embeddings(path: str, model, parts: Sequence[tuple[str, str, Mapping]]) -> str:
  """One row per window: embedding, subject hash, window start (UTC minutes), dataset,
  split, label, exercise; plain arrays in an .npz (np.load(..., allow_pickle=False))."""
  columns = {k: [] for k in ("embedding", "subject", "start", "dataset", "split", "label",
                             "exercise")}
  for dataset, split, windows in parts:
    n = len(windows["values"])
    columns["embedding"].append(model.embed(windows["values"], windows["observed"]))
    for key in ("subject", "start", "label", "exercise"):
      columns[key].append(windows[key])
    columns["dataset"].append(np.full(n, dataset, dtype="U16"))
    columns["split"].append(np.full(n, split, dtype="U16"))
  arrays = {k: np.concatenate(v) for k, v in columns.items()}
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  paths.path(path).write_bytes(buf.getvalue())
  return path


def data_summary(data_dir: str, manifest: Mapping[str, Any], notes: Mapping[str, Any]
                 ) -> dict[str, Any]:
  """What the numbers rest on, for the report: the pipeline's subjects, windows and
  dead-lettered input (from its manifest, where recorded) and the windows and class
  counts each task actually used (from the evaluation's notes), with the windows,
  subjects and scored features behind each generative task."""
  from trainer import report  # pylint: disable=g-import-not-at-top
  from trainer.evaluators import discriminative  # pylint: disable=g-import-not-at-top
  counts = manifest.get("counts", {})
  summary: dict[str, Any] = {"pipeline output": os.path.abspath(data_dir)}
  if counts.get("subjects"):
    summary["subjects per split"] = counts["subjects"]
  summary["windows per split"] = {
      dataset: {split: sum(e["records"] for e in entries) for split, entries in splits.items()}
      for dataset, splits in manifest["datasets"].items()}
  dropped = {dataset: w["dropped"] for dataset, w in counts.get("windows", {}).items()
             if any(w.get("dropped", {}).values())}
  if dropped:
    summary["windows dropped"] = dropped
  for unit in ("rows", "readings"):
    if counts.get(unit, {}).get("dead_lettered"):
      summary[f"raw {unit}"] = {"read": counts[unit]["read"], "dead-lettered (with a reason)":
                                sum(counts[unit]["dead_lettered"].values())}
  ratios = {dataset: r["missing_ratio"]["mean"]
            for dataset, r in manifest.get("window_ratios", {}).items() if "missing_ratio" in r}
  if ratios:
    summary["mean missing ratio per window"] = ratios
  if "generative_windows" in notes:
    summary["generative tasks"] = (f"{notes['generative_windows']} windows of the pretrain "
                                   f"{notes['generative_split']} split")
  if "cross_feature" in notes:
    summary["cross-feature baseline"] = notes["cross_feature"]
  if notes.get("generative_basis"):
    summary[report.GENERATIVE_BASIS] = notes["generative_basis"]
  for task, note in notes.get("discriminative_tasks", {}).items():
    names = discriminative.TASKS[task][2]
    summary[task] = {"train windows": note["train_windows"],
                     "test windows": note["test_windows"],
                     "train subjects": note["train_subjects"],
                     "test subjects": note["test_subjects"],
                     "train class counts": dict(zip(names, note["train_class_counts"]))}
    if "skipped" in note:
      summary[task]["not run"] = note["skipped"]
    few_shot = [f"{k.split('_')[0]}-shot ({v})" for k, v in note.items()
                if k.endswith("_shot_skipped")]
    if few_shot:
      summary[task]["few-shot not run"] = "; ".join(few_shot)
  return summary
