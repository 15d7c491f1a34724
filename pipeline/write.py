"""Stage 8 and 9, WriteShards and WriteManifest.

Shards: a subject's windows of a dataset and split go to shard crc32(subject) %
num_shards, and a shard's records are written in (subject, start) order, so the
bytes do not depend on worker count, bundling or input order. The shard writer
also applies stage 7's transform graph (pipeline.normalise.Transformer: the graph's
constants in numpy, checked against the graph bit for bit on every run) to batches
of about TRANSFORM_WINDOWS windows right before encoding them: each window crosses the
runner once (as a pipeline.exchange reference with exchange "files"), and a
worker holds one such batch, not a shard. ArrayRecord is written with group_size:1
(every record its own chunk) for cheap random access from Grain. num_shards 0 sizes
shards to about 256 MiB each.

Every stage writes under the run's staging folder (pipeline.publish); the manifest
step publishes the run, manifest.json last and atomically, inside the pipeline (so
it works on Dataflow too). The manifest is made from the global counts, the shard
list and the train statistics; it refuses to be written when the row, reading or
per-source entry counts do not reconcile. Beside
the trainer's keys it holds the inputs with their formats, counts (with
counts.sources.<format>: entries, extras and dead letters by reason, features
provided and present, subjects_without_features, and no_windows when the source has
none of the 26 features; subjects_without_readings, subjects_shorter_than_window),
window_ratios (count / min / mean / max of missing_ratio and source_missing_ratio
per dataset) and the extras file's path; counts.features_present (per split, the
pretrain windows holding each feature), summary (a few lines for people: rows,
entries, readings, subjects, windows per split and dataset) and warnings (short,
without raw paths or ids: a dataset or split without windows and why, thin splits,
features one split has and another lacks, features normalised with population
statistics, subjects split at gaps, and with --statistics the datasets with anomalies).
With --statistics it also lists data_statistics (pipeline.statistics: the statistics
proto, the anomalies and the HTML report under statistics/). run() logs the summary and
warnings at the end.

Before anything is written the manifest checks the run: an input that kept none of
its rows, or more than --max_dead_letter_fraction of all rows and entries
dead-lettered, raises counts.RunFailed (naming the inputs, top reasons and an
example each) and nothing is published, so no trainer picks the output up (an
earlier run there stays whole). The dead-letter file is a side input of that step,
so it is complete by then; the failure names it in the staging folder.
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

from pipeline import counts, exchange, gcs, normalise, publish
from pipeline.align import MAX_GAP_MINUTES
from pipeline.windows import WindowBlock
from schemas import manifest, record
from schemas.constants import SPLITS
from schemas.features import FEATURE_NAMES
from schemas.raw import READING_REASONS, ROW_REASONS

SHARD_BYTES = 256 << 20
# Snappy: less CPU a record than zstd:1 for slightly larger files, reading at the same
# cost (benchmarks/README.md; benchmarks/record_codec.py measures it).
WRITER_OPTIONS = "group_size:1,snappy"
# counts.sources.<format>.no_windows of a source none of whose subjects has any LSM
# feature (NHANES activity counts): no window can ever be cut from it.
EXTRAS_PATH = "extras/extras.jsonl"
MIN_SPLIT_SUBJECTS = 3  # fewer subjects in a split (meant to get some) is warned about
N_OF_1 = "for one person's own data (n-of-1) pass --split 1,0,0 (every window in train)"
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
  """Consecutive ((subject, start), windows, ref) runs of about normalise.TRANSFORM_WINDOWS windows."""
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
  """((dataset, split, index, count), [((subject, first start), windows, block ref)])
  -> the shard written, yielding (dataset, split, index, count, records); 'statistics'.

  A subject has several blocks when its grid was split at a gap; (subject, first
  start) orders them."""

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
      # The next batch is transformed (numpy releases the GIL) on a second thread while
      # this one encodes and writes the current batch.
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
    """Normalises each block's float32 [n, T, F] values with the transform graph
    (z-scores clipped to schemas.constants.NORMALISED_CLIP, 0 where missing) and
    writes schemas.record windows to ArrayRecord shards per (dataset, split): about
    SHARD_BYTES each, or num_shards when set."""
    window, forced = self._window, self._num_shards
    stored = (inputs["windows"]
              | "Key" >> beam.Map(lambda b: ((b.dataset, b.split, b.subject, len(b),
                                              int(b.start[0])), b)
                                  ).with_output_types(typing.Tuple[tuple, WindowBlock])
              | "Stash" >> exchange.Stash(self._exchange_dir))
    totals = (stored
              | "Sizes" >> beam.MapTuple(lambda key, _: (key[:2], key[3]))
              | "PerSplit" >> beam.CombinePerKey(sum))

    def assign(item, totals):
      (dataset, split, subject, n, start), ref = item
      count = shard_count(totals[(dataset, split)], window, forced)
      index = zlib.crc32(subject.encode("ascii")) % count
      return (dataset, split, index, count), ((subject, start), n, ref)

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
  out["features_present"] = {
      s: {k.rsplit("/", 1)[1]: v for k, v in flat.items() if k.startswith(f"features/{s}/")}
      for s in SPLITS}
  for name in ("subjects_without_readings", "subjects_shorter_than_window",
               "subjects_split_at_gaps"):
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


def _reasons(dead: dict) -> str:
  """' (bad_timestamp 3, duplicate 1)' of the non-zero reasons; '' when none."""
  named = [f"{r} {n}" for r, n in sorted(dead.items(), key=lambda kv: (-kv[1], kv[0])) if n]
  return f" ({', '.join(named)})" if named else ""


def _empty_warning(dataset: str, nested: dict, window: int, fractions: dict) -> str | None:
  """Why a dataset (or some of its splits meant to get windows) got no window: legal,
  rarely meant."""
  windows = nested["windows"][dataset]
  cut, written = windows["cut"], windows["written"]
  featureless = sorted(f for f, n in nested.get("sources", {}).items() if "no_windows" in n)
  empty = [s for s, n in written.items() if not n and fractions.get(s, 1) > 0]
  readings = nested["readings"]
  if not cut and featureless:
    return (f"dataset {dataset}: no window could be cut; {', '.join(featureless)}: "
            f"{NO_WINDOWS}")
  if not cut and not readings["used"]:
    dead = sum(readings["dead_lettered"].values())
    return (f"dataset {dataset}: no window could be cut: no reading was used; "
            f"{readings['read']} readings read, {dead} dead-lettered"
            f"{_reasons(readings['dead_lettered'])}; {nested['rows']['read']} rows read, "
            f"{sum(nested['rows']['dead_lettered'].values())} dead-lettered"
            f"{_reasons(nested['rows']['dead_lettered'])}; see the dead letters "
            "(--dead_letter_dir)")
  if not cut and dataset == "labelled":
    return _no_labelled_windows(nested.get("labels", {}))
  if not cut and nested.get("subjects_shorter_than_window"):
    return (f"dataset {dataset}: no window could be cut; "
            f"{nested['subjects_shorter_than_window']} subject(s) recorded less than one "
            f"window ({window} minutes from first to last reading)")
  if cut and not sum(written.values()):
    return (f"dataset {dataset}: all {cut} windows cut were dropped "
            f"({json.dumps(windows['dropped'], sort_keys=True)})")
  if empty:
    text = (f"dataset {dataset} has no windows in split(s) {', '.join(empty)}; with few "
            "subjects try other --split fractions or --split_salt")
    if "train" in empty and dataset == "pretrain":
      text += (f"; with no train window every feature is normalised with LSM's population "
               f"statistics; {N_OF_1}")
    return text
  return None


def _no_labelled_windows(labels: dict) -> str:
  """Why --labels gave no labelled window: its rows, dead letters and sessions that
  named no subject with readings (manifest counts.labels)."""
  dead = {k.split("/", 1)[1]: v for k, v in labels.items()
          if k.startswith("rows_dead_letter/") and v}
  text = (f"dataset labelled: no window could be cut from --labels: "
          f"{labels.get('rows_read', 0)} label rows read, {labels.get('rows_parsed', 0)} "
          f"parsed, {sum(dead.values())} dead-lettered{_reasons(dead)}")
  without = labels.get("sessions_without_data", 0)
  if without:
    text += (f"; {without} session(s) name a subject_id with no readings in the input "
             "(the labels must use the inputs' own subject ids)")
  return text + ("; see the dead letters (--dead_letter_dir)" if dead else "")


def _split_warnings(nested: dict, statistics: dict, fractions: dict) -> list[str]:
  """Thin splits, and features that one split holds and another lacks."""
  out = []
  used = [s for s in SPLITS if fractions.get(s, 1) > 0]
  for split in used:
    n = nested["subjects"][split]
    if 0 < n < MIN_SPLIT_SUBJECTS and len(used) > 1:
      out.append(f"split {split} holds only {n} subject(s): its windows (and any metric "
                 "on them) rest on very few people")
  present = {s: set(nested["features_present"][s]) for s in SPLITS}
  written = nested["windows"]["pretrain"]["written"] if "pretrain" in nested["windows"] \
      else {}
  for split in SPLITS[1:]:
    if not (written.get("train") and written.get(split)):
      continue
    for first, second in (("train", split), (split, "train")):
      only = sorted(present[first] - present[second], key=FEATURE_NAMES.index)
      if only:
        out.append(f"feature(s) {', '.join(only)} present in {first} but absent from "
                   f"{second} (pretrain windows)")
  elsewhere = set().union(*(present[s] for s in SPLITS[1:]))
  fallback = [f for f in FEATURE_NAMES if f in elsewhere
              and statistics.get(f, {}).get("source") == normalise.POPULATION]
  if fallback:
    out.append(f"feature(s) {', '.join(fallback)} have no observed value in train but "
               "appear in other splits: normalised with LSM's population statistics "
               "(train_statistics[feature]['source'])")
  constant = [f for f in FEATURE_NAMES
              if statistics.get(f, {}).get("source") == normalise.CONSTANT]
  if constant:
    out.append(f"feature(s) {', '.join(constant)} are constant in train: scaled by LSM's "
               "population std around their train value (train_statistics[feature]"
               "['source'])")
  return out


def run_warnings(nested: dict, statistics: dict, options: dict, datasets, window: int
                 ) -> list[str]:
  """The run's warnings, short and without raw paths or ids (they go to the manifest)."""
  fractions = options.get("split", {})
  out = [w for w in (_empty_warning(d, nested, window, fractions) for d in datasets) if w]
  out += _split_warnings(nested, statistics, fractions)
  if nested.get("subjects_split_at_gaps"):
    gap = options.get("max_gap_minutes", MAX_GAP_MINUTES)
    out.append(f"{nested['subjects_split_at_gaps']} subject(s) had readings more than "
               f"{gap} minutes apart: their minute grid was split at the gap(s), no window "
               "spans one (a stray timestamp far from the rest? see --max_gap_minutes)")
  return out


def summary(nested: dict, datasets) -> list[str]:
  """The run in a few lines for people: rows, entries, readings, subjects, windows."""
  rows, readings = nested["rows"], nested["readings"]
  lines = []
  if rows["read"] or not nested.get("sources"):
    lines.append(f"rows: {rows['read']} read, {rows['parsed']} parsed, "
                 f"{sum(rows['dead_lettered'].values())} dead-lettered"
                 f"{_reasons(rows['dead_lettered'])}")
  for fmt, node in sorted(nested.get("sources", {}).items()):
    lines.append(f"{fmt} entries: {node.get('entries_read', 0)} read, "
                 f"{node.get('entries_used', 0)} used, {sum(node['extras'].values())} kept "
                 f"as extras, {sum(node['dead_letter'].values())} dead-lettered"
                 f"{_reasons(node['dead_letter'])}")
  lines.append(f"readings: {readings['read']} read, {readings['used']} used, "
               f"{sum(readings['dead_lettered'].values())} dead-lettered"
               f"{_reasons(readings['dead_lettered'])}")
  subjects = nested["subjects"]
  lines.append(f"subjects: {sum(subjects.values())} ("
               + ", ".join(f"{s} {subjects[s]}" for s in SPLITS) + ")")
  for dataset in datasets:
    windows = nested["windows"][dataset]
    lines.append(f"windows {dataset}: {windows['cut']} cut, "
                 f"{sum(windows['written'].values())} written ("
                 + ", ".join(f"{s} {windows['written'][s]}" for s in SPLITS)
                 + f"), {sum(windows['dropped'].values())} dropped"
                 f"{_reasons(windows['dropped'])}")
  return lines


def _export_files(inputs: list) -> dict:
  """{device export folder (as pipeline.devices names it): [file names]}, for messages."""
  out = {}
  for entry in inputs:
    if isinstance(entry, dict) and not entry["format"].startswith("canonical"):
      path = entry["path"].rstrip("/")
      out.setdefault(os.path.dirname(path) or ".", []).append(os.path.basename(path))
  return out


def failure_message(dead_letters: str, failures: list[str]) -> str:
  """RunFailed's text: what was lost, where the dead letters are, what to do."""
  hint = ("; or pass a larger --max_dead_letter_fraction to accept the loss"
          if any("--max_dead_letter_fraction" in f for f in failures) else "")
  return "\n".join(
      ["lsm-pipeline: the run failed and wrote no manifest (nothing was published, no "
       "trainer can pick this run up; an earlier run in the output is unchanged):"]
      + [f"  - {f}" for f in failures]
      + [f"  every dead-lettered row, with its reason: {dead_letters}",
         "  fix or remove the input(s) named above (README, \"Bring your own data\")"
         + hint])


def write_manifest(_, output: str, staging: str, header: dict, flat_counts: dict,
                   shards: list, statistics: dict, window: int, forced: int, ratios=None,
                   by_source=None, examples=None, dead_letters=(), data_statistics=None):
  """Creates the empty shards no window was hashed to, then publishes the run staged in
  `staging` into `output` with manifest.json last (pipeline.publish).

  by_source, examples: counts.SumBySource's and counts.FirstExamples' outputs;
  dead_letters: the written dead-letter file (a side input only so that it is
  complete before a failure points to it); data_statistics: what
  pipeline.statistics.write_outputs staged (--statistics), listed in the manifest and
  published with the run. Raises counts.RunFailed, publishing
  nothing, when counts.run_failures finds a lost input or too many dead letters (an
  earlier run in `output` stays whole; the staged dead letters stay for the user).
  """
  options = header.get("options", {})
  failures = counts.run_failures(
      by_source or {}, examples or {},
      options.get("max_dead_letter_fraction", counts.MAX_DEAD_LETTER_FRACTION),
      _export_files(header.get("inputs", [])))
  if failures:
    raise counts.RunFailed(failure_message(
        dead_letters[0] if dead_letters else "--dead_letter_dir", failures))
  if not publish.staged(staging):  # a retried step whose first attempt published the run
    yield os.path.join(output, manifest.MANIFEST_NAME)
    return
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
          _write_array_record(os.path.join(staging, path), ())
        entries.append({"path": path, "records": records})
      listing[dataset][split] = entries
  nested = nest_counts(flat_counts, datasets)
  for dataset in datasets:
    nested["windows"][dataset]["written"] = {
        split: sum(e["records"] for e in listing[dataset][split]) for split in SPLITS}
  body = {
      "manifest_version": manifest.MANIFEST_VERSION,
      "record_version": record.VERSION,
      "window_minutes": window,
      "feature_names": list(FEATURE_NAMES),
      "datasets": listing,
      "train_statistics": statistics,
      "transform_dir": "transform",
      "extras": EXTRAS_PATH,
      "counts": nested,
      "window_ratios": ratios or {},
      "summary": summary(nested, datasets),
      "warnings": run_warnings(nested, statistics, options, datasets, window),
      **{k: v for k, v in header.items() if k != "datasets_written"},
      "inputs": shareable_inputs(header.get("inputs", []), by_source or {}),
  }
  folders = (body["transform_dir"],)
  if data_statistics:
    body["data_statistics"] = data_statistics
    body["warnings"] += statistics_warnings(data_statistics)
    folders += (data_statistics["report"].split("/", 1)[0],)
  shard_paths = [e["path"] for splits in listing.values() for entries in splits.values()
                 for e in entries]
  yield publish.publish(output, staging,
                        (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8"),
                        shard_paths + [EXTRAS_PATH], folders)


def statistics_warnings(data_statistics: dict) -> list[str]:
  """One warning per dataset with anomalies in the --statistics report."""
  return [f"data statistics: {n} feature(s) with anomalies in {name} (schema range, "
          f"presence or drift from train; see {data_statistics['report']})"
          for name, n in data_statistics["anomaly_count"].items() if n]


def shareable_inputs(inputs: list, by_source: dict) -> list:
  """The manifest's inputs: each entry without its path (a file or folder named after a
  participant would name them), with a canonical file's own counts (SumBySource's).
  inputs: [{"path", "format", "id", ...}] (devices.with_input_ids)."""
  out = []
  for entry in inputs:
    shared = {k: v for k, v in entry.items() if k != "path"}
    if entry["path"] in by_source:
      shared["counts"] = by_source[entry["path"]]
    out.append(shared)
  return out


def log_summary(body: dict) -> None:
  """Logs a written manifest's summary (info) and warnings (warning)."""
  for line in body.get("summary", []):
    logging.info("lsm-pipeline: %s", line)
  for warning in body.get("warnings", []):
    logging.warning("lsm-pipeline: %s", warning)


class WriteManifest(beam.PTransform):
  """Runs once all counts, shards and statistics are in; publishes the run staged in
  `staging` (where every earlier stage wrote) into `output`; yields the manifest's path.

  inputs: 'counts', 'shards', 'statistics'; optional 'ratios', 'by_source' and
  'examples' (for counts.run_failures), 'dead_letters' (the written dead-letter file),
  'data_statistics' (pipeline.statistics.DataStatistics' one element).
  """

  def __init__(self, output: str, header: dict, window: int, num_shards: int, *,
               staging: str):
    super().__init__()
    self._args = (output, staging, header)
    self._window, self._num_shards = window, num_shards

  def expand(self, inputs):
    """Raises AssertionError when the counts do not reconcile (a bug: entries read
    differ from used + extras + dead-lettered), before anything is published."""
    pbegin = inputs["counts"].pipeline
    ratios = ([beam.pvalue.AsSingleton(inputs["ratios"])] if "ratios" in inputs else [])
    optional = {name: beam.pvalue.AsSingleton(inputs[name])
                for name in ("by_source", "examples", "data_statistics") if name in inputs}
    if "dead_letters" in inputs:
      optional["dead_letters"] = beam.pvalue.AsList(inputs["dead_letters"])
    return (pbegin
            | "Once" >> beam.Create([None])
            | "Write" >> beam.FlatMap(
                write_manifest, *self._args,
                beam.pvalue.AsSingleton(inputs["counts"]),
                beam.pvalue.AsList(inputs["shards"]),
                beam.pvalue.AsSingleton(inputs["statistics"]),
                self._window, self._num_shards, *ratios, **optional))
