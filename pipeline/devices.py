"""Device exports in lsm-pipeline: which reader takes each input, and the ReadDevices stage.

plan_inputs() decides, per input file and before anything runs, whether it is a
canonical file (read by ReadRaw + ParseReadings) or a device export (read by
pipeline.sources through ReadDevices), and logs the choice. With --format auto
every file is offered first to the formats of the device registry
(pipeline/sources/registry.py) from its name and first lines and bytes; a file
that no device accepts is canonical when it is Parquet or JSON lines (by
extension), or a CSV whose header names subject_id and timestamp (the canonical
reader accepts aliases and extra columns that the strict canonical_wide rule does
not); anything else, or a file several rules accept, is an error naming it.
A file with no bytes is skipped with a warning, listed with format 'empty' and
counted (manifest inputs_skipped_empty), so that one empty file of a cohort glob
does not stop the cohort; a run whose every input is empty fails naming them.

Device files are grouped into exports by (format, folder): one E4 session, one
Garmin folder (data.csv + acc.csv), one Fitabase export, one NHANES count + wear
pair. ReadDevices reads each export with read_source on Beam's FileSystems (so
gs:// works), replaces subject ids with their keyed hash at once, range-checks the
readings like ParseReadings does and hands them on as parse.Readings, one per
(subject, file) with the file's data rows, so that alignment, duplicates, the HRV
rule and clipping apply to them unchanged and their dead letters name the file and
row. The sessions of one participant are separate exports that name one subject
(pipeline.sources.common.subject_of); SessionsPerSubject counts how many subjects
came from 1, 2, ... exports (counts.subjects_by_sessions in the manifest).

Accounting per format (counters sources/<format>/...): an entry is a data row
(a CSV line, an E4 sample, an NHANES subject-day row), and
  entries_read == entries_used + sum(extras/<reason>) + sum(dead_letter/<reason>)
Readings derived from used entries join the pipeline-wide reading accounting
(readings_read == readings_used + dead-lettered readings).
"""

from __future__ import annotations

import dataclasses
import json
import logging

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline import counts, keys, read, sources
from pipeline.keys import KeyedFlatMap, KeyRef
from pipeline.parse import Readings, TimeRule, _check, check_times, dead_letter
from pipeline.sources import detection, registry
from schemas import record
from schemas.features import FEATURE_INDEX, FEATURE_NAMES, normalise_alias
from schemas.raw import READING_REASONS

CANONICAL = ("canonical_long", "canonical_wide")
EXTRAS = "extras"
PROVIDED = "provided"
_OK = len(READING_REASONS)
_OUTSIDE_TIME_RANGE = READING_REASONS.index("outside_time_range")
EMPTY = "empty"  # the format of a file with no bytes: skipped, counted
EMPTY_COUNT = "inputs_skipped_empty"  # manifest key: how many such files


def device_formats() -> tuple[str, ...]:
  """The formats read by a device adapter (registry devices with a reader)."""
  return tuple(name for name, d in registry.devices().items() if d.read is not None)


def _open(path: str):
  """Raw bytes on any Beam file system; pipeline.sources gunzips by magic bytes."""
  return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


@dataclasses.dataclass
class Plan:
  """inputs: [{"path", "format"}] for the manifest; canonical: paths for ReadRaw;
  file_format: ReadRaw's forced file format; exports: (format, folder, paths)."""
  inputs: list
  canonical: list
  file_format: str
  exports: list


def _canonical_header(head: list[str], delimiter: str = ",") -> str | None:
  """'canonical_long' / 'canonical_wide' when the canonical reader would take the header."""
  if not head:
    return None
  columns = head[0].split(delimiter)
  if not {"subject_id", "timestamp"} <= {normalise_alias(c) for c in columns}:
    return None
  return "canonical_" + read.layout(columns)


def _detect(path: str, delimiter: str = ",") -> str:
  """Format of one input under --format auto, or EMPTY for a file with no bytes (no
  rule accepts it); raises UnreadableFileError naming the file, for a canonical CSV
  header that repeats a column too (read.check_columns).

  The file is sniffed once and offered to every registered format first, so that a
  device writing .json (Takeout's arrays) or a zip is its device's; a Parquet or
  JSON lines file that no device takes is canonical, as is a CSV whose header names
  subject_id and timestamp (aliases and extra columns allowed)."""
  try:
    found = detection.sniff(path, _open)
    if not detection.candidates(found):
      extension = _extension_format(path)
      if extension == "jsonl":
        read.check_json_lines(path)
      if extension in ("parquet", "jsonl"):
        return "canonical"
      fmt = _canonical_header(list(found.lines), delimiter)
      if fmt:
        read.check_columns(path, found.lines[0].split(delimiter))
        logging.info("%s: canonical file (%s header)", path, fmt)
        return fmt
    return detection.classify(found)
  except detection.EmptyFileError as e:
    logging.warning("lsm-pipeline: %s; skipped (counted in the manifest as %s)", e,
                    EMPTY_COUNT)
    return EMPTY
  except (sources.SourceError, OSError) as e:
    raise read.UnreadableFileError(str(e)) from e


def _extension_format(path: str) -> str | None:
  """The file format its name says (read.file_format), or None for an unknown name."""
  try:
    return read.file_format(path)
  except read.UnreadableFileError:
    return None


def check_id_columns(path: str, columns: list[str]) -> None:
  """Raises UnreadableFileError naming the file and the missing column when a canonical
  table has no subject_id or no timestamp column (aliases count): without them every
  row would be dead-lettered. --subject_id names the person of a device export; a
  canonical table says whose each row is itself."""
  names = {normalise_alias(c) for c in columns}
  missing = [c for c in ("subject_id", "timestamp") if c not in names]
  if missing:
    shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
    raise read.UnreadableFileError(
        f"{path}: a canonical table needs a {' and a '.join(missing)} column; its columns "
        f"are {shown}. Add {'them' if len(missing) > 1 else 'it'} (schemas/raw.py; "
        "--subject_id names the person of a device export, not of a table's rows)")


def plan_inputs(paths: list[str], forced: str = "auto", rule: TimeRule = TimeRule(),
                delimiter: str = ",") -> Plan:
  """Says which reader takes each file; fails naming a file before anything is written:
  also a canonical file whose first timestamps need --tz or --timestamp_unit under
  `rule` (parse.check_times: names the column and an example value).

  An empty file (format EMPTY under --format auto) is skipped with a warning and
  listed in `inputs`; when every input is empty, that is an error naming them.
  delimiter: the separator of canonical CSV files (--csv_delimiter).
  """
  entries, canonical, grouped = [], [], {}
  for path in sorted(paths):
    if forced == "auto":
      fmt = _detect(path, delimiter)
    elif forced in read.READERS or forced in CANONICAL:
      fmt = forced if forced in CANONICAL else f"canonical ({forced})"
    else:
      fmt = forced
    entries.append({"path": path, "format": fmt})
    if fmt == EMPTY:
      continue
    if fmt in device_formats():
      folder = sources.common.dirname(path)
      grouped.setdefault((fmt, folder), []).append(path)
    else:
      canonical.append(path)
  if entries and all(e["format"] == EMPTY for e in entries):
    raise read.UnreadableFileError(
        "every input is an empty file: " + ", ".join(e["path"] for e in entries))
  file_format = forced if forced in read.READERS else "auto"
  for path in canonical:  # fail fast on an unknown extension, id columns or timestamps
    head = read.head_table(path, read.file_format(path, file_format), delimiter=delimiter)
    if head is None:
      continue
    check_id_columns(path, head.column_names)
    name = read.timestamp_name(head.column_names)
    if head.num_rows:
      check_times(path, name, head.column(head.column_names.index(name)), rule)
  exports = [(fmt, folder, tuple(p)) for (fmt, folder), p in sorted(grouped.items())]
  for fmt, folder, p in exports:
    logging.info("lsm-pipeline: %s export %s (%d files)", fmt, folder or ".", len(p))
  return Plan(entries, canonical, file_format, exports)


def with_input_ids(entries: list, key: bytes) -> list:
  """Plan.inputs entries with "id" (keys.input_id of the path) and, for a device file,
  "export" (that of its export's folder): what the manifest names inputs by."""
  out = []
  for entry in entries:
    extra = {"id": keys.input_id(entry["path"], key)}
    if entry["format"] in device_formats():
      extra["export"] = keys.input_id(sources.common.dirname(entry["path"]) or ".", key)
    out.append({**entry, **extra})
  return out


def _entry_lines(table, hashes: dict | None = None, key: bytes | None = None) -> list[str]:
  """Adapter entries as JSON lines: dead letters (no hashes) with the raw path and no
  subject, for the data owner; extras (hashes and key given) for the shareable output:
  the subject as its hash and the file as keys.input_id, never the raw id or path
  (the adapters' raw extras are value cells, not id columns)."""
  lines = []
  for e in table.to_dict(orient="records"):
    stamp = e["timestamp"]
    entry = {"source": e["source"], "row": int(e["row"]), "n_rows": int(e["n_rows"]),
             "timestamp": None if stamp is None or stamp != stamp else stamp.isoformat(),
             "field": e["field"], "raw": e["raw"], "reason": e["reason"]}
    if hashes is not None:
      entry["source"] = keys.input_id(e["source"], key)
      entry["subject"] = hashes.get(e["subject_id"]) if e["subject_id"] else None
    lines.append(json.dumps(entry, sort_keys=True, default=str))
  return lines


def read_export(export, key: bytes, tz, subject_id, subject_id_pattern=None,
                rule: TimeRule = TimeRule(), options: dict | None = None):
  """One export -> (subject hash, Readings), one per (subject, file), rows numbered as
  in the file; tagged dead letters, extras, provided, counts. options: the devices'
  own flags by name (registry.Option), handed to the export's reader.

  Readings outside rule's plausible range [min_ns, max_ns) are dead-lettered
  outside_time_range (the reason wins over the value's, as the time is wrong)."""
  fmt, folder, paths = export
  try:
    result = sources.read_source(list(paths), format=fmt, tz=tz, subject_id=subject_id,
                                 subject_id_pattern=subject_id_pattern, opener=_open,
                                 options=options)
  except sources.SourceError as e:
    raise read.UnreadableFileError(str(e)) from e
  hashes = {s: record.subject_hash(str(s), key) for s in result.provided}
  for line in _entry_lines(result.dead_letter):
    yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, line)
  for line in _entry_lines(result.extras, hashes, key):
    yield beam.pvalue.TaggedOutput(EXTRAS, line)
  prefix = f"sources/{fmt}/"
  tally = {prefix + "exports": 1, prefix + "subjects": len(result.provided),
           prefix + "entries_read": result.entries_read,
           prefix + "entries_used": result.entries_used}
  for name, table in (("extras", result.extras), ("dead_letter", result.dead_letter)):
    for reason, n in table.groupby("reason")["n_rows"].sum().items():
      tally[f"{prefix}{name}/{reason}"] = int(n)
  for note, n in result.notes.items():
    tally[prefix + note] = n
  _log_local_time(fmt, folder, result)
  featureless = sum(1 for features in result.provided.values() if not features)
  if featureless:
    tally[prefix + "subjects_without_features"] = featureless
    logging.warning(
        "lsm-pipeline: %s export %s: %d of %d subjects provide none of the 26 LSM "
        "features, so no window can be cut for them; their data is kept in the extras "
        "(%s)", fmt, folder or ".", featureless, len(result.provided),
        ", ".join(sorted(set(result.extras["reason"]))) or "none")
  for subject, features in result.provided.items():
    for feature in features:
      tally[f"{prefix}provided/{feature}"] = tally.get(f"{prefix}provided/{feature}", 0) + 1
    yield beam.pvalue.TaggedOutput(PROVIDED, (hashes[subject],
                                              sources.provided_mask(features)))
  frame = result.readings
  feature = frame["feature"].map(FEATURE_INDEX).to_numpy(np.int16)
  value = frame["value"].to_numpy(np.float64)
  time = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8
  row = frame["row"].to_numpy(np.int64)
  files = frame["source"].astype("category").cat
  source, paths = files.codes.to_numpy(), files.categories
  reason = _check(feature, value, np.zeros(len(value), bool))
  reason[(time < rule.min_ns) | (time >= rule.max_ns)] = _OUTSIDE_TIME_RANGE
  tally["readings_read"] = len(frame)
  tally[prefix + "readings"] = len(frame)
  for code, why in enumerate(READING_REASONS):
    bad = np.flatnonzero(reason == code)
    if len(bad):
      tally[f"readings_dead_letter/{why}"] = len(bad)
    for j in bad:  # a derived value (raw samples were checked by the adapter)
      yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
          paths[source[j]], row[j], why, {"format": fmt, "timestamp": str(frame["timestamp"].iat[j]),
                                   "feature": FEATURE_NAMES[feature[j]], "value": value[j]}))
  ok = reason == _OK
  for name in frame["feature"][ok].unique():
    tally[f"{prefix}present/{name}"] = int((frame["feature"][ok] == name).sum())
  yield from _per_subject_file(frame["subject_id"].to_numpy(object), source, paths, ok,
                               hashes, time, row, value, feature)
  yield counts.emit(tally, folder or ".")


def _per_subject_file(subjects, source, paths, ok, hashes, time, row, value, feature):
  """(subject hash, Readings) per (subject, file; `source` codes into `paths`): the
  pipeline's dead letters (e.g. align's `duplicate`) then name the file and its row."""
  pick = np.flatnonzero(ok)
  if not len(pick):
    return
  keys = pd.MultiIndex.from_arrays([subjects[pick], source[pick]])
  codes, pairs = pd.factorize(keys, sort=True)
  order = np.argsort(codes, kind="stable")
  bounds = np.flatnonzero(np.diff(codes[order])) + 1
  for (subject, code), part in zip(pairs, np.split(pick[order], bounds)):
    yield hashes[subject], Readings(paths[code], time[part], row[part], value[part],
                                    feature[part])


def _log_local_time(fmt: str, folder: str, result) -> None:
  """Says how the fall-back hour was read (common.localise's rule), when it occurs."""
  notes = result.notes
  unresolved = int(result.dead_letter.loc[result.dead_letter["reason"] ==
                                          "ambiguous_local_time", "n_rows"].sum())
  if notes.get("ambiguous_local_time_first") or unresolved:
    logging.info(
        "lsm-pipeline: %s export %s: fall-back (repeated) hour, told apart by the row "
        "order: %d rows on its first pass, %d on its second%s", fmt, folder or ".",
        notes.get("ambiguous_local_time_first", 0),
        notes.get("ambiguous_local_time_second", 0),
        f"; {unresolved} dead-lettered as ambiguous_local_time (there the row order "
        "cannot tell the passes apart)" if unresolved else "")


class ReadDevices(beam.PTransform):
  """Exports -> 'readings': (subject hash, Readings); 'provided': (hash, bool[26]);
  'dead_letter', 'extras': JSON lines; 'counts'. key: resolved on the worker.
  options: the devices' own flags by name (registry.Option), for their readers."""

  def __init__(self, exports: list, tz: str | None, subject_id: str | None, key: KeyRef,
               subject_id_pattern: str | None = None, rule: TimeRule = TimeRule(),
               options: dict | None = None):
    super().__init__()
    self._exports = list(exports)
    self._key = key
    self._args = (tz, subject_id, subject_id_pattern, rule, dict(options or {}))

  def expand(self, pbegin):
    return (pbegin
            | "Exports" >> beam.Create(self._exports)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(KeyedFlatMap(read_export, self._key, *self._args)
                                   ).with_outputs(
                counts.DEAD_LETTER, EXTRAS, PROVIDED, counts.COUNTS, main="readings"))


class SessionsPerSubject(beam.PTransform):
  """'provided' (one per subject and export) -> counts subjects_by_sessions/<n>: how
  many subjects came from n sessions (exports), for the manifest; no id leaves."""

  def expand(self, provided):
    return (provided
            | "One" >> beam.Map(lambda item: (item[0], 1))
            | "Sessions" >> beam.CombinePerKey(sum)
            | "Histogram" >> beam.Map(lambda item: {f"subjects_by_sessions/{item[1]}": 1}))
