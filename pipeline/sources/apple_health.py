"""Apple Health: the Health app's export.xml, plain, gzipped or inside export.zip.

The export is one XML document (0.5-5 GB is common): a `<!DOCTYPE HealthData [...]>`
DTD, then `<HealthData>` holding ExportDate, Me and one element per data entry:
Record (a quantity or category sample), Correlation, Workout, ActivitySummary,
ClinicalRecord, Audiogram, VisionPrescription. It is stream-parsed with expat (the
C parser in the standard library; no tree is built), CHUNK entries at a time into
numpy arrays: parsing holds one chunk of strings, and what grows with the export
is what it yields: ~45 bytes per mapped record and per reading (one per feature and
minute), not the file's bytes (benchmarks/apple_health_memory.py: a 1 GB export).
expat fetches no external entity and refuses entity-expansion bombs.

An *entry* (the accounting unit) is one child element of HealthData other than
ExportDate and Me; its `row` is its position among them, from 1 (the dead letter's
`raw` also names its line in the file). Records nested in a Correlation are part of
that entry.

Mapping (Apple type, HKQuantityTypeIdentifier... -> LSM feature; the record's unit
-> the feature's unit as value * scale + offset, UNITS):

  HeartRate                      HR                    count/min x1; count/s x60
  RestingHeartRate               hr_at_rest_mean       count/min x1; count/s x60
  HeartRateVariabilitySDNN       sdnn_percentile_0595  ms x1; s x1000
  StepCount                      steps                 count x1
  AppleSleepingWristTemperature  wrist_temperatures    degC x1; degF (x - 32) * 5/9;
                                                       K x - 273.15

Apple's SDNN is the untrimmed SDNN of a ~1 minute reading the watch takes a few
times a day; LSM's sdnn_percentile_0595 is the 5-95% trimmed SDNN of every minute:
the same quantity over the same span, without the trim, so it is mapped (documented,
not identical). The beat list nested in an SDNN record (InstantaneousBeatsPerMinute,
clock times without a date or offset) is not read, so the other HRV features stay
missing. Apple's RestingHeartRate is one estimate per day (typically ~60 bpm)
held over the record's span; LSM's hr_at_rest_mean (population mean 82.9 bpm) is
a per-minute feature of Fitbit's firmware, so expect a shifted distribution.
Every other type (and Workout, ActivitySummary, ...) is an extra
`not_an_lsm_feature`, one entry per run of consecutive entries of one type.

Placing a record on UTC minutes (each date carries its own offset, '2024-02-06
19:00:17 -0800', so DST changes and travel are exact; --tz is not needed):
  steps (a count over [startDate, endDate]): spread over the minutes the interval
    covers in proportion to the overlap (a record from 10:00:30 to 10:02:30 of 120
    steps gives 30, 60, 30); a record with startDate == endDate counts in its minute.
  levels (the other features): the value holds over the interval, so every minute
    the interval overlaps gets it (an instantaneous sample: its minute); a minute's
    value is the mean of the values reaching it.
  A record whose endDate is before its startDate, or that spans more than
  MAX_SPAN_S, is dead-lettered bad_timestamp.

Several sources (sourceName): a watch and a phone both count the same steps. Per
feature and minute only the highest-priority source present contributes. Priority:
the sources listed in --apple_health_sources (comma-separated sourceNames, first is
best), then watches (a sourceName or device attribute containing 'Watch'), then the
rest, each group by name. A record none of whose minutes its source wins is
dead-lettered overlapping_source. A record repeating another of the same type,
source, start, end and value is dead-lettered duplicate. Values outside the
feature's valid range (schemas.features) are dead-lettered out_of_range; a unit the
table does not list, unsupported_unit.

Subject: the export names nobody; common.subject_of: --subject_id, else
--subject_id_pattern searched in the path, else the name: the folder of export.xml
(the folder above Apple's own apple_health_export/, so a cohort is one folder per
person: alice/apple_health_export/export.xml), or a zip's name (alice.zip), or, for
a zip named export.zip, its folder (alice/export.zip).
"""

from __future__ import annotations

import io
import re
import xml.parsers.expat
import zipfile
from typing import IO, Iterator, Sequence

import numpy as np
import pandas as pd
from absl import logging

from pipeline.sources import common, registry
from schemas.features import FEATURE_INDEX, FEATURE_NAMES, FEATURES

NAME = "apple_health"
ZIP_MEMBER = "apple_health_export/export.xml"
ZIP_MAGIC = b"PK\x03\x04"
CHUNK = 10_000             # entries between two conversions to numpy (~6 MB of str)
MAX_SPAN_S = 36 * 3600     # longest plausible record (a day's resting HR)
BLOCK = 250_000            # (record, minute) pairs of one feature expanded at a time
DTD_MAX_LINES = 5_000      # Apple's DTD is ~200 lines
_MAX_LINE = 1 << 16        # longest prolog line read at once
STEPS = "steps"
_APPLE_TIME = "%Y-%m-%d %H:%M:%S %z"

# Apple type -> LSM feature.
TYPES = {
    "HKQuantityTypeIdentifierHeartRate": "HR",
    "HKQuantityTypeIdentifierRestingHeartRate": "hr_at_rest_mean",
    "HKQuantityTypeIdentifierHeartRateVariabilitySDNN": "sdnn_percentile_0595",
    "HKQuantityTypeIdentifierStepCount": STEPS,
    "HKQuantityTypeIdentifierAppleSleepingWristTemperature": "wrist_temperatures",
}
# (feature, Apple unit) -> (scale, offset): value * scale + offset is in the feature's unit.
UNITS = {
    ("HR", "count/min"): (1.0, 0.0), ("HR", "count/s"): (60.0, 0.0),
    ("hr_at_rest_mean", "count/min"): (1.0, 0.0),
    ("hr_at_rest_mean", "count/s"): (60.0, 0.0),
    ("sdnn_percentile_0595", "ms"): (1.0, 0.0),
    ("sdnn_percentile_0595", "s"): (1000.0, 0.0),
    (STEPS, "count"): (1.0, 0.0),
    ("wrist_temperatures", "degC"): (1.0, 0.0),
    ("wrist_temperatures", "degF"): (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    ("wrist_temperatures", "K"): (1.0, -273.15),
}
_NOT_ENTRIES = ("ExportDate", "Me")
# Apple's DOCTYPE (line 2 of a real export) or the root element itself.
_ROOT = re.compile(r"^\s*<(?:!DOCTYPE\s+)?HealthData(?:[\s>\[/]|$)")


# ------------------------------------------------------------------- detection

def _open_local_or_url(path: str) -> IO[bytes]:
  if "://" in path:
    from apache_beam.io.filesystems import FileSystems
    return FileSystems.open(path)
  return open(path, "rb")


def zip_member(archive: zipfile.ZipFile) -> str | None:
  """The export inside an Apple export.zip, or None: the .xml file directly in an
  apple_health_export/ folder whose first lines hold the HealthData root. Health
  names it export.xml, or its translation on iPhones set to other languages, and
  writes export_cda.xml (clinical documents) beside it; macOS's __MACOSX/ copies
  are skipped."""
  for name in archive.namelist():
    parts = name.split("/")
    if (len(parts) < 2 or parts[-2] != "apple_health_export" or "__MACOSX" in parts
        or not parts[-1].lower().endswith(".xml")):
      continue
    with archive.open(name) as f:
      head = [f.readline(_MAX_LINE).decode("utf-8", "replace") for _ in range(8)]
    if any(_ROOT.match(line) for line in head):
      return name
  return None


def detect(sniff: registry.Sniff) -> bool:
  """export.xml by content: the `<!DOCTYPE HealthData` declaration (line 2 of a
  real export; the `<HealthData` root only follows its DTD, some 200 lines on) or
  the `<HealthData` root itself, within the first lines, whatever the file's name.
  export.zip by its magic bytes and an export inside (zip_member)."""
  if sniff.magic.startswith(ZIP_MAGIC):
    try:
      with _open_local_or_url(sniff.path) as f, zipfile.ZipFile(f) as archive:
        return zip_member(archive) is not None
    except (OSError, zipfile.BadZipFile):
      return False
  return any(_ROOT.match(line) for line in sniff.lines)


# --------------------------------------------------------------------- parsing

class _Chunks:
  """expat callbacks collecting the entries' attributes, CHUNK at a time.

  Only strings are appended per entry; `flush` turns them into numpy arrays (and
  dead-letter entries for what cannot be parsed), so no Python object per entry
  outlives its chunk.
  """

  def __init__(self, sink: "_Arrays", parser):
    self.sink, self.parser = sink, parser
    self.depth = 0
    self.row = 0
    self.watch_sources: set[str] = set()
    self._reset()

  def _reset(self):
    self.rows, self.lines, self.kind = [], [], []
    self.source_name, self.unit, self.start, self.end, self.value = [], [], [], [], []

  def start_element(self, name, attrs):
    self.depth += 1
    if self.depth != 2 or name in _NOT_ENTRIES:
      return
    self.row += 1
    self.rows.append(self.row)
    self.lines.append(self.parser.CurrentLineNumber)
    get = attrs.get
    self.kind.append(get("type", name) if name == "Record" else name)
    source = get("sourceName", "")
    self.source_name.append(source)
    if "Watch" in get("device", ""):
      self.watch_sources.add(source)
    self.unit.append(get("unit", ""))
    self.start.append(get("startDate", ""))
    self.end.append(get("endDate", ""))
    self.value.append(get("value", ""))
    if len(self.rows) >= CHUNK:
      self.flush()

  def end_element(self, name):
    self.depth -= 1

  def flush(self):
    if self.rows:
      self.sink.add(self)
    self._reset()


class _Arrays:
  """The mapped samples of one export as growing lists of numpy chunks, plus the
  entries set aside so far (extras runs and dead letters)."""

  def __init__(self, source: str, subject: str):
    self.source, self.subject = source, subject
    self.parts: list[dict[str, np.ndarray]] = []
    self.runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # unmapped entries:
    # runs of consecutive rows of one type per chunk (first row, length, type code)
    self.kinds: dict[str, int] = {}
    self.sources: dict[str, int] = {}
    self.dead: list[pd.DataFrame] = []

  def _codes(self, values: list[str], table: dict[str, int]) -> np.ndarray:
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    lookup = np.array([table.setdefault(u, len(table)) for u in uniques], np.int32)
    return lookup[codes] if len(codes) else np.zeros(0, np.int32)

  def add(self, c: _Chunks) -> None:
    rows = np.asarray(c.rows, np.int64)
    kind = np.asarray(c.kind, dtype=object)
    feature = pd.Series(kind).map(TYPES).to_numpy(dtype=object)
    mapped = pd.notna(feature)
    other = ~mapped
    self.runs.append(_runs(rows[other], self._codes(list(kind[other]), self.kinds)))
    if not mapped.any():
      return
    pick = np.flatnonzero(mapped)
    feature = feature[pick].astype(str)
    sub = {k: np.asarray(v, dtype=object)[pick] for k, v in (
        ("unit", c.unit), ("start", c.start), ("end", c.end), ("value", c.value),
        ("line", c.lines), ("kind", c.kind), ("source", c.source_name))}
    t0, t1 = (_utc_seconds(sub[k]) for k in ("start", "end"))
    values, reason = common.classify_values(pd.Series(sub["value"]))
    scale, offset = _conversion(feature, sub["unit"])
    values = values * scale + offset
    reason[np.isnan(scale) & (reason == "")] = "unsupported_unit"
    bad_time = np.isnan(t0) | np.isnan(t1) | (t1 < t0) | (t1 - t0 > MAX_SPAN_S)
    reason[bad_time & (reason == "")] = "bad_timestamp"
    reason[(reason == "") & _out_of_range(feature, values, t1 - t0)] = "out_of_range"
    if (reason != "").any():
      raw = [f"line {n}: {s!r} {k} {a}..{b} {v} {u}" for n, s, k, a, b, v, u in zip(
          *(sub[x] for x in ("line", "source", "kind", "start", "end", "value", "unit")))]
      self.dead.append(common.reason_entries(
          self.source, reason, rows[pick], subject_id=self.subject, field=sub["kind"],
          raw=np.asarray(raw, dtype=object)))
    ok = reason == ""
    self.parts.append({
        "row": rows[pick][ok],
        "feature": np.array([FEATURE_INDEX[f] for f in feature[ok]], np.int8),
        "source": self._codes(list(sub["source"][ok]), self.sources),
        "t0": t0[ok], "t1": t1[ok], "value": values[ok]})

  def mapped(self) -> dict[str, np.ndarray]:
    """The mapped records' arrays, concatenated (the chunks are consumed)."""
    keys = ("row", "feature", "source", "t0", "t1", "value")
    out = {k: np.concatenate([p.pop(k) for p in self.parts]) if self.parts
           else np.zeros(0, np.float64 if k in ("t0", "t1", "value") else np.int64)
           for k in keys}
    self.parts = []
    return out


def _runs(rows: np.ndarray, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Runs of consecutive rows of one kind: (first row, length, kind) per run."""
  if not len(rows):
    return rows, rows, kind
  starts = np.flatnonzero(np.concatenate([[True], (np.diff(rows) != 1)
                                          | (kind[1:] != kind[:-1])]))
  return rows[starts], np.diff(np.append(starts, len(rows))), kind[starts]


def _utc_seconds(text: np.ndarray) -> np.ndarray:
  """Apple's 'YYYY-MM-DD HH:MM:SS +HHMM' to seconds since the epoch (UTC); NaN if not."""
  ts = pd.to_datetime(pd.Series(text, dtype=object), format=_APPLE_TIME, utc=True,
                      errors="coerce")
  ns = ts.dt.as_unit("ns").astype("int64").to_numpy()
  return np.where(ts.isna().to_numpy(), np.nan, ns / 1e9)


def _conversion(feature: np.ndarray, unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(scale, offset) per record from UNITS; NaN where the unit is not listed."""
  keys = pd.Series(list(zip(feature, unit)), dtype=object)
  scale = keys.map({k: v[0] for k, v in UNITS.items()}).to_numpy(np.float64)
  offset = keys.map({k: v[1] for k, v in UNITS.items()}).to_numpy(np.float64)
  return scale, offset


def _out_of_range(feature: np.ndarray, values: np.ndarray,
                  span_s: np.ndarray) -> np.ndarray:
  """Level samples outside their feature's valid range; step counts below 0 or above
  the steps range's rate over the record's span (at least one minute)."""
  lo = np.array([FEATURES[FEATURE_INDEX[f]].valid_range[0] for f in feature], np.float64)
  hi = np.array([FEATURES[FEATURE_INDEX[f]].valid_range[1] for f in feature], np.float64)
  steps = feature == STEPS
  hi = np.where(steps, hi * np.maximum(span_s / 60.0, 1.0), hi)
  return (values < lo) | (values > hi)


def _blocks(stream: IO[bytes], source: str) -> Iterator[bytes]:
  """The export's bytes for expat, its internal DTD replaced by as many empty lines.

  Exports of iOS 16 (HealthKit Export Version 12) carry a malformed DTD (an ATTLIST
  never closed, a stray '>' before ']>') that every conforming parser refuses near
  line 155, and the DTD gives nothing this reader needs (no defaults, no entities).
  Line numbers stay those of the file. Raises SourceError for a DOCTYPE not closed
  within DTD_MAX_LINES lines.
  """
  for _ in range(8):  # the prolog: the XML declaration, then the DOCTYPE or the root
    line = stream.readline(_MAX_LINE)
    if not (line.lstrip().startswith(b"<!DOCTYPE") and b"[" in line):
      yield line
      if not line or not line.lstrip().startswith(b"<?xml"):
        break
      continue
    for _ in range(DTD_MAX_LINES):
      yield b"\n"
      if line.rstrip().endswith(b"]>"):
        break
      line = stream.readline(_MAX_LINE)
      if not line:
        return
    else:
      raise common.SourceError(f"{source}: the DOCTYPE is not closed within "
                               f"{DTD_MAX_LINES} lines; not an Apple Health export")
    break
  while block := stream.read(1 << 20):
    yield block


def _parse(stream: IO[bytes], source: str, subject: str) -> tuple[_Arrays, set[str], int]:
  """Stream-parses one export.xml: (arrays, watch sourceNames, entries read)."""
  sink = _Arrays(source, subject)
  parser = xml.parsers.expat.ParserCreate()
  chunks = _Chunks(sink, parser)
  parser.StartElementHandler = chunks.start_element
  parser.EndElementHandler = chunks.end_element
  try:
    for block in _blocks(stream, source):
      parser.Parse(block, False)
    parser.Parse(b"", True)
  except xml.parsers.expat.ExpatError as e:
    raise common.SourceError(
        f"{source}: not well-formed XML at line {e.lineno}, column {e.offset} "
        f"({xml.parsers.expat.ErrorString(e.code)}); a truncated or damaged export "
        "cannot be read past this point, export it again from the Health app") from None
  chunks.flush()
  return sink, chunks.watch_sources, chunks.row


# ------------------------------------------------------------- minutes, sources

def source_ranks(names: Sequence[str], watches: set[str],
                 preferred: Sequence[str] = ()) -> np.ndarray:
  """Rank per source name (0 = best): `preferred` in order, then watches (name or
  device says Watch), then the rest; ties by name. int64[len(names)]."""
  order = sorted(range(len(names)), key=lambda i: (
      preferred.index(names[i]) if names[i] in preferred else len(preferred),
      0 if ("watch" in names[i].lower() or names[i] in watches) else 1, names[i]))
  ranks = np.empty(len(names), np.int64)
  ranks[order] = np.arange(len(names))
  return ranks


def minute_shares(t0: np.ndarray, t1: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The UTC minutes each interval [t0, t1] (s) overlaps and the fraction of it in each.

  Returns (record index, minute, share), int64/int64/float64, one entry per
  (record, minute); an instantaneous record (t0 == t1) is one entry of share 1.
  An interval ending exactly on a minute boundary does not reach the next minute.
  """
  first = np.floor(t0 / 60.0).astype(np.int64)
  last = np.maximum(np.ceil(t1 / 60.0).astype(np.int64) - 1, first)
  n = last - first + 1
  rec = np.repeat(np.arange(len(t0)), n)
  minute = first[rec] + (np.arange(len(rec)) - np.repeat(np.cumsum(n) - n, n))
  span = t1 - t0
  overlap = (np.minimum(t1[rec], (minute + 1) * 60.0) - np.maximum(t0[rec], minute * 60.0))
  share = np.where(span[rec] > 0, overlap / np.where(span[rec] > 0, span[rec], 1.0), 1.0)
  return rec, minute, share


def _duplicates(m: dict[str, np.ndarray]) -> np.ndarray:
  """bool per record: repeats an earlier record (row order) of the same feature,
  source, start, end and value."""
  if not len(m["row"]):
    return np.zeros(0, bool)
  order = np.lexsort((m["row"], m["value"], m["t1"], m["t0"], m["source"], m["feature"]))
  same = np.ones(len(order) - 1, bool)
  for k in ("feature", "source", "t0", "t1", "value"):
    key = m[k][order]
    same &= key[1:] == key[:-1]
  out = np.zeros(len(order), bool)
  out[order[1:][same]] = True
  return out


def _per_minute(m: dict[str, np.ndarray], ranks: np.ndarray
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Per-minute values: {'feature' int8 (LSM index), 'minute' int64 (UTC minutes since
  the epoch), 'value' float64, 'row' int64 (first contributing row)}, one entry per
  (feature, minute) with a value; and bool per record: used.

  Per (feature, minute) only the best-ranked source's contributions count; steps
  sum their shares, levels average their values. One feature and about BLOCK
  (record, minute) pairs (records in time order) at a time, so that the expansion
  stays small whatever the export's length (a day's resting HR is 1440 pairs).
  """
  used = np.zeros(len(m["row"]), bool)
  cols: dict[str, list[np.ndarray]] = {"feature": [], "minute": [], "value": [], "row": []}
  for f in np.unique(m["feature"]):
    idx = np.flatnonzero(m["feature"] == f)
    idx = idx[np.argsort(m["t0"][idx], kind="stable")]
    first = np.floor(m["t0"][idx] / 60.0).astype(np.int64)
    last = np.ceil(m["t1"][idx] / 60.0).astype(np.int64)
    # Blocks of about BLOCK (record, minute) pairs; the last one runs to the end.
    spans = np.cumsum(np.maximum(last - first, 1))
    cuts = np.searchsorted(spans, np.arange(BLOCK, spans[-1], BLOCK))
    edges = np.append(first[np.unique(np.append(0, cuts))], last.max() + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):
      # Records reaching minutes [lo, hi): starting before hi, at most MAX_SPAN_S earlier.
      at = np.arange(np.searchsorted(first, lo - MAX_SPAN_S // 60 - 1),
                     np.searchsorted(first, hi))
      at = idx[at[last[at] >= lo]]
      block = _minutes_of(m, at, ranks, lo, hi, steps=f == FEATURE_INDEX[STEPS])
      used[block.pop("used")] = True
      for k, v in block.items():
        cols[k].append(v)
      cols["feature"].append(np.full(len(block["minute"]), f, np.int8))
  return {k: np.concatenate(cols.pop(k)) if cols[k] else np.zeros(0, np.int64)
          for k in list(cols)}, used


def _minutes_of(m: dict[str, np.ndarray], at: np.ndarray, ranks: np.ndarray, lo: int,
                hi: int, *, steps: bool) -> dict[str, np.ndarray]:
  """_per_minute for the records `at` (of one feature) on the minutes [lo, hi):
  {'minute', 'value', 'row', 'used' (the records of `at` that won a minute)}."""
  rec, minute, share = minute_shares(m["t0"][at], m["t1"][at])
  inside = (minute >= lo) & (minute < hi)
  rec, minute, share = at[rec[inside]], minute[inside], share[inside]
  rank = ranks[m["source"][rec]]
  order = np.lexsort((rank, minute))
  starts = _run_starts(minute[order])
  best = np.repeat(rank[order][starts], np.diff(np.append(starts, len(order))))
  keep = np.sort(order[rank[order] == best])
  rec, minute, share = rec[keep], minute[keep], share[keep]
  value = m["value"][rec] * share if steps else m["value"][rec]
  order = np.argsort(minute, kind="stable")
  rec, minute, value = rec[order], minute[order], value[order]
  first = _run_starts(minute)
  if not len(first):
    return {"minute": minute, "value": value, "row": m["row"][rec], "used": rec}
  total = np.add.reduceat(value, first)
  return {"minute": minute[first],
          "value": total if steps else total / np.diff(np.append(first, len(minute))),
          "row": np.minimum.reduceat(m["row"][rec], first), "used": rec}


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
  """Where each run of equal values of a sorted array starts."""
  if not len(sorted_keys):
    return np.zeros(0, np.int64)
  return np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))


# ------------------------------------------------------------------------ read

def _subject_path(path: str) -> tuple[str, str]:
  """(path, by) for common.subject_of's name rule: export.xml by its folder; a zip
  by its own name (alice.zip), or by its folder when Apple's name export.zip."""
  name = common.basename(path)
  if name.lower().endswith(".zip") and name.lower() != "export.zip":
    return path[:-len(".zip")] + "/" + ZIP_MEMBER, "folder"
  return path, "folder"


def _open_export(path: str, opener: common.Opener):
  """The export.xml byte stream of `path` (export.xml, .gz, or export.zip), and what
  else a zip holds (logged, not read)."""
  f = opener(path)
  stream = common.ungzip(f)
  if stream.peek(4)[:4] != ZIP_MAGIC:
    return f, stream
  archive = zipfile.ZipFile(stream if stream.seekable() else io.BytesIO(stream.read()))
  member = zip_member(archive)
  if member is None:
    f.close()
    raise common.SourceError(f"{path}: a zip without {ZIP_MEMBER}; not an Apple Health "
                             "export.zip")
  others = [n for n in archive.namelist() if n != member and not n.endswith("/")]
  if others:
    logging.info("%s: %d other files (clinical records, ECGs, routes) not read",
                 path, len(others))
  return f, archive.open(member)


def read_one(path: str, *, subject: str, preferred: Sequence[str] = (),
             opener: common.Opener = common.local_open) -> common.SourceResult:
  """One export (export.xml, export.xml.gz or export.zip) of one subject."""
  f, stream = _open_export(path, opener)
  with f:
    arrays, watches, n_read = _parse(stream, path, subject)
  m = arrays.mapped()
  dup = _duplicates(m)
  dead = [*arrays.dead, _record_entries(path, subject, m, dup, "duplicate")]
  names = sorted(arrays.sources, key=arrays.sources.get)
  ranks = source_ranks(names, watches, preferred)
  logging.info("%s: source priority %s", path, [names[i] for i in np.argsort(ranks)])
  keep = {k: m.pop(k)[~dup] for k in list(m)} if dup.any() else m
  cells, used = _per_minute(keep, ranks)
  readings = _readings(subject, cells, path)
  dead.append(_record_entries(path, subject, keep, ~used, "overlapping_source"))
  provided = frozenset(readings["feature"].unique())
  return common.SourceResult(
      NAME, readings, _extras(path, subject, arrays),
      pd.concat([d for d in dead if len(d)] or [common.empty_entries()], ignore_index=True),
      {subject: provided}, n_read, int(used.sum()))


def _readings(subject: str, cells: dict[str, np.ndarray], path: str) -> pd.DataFrame:
  """Canonical readings from _per_minute's arrays (which it consumes: the minutes
  become the timestamps in place)."""
  minute = cells.pop("minute")
  minute *= 60 * 10**9
  return common.readings_frame(
      subject, minute.view("datetime64[ns]"),
      pd.Categorical.from_codes(cells.pop("feature").astype(np.int8, copy=False),
                                FEATURE_NAMES),
      cells.pop("value").astype(np.float64, copy=False), path,
      cells.pop("row").astype(np.int64, copy=False))


def _record_entries(path: str, subject: str, m: dict[str, np.ndarray], pick: np.ndarray,
                    reason: str) -> pd.DataFrame:
  """One entry per record picked (duplicates, lost overlaps); raw: feature, value,
  start (UTC), span."""
  at = np.flatnonzero(pick)
  if not len(at):
    return common.empty_entries()
  start = (m["t0"][at] * 1e9).astype("datetime64[ns]")
  feature = np.asarray(FEATURE_NAMES, dtype=object)[m["feature"][at]]
  raw = [f"{f} {v:g} from {s}Z, {d:g} s" for f, v, s, d in zip(
      feature, m["value"][at], start.astype("datetime64[s]"), m["t1"][at] - m["t0"][at])]
  return common.entries(path, m["row"][at], reason, subject_id=subject, timestamp=start,
                        field=feature, raw=np.asarray(raw, dtype=object))


def _extras(path: str, subject: str, arrays: _Arrays) -> pd.DataFrame:
  """Entries of types no LSM feature fits: one per run of consecutive rows of a type."""
  if not arrays.runs:
    return common.empty_entries()
  first, length, kind = (np.concatenate(a) for a in zip(*arrays.runs))
  if not len(first):
    return common.empty_entries()
  # Runs that continue across chunks are joined.
  new = np.concatenate([[True], (first[1:] != first[:-1] + length[:-1])
                        | (kind[1:] != kind[:-1])])
  starts = np.flatnonzero(new)
  kinds = pd.Categorical.from_codes(kind[starts],
                                    sorted(arrays.kinds, key=arrays.kinds.get))
  return common.entries(path, first[starts], "not_an_lsm_feature",
                        n_rows=np.add.reduceat(length, starts), subject_id=subject,
                        field=kinds, raw=kinds)


def read_apple_health(paths: Sequence[str], *, tz=None, subject_id: str | None = None,
                      subject_id_pattern: str | None = None,
                      opener: common.Opener = common.local_open,
                      apple_health_sources: str | None = None) -> common.SourceResult:
  """Apple Health exports, one subject per file (see the module docstring).

  paths: export.xml / export.xml.gz / export.zip files. apple_health_sources:
  comma-separated sourceNames, best first (None: the default priority). tz is
  ignored (every date carries its offset). Raises SourceError naming the file for a
  zip without the export or XML that is not well-formed.
  """
  if not paths:
    raise common.SourceError("apple_health: no files given")
  preferred = tuple(s.strip() for s in (apple_health_sources or "").split(",") if s.strip())
  results = []
  for path in paths:
    named, by = _subject_path(path)
    subject = common.subject_of(path if subject_id_pattern else named, by,
                                subject_id=subject_id, pattern=subject_id_pattern)
    results.append(read_one(path, subject=subject, preferred=preferred, opener=opener))
  # One export: returned as is (merging copies the readings, millions of rows).
  return results[0] if len(results) == 1 else common.merge_results(NAME, results)


DEVICE = registry.Device(
    name=NAME,
    looks_for="XML with a <!DOCTYPE HealthData or <HealthData root (export.xml, any "
              "name, gzip too), or a zip holding apple_health_export/export.xml",
    detect=detect,
    read=read_apple_health,
    needs_tz=False,
    subject_rule="--subject_id, else --subject_id_pattern on the path, else the folder "
                 "holding export.xml (above apple_health_export/), or the zip's name "
                 "(alice.zip; for export.zip its folder)",
    example="lsm-pipeline --input cohort/alice/apple_health_export/export.xml "
            "--input cohort/bob.zip --output out/",
    options=(registry.Option(
        "apple_health_sources", None,
        "comma-separated sourceNames, best first, that win a minute when "
        "several sources record one feature (default: watches, then the others, by "
        "name); the losers' records are dead-lettered overlapping_source"),),
)
