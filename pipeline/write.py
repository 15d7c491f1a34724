"""Stage 8 and 9, WriteShards and WriteManifest.

Shards: a subject's windows of a dataset and split go to shard crc32(subject) %
num_shards, and a shard's records are written in (subject, start) order, so the
bytes do not depend on worker count, bundling or input order. The shard writer
also applies stage 7's transform graph (pipeline.normalise.Transformer) to batches
of about TRANSFORM_WINDOWS windows right before encoding them: each window crosses the
runner once (as a pipeline.exchange reference with exchange "files"), and a
worker holds one such batch, not a shard. ArrayRecord is written with group_size:1
(every record its own chunk) for cheap random access from Grain. num_shards 0 sizes
shards to about 256 MiB each.

The manifest is written last, inside the pipeline (so it works on Dataflow too),
from the global counts, the shard list and the train statistics; it refuses to be
written when the row, reading or per-source entry counts do not reconcile. Beside
the trainer's keys it holds the inputs with their formats, counts (with
counts.sources.<format>: entries, extras and dead letters by reason, features
provided and present, subjects_without_features, and no_windows when the source has
none of the 26 features; subjects_without_readings, subjects_shorter_than_window),
window_ratios (count / min / mean / max of missing_ratio and source_missing_ratio
per dataset) and the extras file's path. When a dataset gets no window, a warning
says why (no feature, too short, all dropped, or an unlucky split).
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import math
import os
import typing
import zlib

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipeline import exchange, gcs, normalise
from pipeline.windows import WindowBlock
from schemas import manifest, record
from schemas.constants import SPLITS
from schemas.features import FEATURE_NAMES
from schemas.raw import READING_REASONS, ROW_REASONS

SHARD_BYTES = 256 << 20
# Snappy: 0.10 ms of CPU a record where zstd:1 takes 0.25 ms, for files 9% larger
# (benchmark records; reading costs the same).
WRITER_OPTIONS = "group_size:1,snappy"
# counts.sources.<format>.no_windows of a source none of whose subjects has any LSM
# feature (NHANES activity counts): no window can ever be cut from it.
NO_WINDOWS = ("the source provides none of the 26 LSM features, so no window can be "
              "cut; its data is kept in the extras")


def shard_count(records: int, window: int, forced: int) -> int:
  if forced:
    return forced
  return max(1, math.ceil(records * record.record_size(t=window) / SHARD_BYTES))


def shard_path(dataset: str, split: str, index: int, count: int) -> str:
  return f"{dataset}/{manifest.shard_name(split, index, count)}"


def _write_array_record(path: str, records) -> int:
  """ArrayRecord needs a local file; pipeline.gcs publishes it whole at `path` (or gs://).

  Returns the number of records written.
  """
  from array_record.python.array_record_module import ArrayRecordWriter
  written = []

  def write(local: str) -> None:
    writer = ArrayRecordWriter(local, WRITER_OPTIONS)
    for data in records:
      writer.write(data)
      written.append(None)
    writer.close()

  gcs.write_via_local_file(path, write)
  return len(written)


def _batches(blocks):
  """Consecutive (subject, windows, ref) runs of about normalise.TRANSFORM_WINDOWS windows."""
  batch, size = [], 0
  for block in blocks:
    batch.append(block)
    size += block[1]
    if size >= normalise.TRANSFORM_WINDOWS:
      yield batch
      batch, size = [], 0
  if batch:
    yield batch


class _WriteShard(beam.DoFn):
  """((dataset, split, index, count), [(subject, windows, block ref)]) -> the shard
  written, yielding (dataset, split, index, count, records); 'statistics'."""

  def __init__(self, output: str):
    self._output = output
    self._transformers = {}

  def process(self, item, transform_dir):
    (dataset, split, index, count), blocks = item
    transform = self._transformers.setdefault(transform_dir,
                                              normalise.Transformer(transform_dir))

    def normalised(batch):
      fetched = [exchange.fetch(ref) for _, _, ref in batch]
      return fetched, transform(np.concatenate([b.values for b in fetched]))

    def encoded(fetched, z):
      offset = 0
      for block in fetched:
        yield from (data for _, data in sorted(
            normalise.encode_block(block, z[offset:offset + len(block)])))
        offset += len(block)

    def records():
      # The next batch goes through TensorFlow (which releases the GIL) on a second
      # thread while this one encodes and writes the current batch.
      with concurrent.futures.ThreadPoolExecutor(1) as pool:
        ahead = collections.deque()
        for batch in _batches(sorted(blocks, key=lambda b: b[0])):
          ahead.append(pool.submit(normalised, batch))
          if len(ahead) > 1:
            yield from encoded(*ahead.popleft().result())
        while ahead:
          yield from encoded(*ahead.popleft().result())

    path = shard_path(dataset, split, index, count)
    n = _write_array_record(os.path.join(self._output, path), records())
    yield dataset, split, index, count, n
    yield beam.pvalue.TaggedOutput("statistics", transform.statistics)


def _first(stats):
  return next((s for s in stats if s), {})


class WriteShards(beam.PTransform):
  """{'windows': WindowBlock, 'transform': the transform directory (one element)} ->
  {'shards': (dataset, split, index, count, records), 'statistics': what the graph
  applies}.

  exchange_dir: where pipeline.exchange writes the blocks (None: through the runner).
  """

  def __init__(self, output: str, window: int, num_shards: int,
               exchange_dir: str | None = None):
    super().__init__()
    self._output, self._window, self._num_shards = output, window, num_shards
    self._exchange_dir = exchange_dir

  def expand(self, inputs):
    window, forced = self._window, self._num_shards
    stored = (inputs["windows"]
              | "Key" >> beam.Map(lambda b: ((b.dataset, b.split, b.subject, len(b)), b)
                                  ).with_output_types(typing.Tuple[tuple, WindowBlock])
              | "Stash" >> exchange.Stash(self._exchange_dir))
    totals = (stored
              | "Sizes" >> beam.MapTuple(lambda key, _: (key[:2], key[3]))
              | "PerSplit" >> beam.CombinePerKey(sum))

    def assign(item, totals):
      (dataset, split, subject, n), ref = item
      count = shard_count(totals[(dataset, split)], window, forced)
      index = zlib.crc32(subject.encode("ascii")) % count
      return (dataset, split, index, count), (subject, n, ref)

    written = (stored
               | "Assign" >> beam.Map(assign, beam.pvalue.AsDict(totals))
               | "ByShard" >> beam.GroupByKey()
               | "Write" >> beam.ParDo(_WriteShard(self._output),
                                       beam.pvalue.AsSingleton(inputs["transform"])
                                       ).with_outputs("statistics", main="shards"))
    return {"shards": written.shards,
            "statistics": written.statistics | "OneCopy" >> beam.CombineGlobally(_first)}


def nest_counts(flat: dict, datasets) -> dict:
  """The flat counter names as the manifest's nested, reconciling counts."""
  def take(prefix, reasons):
    return {r: flat.get(f"{prefix}/{r}", 0) for r in reasons}
  rows = {"read": flat.get("rows_read", 0), "parsed": flat.get("rows_parsed", 0),
          "dead_lettered": take("rows_dead_letter", ROW_REASONS)}
  readings = {"read": flat.get("readings_read", 0), "used": flat.get("readings_used", 0),
              "dead_lettered": take("readings_dead_letter", READING_REASONS)}
  problems = []
  if rows["read"] != rows["parsed"] + sum(rows["dead_lettered"].values()):
    problems.append(f"rows {rows}")
  if readings["read"] != readings["used"] + sum(readings["dead_lettered"].values()):
    problems.append(f"readings {readings}")
  if problems:
    raise AssertionError("lsm-pipeline: counts do not reconcile (a bug): " + "; ".join(problems))
  windows = {}
  for dataset in datasets:
    windows[dataset] = {
        "cut": flat.get(f"windows/{dataset}/cut", 0),
        "dropped": {k.rsplit("/", 1)[1]: v for k, v in flat.items()
                    if k.startswith(f"windows/{dataset}/dropped/")},
    }
  labels = {k.replace("label_", "", 1): v for k, v in flat.items() if k.startswith("label_")}
  device = source_counts(flat)
  out = {"rows": rows, "readings": readings,
         "dead_letter": {**take("rows_dead_letter", ROW_REASONS),
                         **take("readings_dead_letter", READING_REASONS)},
         "subjects": {s: flat.get(f"subjects/{s}", 0) for s in SPLITS},
         "windows": windows}
  if labels:
    out["labels"] = labels
  if device:
    out["sources"] = device
  by_sessions = {k.rsplit("/", 1)[1]: v for k, v in flat.items()
                 if k.startswith("subjects_by_sessions/")}
  if by_sessions:  # device subjects by the number of sessions (exports) they came from
    out["subjects_by_sessions"] = dict(sorted(by_sessions.items(), key=lambda kv: int(kv[0])))
  for name in ("subjects_without_readings", "subjects_shorter_than_window"):
    if flat.get(name):
      out[name] = flat[name]
  return out


def source_counts(flat: dict) -> dict:
  """Per device format: entries that reconcile, readings, and the features provided
  (subjects whose source provides each) and present (used readings of each)."""
  out = {}
  for name, value in flat.items():
    if not name.startswith("sources/"):
      continue
    _, fmt, *rest = name.split("/")
    node = out.setdefault(fmt, {"extras": {}, "dead_letter": {}, "provided": {},
                                "present": {}})
    if len(rest) == 2:
      node[rest[0]][rest[1]] = value
    else:
      node[rest[0]] = value
  for fmt, node in out.items():
    read = node.get("entries_read", 0)
    if read != (node.get("entries_used", 0) + sum(node["extras"].values())
                + sum(node["dead_letter"].values())):
      raise AssertionError(f"lsm-pipeline: {fmt} entries do not reconcile (a bug): {node}")
    node["features_provided"] = sorted(node["provided"])
    node["features_present"] = sorted(node["present"])
    if node.get("subjects") and not node["provided"]:
      node["no_windows"] = NO_WINDOWS
  return out


def _warn_if_empty(dataset: str, nested: dict, window: int):
  """Says why a dataset (or some of its splits) got no window: legal, rarely meant."""
  windows = nested["windows"][dataset]
  cut, written = windows["cut"], windows["written"]
  featureless = sorted(f for f, n in nested.get("sources", {}).items() if "no_windows" in n)
  empty = [s for s, n in written.items() if not n]
  if not cut and featureless:
    logging.warning("lsm-pipeline: dataset %s: no window could be cut; %s: %s", dataset,
                    ", ".join(featureless), NO_WINDOWS)
  elif not cut and nested.get("subjects_shorter_than_window"):
    logging.warning("lsm-pipeline: dataset %s: no window could be cut; %d subject(s) "
                    "recorded less than one window (%d minutes from first to last "
                    "reading)", dataset, nested["subjects_shorter_than_window"], window)
  elif cut and not sum(written.values()):
    logging.warning("lsm-pipeline: dataset %s: all %d windows cut were dropped (%s)",
                    dataset, cut, json.dumps(windows["dropped"], sort_keys=True))
  elif empty:
    logging.warning("lsm-pipeline: dataset %s has no windows in split(s) %s; with few "
                    "subjects try other --split fractions or --split_salt", dataset,
                    ", ".join(empty))


def write_manifest(_, output: str, header: dict, flat_counts: dict, shards: list,
                   statistics: dict, window: int, forced: int, ratios=None):
  """Writes DIR/manifest.json; creates the empty shards no window was hashed to."""
  datasets = header["datasets_written"]
  written = {(d, s, i): (c, n) for d, s, i, c, n in shards}
  totals = {}
  for (d, s, _), (_, n) in written.items():
    totals[(d, s)] = totals.get((d, s), 0) + n
  listing = {}
  for dataset in datasets:
    listing[dataset] = {}
    for split in SPLITS:
      count = shard_count(totals.get((dataset, split), 0), window, forced)
      entries = []
      for index in range(count):
        path = shard_path(dataset, split, index, count)
        records = written.get((dataset, split, index), (count, 0))[1]
        if (dataset, split, index) not in written:
          _write_array_record(os.path.join(output, path), ())
        entries.append({"path": path, "records": records})
      listing[dataset][split] = entries
  nested = nest_counts(flat_counts, datasets)
  for dataset in datasets:
    nested["windows"][dataset]["written"] = {
        split: sum(e["records"] for e in listing[dataset][split]) for split in SPLITS}
    _warn_if_empty(dataset, nested, window)
  body = {
      "manifest_version": manifest.MANIFEST_VERSION,
      "record_version": record.VERSION,
      "window_minutes": window,
      "feature_names": list(FEATURE_NAMES),
      "datasets": listing,
      "train_statistics": statistics,
      "transform_dir": "transform",
      "dead_letter": "dead_letter/dead_letter.jsonl",
      "extras": "extras/extras.jsonl",
      "counts": nested,
      "window_ratios": ratios or {},
      **{k: v for k, v in header.items() if k != "datasets_written"},
  }
  path = os.path.join(output, manifest.MANIFEST_NAME)
  with FileSystems.create(path) as f:
    f.write((json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8"))
  yield path


class WriteManifest(beam.PTransform):
  """Runs once all counts, shards and statistics are in; yields the manifest's path."""

  def __init__(self, output: str, header: dict, window: int, num_shards: int):
    super().__init__()
    self._args = (output, header)
    self._window, self._num_shards = window, num_shards

  def expand(self, inputs):
    pbegin = inputs["counts"].pipeline
    ratios = ([beam.pvalue.AsSingleton(inputs["ratios"])] if "ratios" in inputs else [])
    return (pbegin
            | "Once" >> beam.Create([None])
            | "Write" >> beam.FlatMap(
                write_manifest, *self._args,
                beam.pvalue.AsSingleton(inputs["counts"]),
                beam.pvalue.AsList(inputs["shards"]),
                beam.pvalue.AsSingleton(inputs["statistics"]),
                self._window, self._num_shards, *ratios))
