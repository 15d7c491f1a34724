"""Device exports in lsm-pipeline: which reader takes each input, and the ReadDevices stage.

plan_inputs() decides, per input file and before anything runs, whether it is a
canonical file (read by ReadRaw + ParseReadings) or a device export (read by
pipeline.sources through ReadDevices), and logs the choice. With --format auto a
CSV is detected by pipeline.sources.detect from its name and first lines; a CSV
that no device rule accepts but whose header names subject_id and timestamp is
canonical (the canonical reader accepts aliases and extra columns that the strict
canonical_wide rule does not); anything else, or a file several rules accept, is
an error naming it. Parquet and JSON lines are canonical (no device writes them).

Device files are grouped into exports by (format, folder): one E4 session, one
Garmin folder (data.csv + acc.csv), one Fitabase export, one NHANES count + wear
pair. ReadDevices reads each export with read_source on Beam's FileSystems (so
gs:// works), replaces subject ids with their keyed hash at once, range-checks the
readings like ParseReadings does and hands them on as parse.Readings, so that
alignment, duplicates, the HRV rule and clipping apply to them unchanged.

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

from pipeline import counts, read, sources
from pipeline.parse import Readings, _check, dead_letter
from schemas import record
from schemas.features import FEATURE_INDEX, FEATURE_NAMES, normalise_alias
from schemas.raw import READING_REASONS

CANONICAL = ("canonical_long", "canonical_wide")
DEVICE_FORMATS = tuple(f for f in sources.FORMATS if f not in CANONICAL)
EXTRAS = "extras"
PROVIDED = "provided"
_OK = len(READING_REASONS)


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


def _canonical_header(head: list[str]) -> str | None:
  """'canonical_long' / 'canonical_wide' when the canonical reader would take the header."""
  if not head:
    return None
  names = {normalise_alias(c) for c in head[0].split(",")}
  if not {"subject_id", "timestamp"} <= names:
    return None
  return "canonical_" + read.layout(head[0].split(","))


def _detect(path: str) -> str:
  """Format of one input under --format auto; raises UnreadableFileError naming the file."""
  if _known_extension(path) and read.file_format(path) in ("parquet", "jsonl"):
    return "canonical"
  try:
    head = sources.common.read_head(path, _open, 3)
    rules = sources.detection.RULES
    if not any(rule(path, head) for rule, _ in rules.values()):
      fmt = _canonical_header(head)
      if fmt:
        logging.info("%s: canonical file (%s header)", path, fmt)
        return fmt
    return sources.detect(path, opener=_open)
  except (sources.SourceError, OSError) as e:
    raise read.UnreadableFileError(str(e)) from e


def _known_extension(path: str) -> bool:
  try:
    read.file_format(path)
    return True
  except read.UnreadableFileError:
    return False


def plan_inputs(paths: list[str], forced: str = "auto") -> Plan:
  """Says which reader takes each file; fails naming a file before anything is written."""
  entries, canonical, grouped = [], [], {}
  for path in sorted(paths):
    if forced == "auto":
      fmt = _detect(path)
    elif forced in read.READERS or forced in CANONICAL:
      fmt = forced if forced in CANONICAL else f"canonical ({forced})"
    else:
      fmt = forced
    entries.append({"path": path, "format": fmt})
    if fmt in DEVICE_FORMATS:
      folder = sources.common.dirname(path)
      grouped.setdefault((fmt, folder), []).append(path)
    else:
      canonical.append(path)
  file_format = forced if forced in read.READERS else "auto"
  for path in canonical:  # fail fast on an unknown extension
    read.file_format(path, file_format)
  exports = [(fmt, folder, tuple(p)) for (fmt, folder), p in sorted(grouped.items())]
  for fmt, folder, p in exports:
    logging.info("lsm-pipeline: %s export %s (%d files)", fmt, folder or ".", len(p))
  return Plan(entries, canonical, file_format, exports)


def _entry_lines(table, hashes: dict) -> list[str]:
  """Adapter extras / dead-letter entries as JSON lines; subjects as their hash only."""
  lines = []
  for e in table.to_dict(orient="records"):
    stamp = e["timestamp"]
    lines.append(json.dumps({
        "source": e["source"], "row": int(e["row"]), "n_rows": int(e["n_rows"]),
        "subject": hashes.get(e["subject_id"]) if e["subject_id"] else None,
        "timestamp": None if stamp is None or stamp != stamp else stamp.isoformat(),
        "field": e["field"], "raw": e["raw"], "reason": e["reason"]},
        sort_keys=True, default=str))
  return lines


def read_export(export, tz, subject_id, key: bytes):
  """One export -> (subject hash, Readings); tagged dead letters, extras, provided, counts."""
  fmt, folder, paths = export
  try:
    result = sources.read_source(list(paths), format=fmt, tz=tz, subject_id=subject_id,
                                 opener=_open)
  except sources.SourceError as e:
    raise read.UnreadableFileError(str(e)) from e
  hashes = {s: record.subject_hash(str(s), key) for s in result.provided}
  for line in _entry_lines(result.dead_letter, hashes):
    yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, line)
  for line in _entry_lines(result.extras, hashes):
    yield beam.pvalue.TaggedOutput(EXTRAS, line)
  prefix = f"sources/{fmt}/"
  tally = {prefix + "exports": 1, prefix + "subjects": len(result.provided),
           prefix + "entries_read": result.entries_read,
           prefix + "entries_used": result.entries_used}
  for name, table in (("extras", result.extras), ("dead_letter", result.dead_letter)):
    for reason, n in table.groupby("reason")["n_rows"].sum().items():
      tally[f"{prefix}{name}/{reason}"] = int(n)
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
  row = np.arange(len(frame), dtype=np.int64)
  reason = _check(feature, value, np.zeros(len(value), bool))
  tally["readings_read"] = len(frame)
  tally[prefix + "readings"] = len(frame)
  source = folder or "."
  for code, why in enumerate(READING_REASONS):
    bad = np.flatnonzero(reason == code)
    if len(bad):
      tally[f"readings_dead_letter/{why}"] = len(bad)
    for j in bad:
      yield beam.pvalue.TaggedOutput(counts.DEAD_LETTER, dead_letter(
          source, row[j], why, {"format": fmt, "timestamp": str(frame["timestamp"].iat[j]),
                                "feature": FEATURE_NAMES[feature[j]], "value": value[j]},
          hashes[frame["subject_id"].iat[j]]))
  ok = reason == _OK
  for name in frame["feature"][ok].unique():
    tally[f"{prefix}present/{name}"] = int((frame["feature"][ok] == name).sum())
  subjects = frame["subject_id"].to_numpy(object)
  for subject in sorted(set(subjects[ok])):
    part = ok & (subjects == subject)
    yield hashes[subject], Readings(source, time[part], row[part], value[part], feature[part])
  yield counts.emit(tally, source)


class ReadDevices(beam.PTransform):
  """Exports -> 'readings': (subject hash, Readings); 'provided': (hash, bool[26]);
  'dead_letter', 'extras': JSON lines; 'counts'."""

  def __init__(self, exports: list, tz: str | None, subject_id: str | None, key: bytes):
    super().__init__()
    self._exports, self._args = list(exports), (tz, subject_id, key)

  def expand(self, pbegin):
    return (pbegin
            | "Exports" >> beam.Create(self._exports)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.FlatMap(read_export, *self._args).with_outputs(
                counts.DEAD_LETTER, EXTRAS, PROVIDED, counts.COUNTS, main="readings"))
