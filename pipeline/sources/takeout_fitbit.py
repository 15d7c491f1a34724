"""Google Takeout Fitbit exports: `Takeout/Fitbit/Global Export Data/<kind>-YYYY-MM-DD.json`.

Each file is one JSON array of records {"dateTime": "MM/DD/YY HH:MM:SS", "value": ...}
(the older Fitbit account archive writes the same files under
`<Name>/Physical Activity/` or `user-site-export/`). What is read:

  heart_rate-*.json  value {"bpm": int, "confidence": 0..3}, samples every 1-15 s
                     -> HR (beats/min), the mean of the minute's samples
                     (derive.mean_per_minute, as for heartrate_seconds). A sample
                     with confidence 0 is Fitbit's "no reliable reading" and is
                     dead-lettered as low_confidence before it can bias a minute.
  steps-*.json       value "<int>" (a string), one record per minute -> steps
                     (steps/min), 1:1.
  anything else      (altitude, distance, calories, resting_heart_rate,
                     time_in_heart_rate_zones, sleep, exercise, ...): real data that
                     maps to no per-minute LSM feature; every record is an extra
                     (not_an_lsm_feature, one entry per file, field = the kind), and
                     counts.sources.takeout_fitbit.records.<kind> counts them.
                     altitude is not turned into altim_std: its value is a per-minute
                     elevation gain whose unit Fitbit does not document (the values
                     are multiples of 10, i.e. floors of some unit), so a conversion
                     would be a guess; distance and calories are no LSM features.

The kind comes from the file name's prefix (`heart_rate` in
heart_rate-2020-04-24.json) and must agree with the content: a heart_rate file whose
values are not {"bpm", "confidence"} objects, or a steps file whose values are, is a
SourceError naming the file and record.

Timestamps: local wall-clock time, so --tz is required (needs_tz). Fitbit documents
no zone for the export files; the evidence (searched 2026-12): the Fitbit Web API
the export mirrors returns intraday data in the user's profile time zone, UTC only
on request (`timezone=UTC`, heart-rate and activity intraday endpoints only:
github.com/aarondcoleman/Fitbit.NET issue 285, orcasgit/python-fitbit PR 177,
metriport/metriport issue 678 citing dev.fitbit.com's developer guide, "Time
Zones"); an aggregator that ingests Fitbit says it "stores all their data in
floating time" (docs.tryvital.io/wearables/guides/fitbit, "Time Zone resolution");
a user who crossed time zones shows the export's times stay on local clock time
(andykong.org/blog/fitbitsleeptzcorrection, 2023, refuting a forum claim that the
export is UTC); and readers of these very files take the zone from the user
(GGIRread's readFitbit(desiredtz=...), rdrr.io/cran/GGIRread) or treat
heart_rate `dateTime` as local wall-clock. The claim that Global Export Data is
UTC appears only as unsourced forum statements. A wrong guess shifts every reading
by the UTC offset, so the reader asks (as for Fitabase) instead of assuming;
common.localise applies the project's DST rule per file (a fall-back hour listed
twice, oldest first, takes the daylight then the standard offset; a time in a
spring-forward gap is nonexistent_local_time).

Repeats: day files overlap (a file may run past midnight into the next day's file),
so one instant can be listed twice. Of the records of one (subject, kind, instant)
(steps: the UTC minute; heart rate: the sample's second) the first non-zero one
wins, else the first, in path order then record order (fitbit.py's within-file rule
applied to the whole export); the others are dead-lettered as `duplicate`.

Subject: a Takeout export names no person. common.subject_of (by='folder'): the
folder's name, skipping the export's own layout folders (Global Export Data,
Fitbit, Takeout, Physical Activity, user-site-export), so
`u01/Takeout/Fitbit/Global Export Data/steps-...json` is 'u01' and the older
`Jane/Physical Activity/...` is 'Jane'; --subject_id or --subject_id_pattern
override it. Records, not lines, are the accounting entries: `row` is the record's
position in its file's array, from 1.
"""

from __future__ import annotations

import json
import operator
import re
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline import derive
from pipeline.sources import common, fitbit, registry

FORMAT = "takeout_fitbit"
# <kind>-YYYY-MM-DD.json, optionally gzipped: the export's file names.
FILE_NAME = re.compile(r"^(?P<kind>[A-Za-z0-9_]+?)-\d{4}-\d{2}-\d{2}\.json(?:\.gz)?$")
READ_KINDS = {"heart_rate": "HR", "steps": "steps"}
# The kinds a Takeout Fitbit export normally holds per day. One without any record
# (no file, or only empty ones: a partial export) is noted as absent.<kind> = 1
# (counts.sources.takeout_fitbit.absent.<kind>: how many exports lack it) and the
# export is read for what it holds, not refused.
EXPECTED_KINDS = ("heart_rate", "steps", "altitude")
_RECORD_HEAD = re.compile(
    r'"dateTime"\s*:\s*"\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}"\s*,\s*"value"\s*:\s*'
    r'(?P<value>\{\s*"bpm"\s*:|")')


def kind_of(path: str) -> str:
  """The file's kind from its name ('heart_rate'); the name without extension when
  it is not '<kind>-YYYY-MM-DD.json'."""
  name = common.basename(path)
  m = FILE_NAME.match(name)
  return m.group("kind") if m else name.split(".", 1)[0]


def detect(sniff: registry.Sniff) -> bool:
  """A JSON array whose first record is {"dateTime": "MM/DD/YY HH:MM:SS", "value": ...}
  (pretty-printed or on one line), consistent with the name's kind: heart_rate values
  are {"bpm", "confidence"} objects, steps values strings."""
  head = " ".join(line.strip() for line in sniff.lines)
  if not head.startswith("["):
    return False
  m = _RECORD_HEAD.search(head)
  if not m:
    return head in ("[]", "[ ]") and bool(FILE_NAME.match(common.basename(sniff.path)))
  is_string = m.group("value") == '"'
  kind = kind_of(sniff.path)
  return {"heart_rate": not is_string, "steps": is_string}.get(kind, True)


def folder_file(name: str) -> bool:
  """The export's day files in a `Global Export Data` folder."""
  return bool(FILE_NAME.match(name))


def _records(path: str, opener: common.Opener, array_only: bool) -> list:
  """The file's JSON array ([] for a file with no bytes: a partial export). A kind
  kept as extras may hold one object instead (a profile, a summary): one record."""
  with opener(path) as f:
    data = common.ungzip(f).read()
  if not data.strip():
    return []
  try:
    records = json.loads(data.decode("utf-8-sig", errors="replace"))
  except ValueError as e:
    raise common.SourceError(f"{path}: not a JSON array of Fitbit records ({e})") from None
  if not isinstance(records, list) and not array_only:
    return [records]
  if not isinstance(records, list):
    raise common.SourceError(f"{path}: expected a JSON array of records, found "
                             f"{type(records).__name__}")
  return records


def parse_times(when: Sequence) -> np.ndarray:
  """'MM/DD/YY HH:MM:SS' strings (years 2000-2099) to naive datetime64[ns]; NaT for
  anything else (another layout, an impossible date, not a string).

  Fixed-width digits read from a numpy character array: ~20x faster than
  strptime on the ~17,000 samples of a day file, and as strict (the separators, the
  length and every field's range are checked).
  """
  try:
    text = pd.Series(when, dtype=object).to_numpy().astype("U18")  # None -> 'None'
  except ValueError:  # a list or an object among them
    text = np.array([w if isinstance(w, str) else "" for w in when], dtype="U18")
  chars = text.view(np.uint32).reshape(len(text), 18) if len(text) else \
      np.zeros((0, 18), np.uint32)
  digits = chars.astype(np.int64) - ord("0")
  digit_at = [0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16]
  ok = ((digits[:, digit_at] >= 0) & (digits[:, digit_at] <= 9)).all(axis=1)
  for at, sep in ((2, "/"), (5, "/"), (8, " "), (11, ":"), (14, ":")):
    ok &= chars[:, at] == ord(sep)
  ok &= chars[:, 17] == 0

  def two(at: int) -> np.ndarray:
    return np.where(ok, digits[:, at] * 10 + digits[:, at + 1], 0)

  month, day, year = two(0), two(3), 2000 + two(6)
  hour, minute, second = two(9), two(12), two(15)
  ok &= (month >= 1) & (month <= 12) & (day >= 1) & (hour < 24) & (minute < 60) & (
      second < 60)
  first = ((year - 1970).astype("datetime64[Y]").astype("datetime64[M]")
           + np.clip(month - 1, 0, 11))
  date = first.astype("datetime64[D]") + (day - 1)
  ok &= date.astype("datetime64[M]") == first  # 02/30 is no date
  out = (date.astype("datetime64[s]") + (hour * 3600 + minute * 60 + second)
         ).astype("datetime64[ns]")
  out[~ok] = np.datetime64("NaT")
  return out


def _fields(path: str, records: list, kind: str) -> pd.DataFrame:
  """dateTime, the raw value (bpm for heart rate) and confidence per record, as
  columns (index: record number from 1); a record that is not an object is
  malformed_row (reason column)."""
  try:
    when, value, confidence, ok = _well_formed(records, kind)
  except (KeyError, TypeError):  # some record lacks a field: look at each
    when, value, confidence, ok = _checked(path, records, kind)
  frame = pd.DataFrame({"when": pd.Series(when, dtype=object),
                        "raw": pd.Series(value, dtype=object)})
  frame["confidence"] = pd.to_numeric(pd.Series(confidence, dtype=object),
                                      errors="coerce") if confidence is not None else 3.0
  frame["reason"] = np.where(ok, "", "malformed_row").astype(object)
  frame.index = np.arange(1, len(records) + 1)
  return frame


def _well_formed(records: list, kind: str):
  """_fields' columns when every record has every field (C-level item getters, one
  pass per field); KeyError or TypeError otherwise."""
  when = list(map(operator.itemgetter("dateTime"), records))
  value = list(map(operator.itemgetter("value"), records))
  confidence = None
  if kind == "heart_rate":
    confidence = list(map(operator.itemgetter("confidence"), value))
    value = list(map(operator.itemgetter("bpm"), value))
  elif kind == "steps" and any(isinstance(v, dict) for v in value):
    raise TypeError("a steps value that is an object")
  return when, value, confidence, np.ones(len(records), bool)


def _checked(path: str, records: list, kind: str):
  """_fields' columns record by record: a missing field is None (then bad_timestamp
  or non_numeric), a record that is not an object malformed; a value that contradicts
  the kind is a SourceError naming the file and record."""
  ok = [isinstance(r, dict) for r in records]
  when = [r.get("dateTime") if o else None for r, o in zip(records, ok)]
  value = [r.get("value") if o else None for r, o in zip(records, ok)]
  confidence = None
  if kind == "heart_rate":
    objects = [isinstance(v, dict) for v in value]
    wrong = [i for i, (o, is_obj) in enumerate(zip(ok, objects)) if o and not is_obj]
    if wrong:
      raise common.SourceError(
          f"{path}: record {wrong[0] + 1}: a heart_rate file's value must be an object "
          f"{{\"bpm\", \"confidence\"}}, found {value[wrong[0]]!r}")
    confidence = [v.get("confidence") if o else None for v, o in zip(value, objects)]
    value = [v.get("bpm") if o else None for v, o in zip(value, objects)]
  elif kind == "steps":
    obj = next((i for i, v in enumerate(value) if isinstance(v, dict)), None)
    if obj is not None:
      raise common.SourceError(f"{path}: record {obj + 1}: a steps file's value is a "
                               f"count, found the object {value[obj]!r}")
  return when, value, confidence, np.asarray(ok, bool)


def _parse_file(path: str, records: list, kind: str, subject: str, tz) -> dict:
  """One heart_rate or steps file: per record UTC time, value and reason ('' = ok)."""
  f = _fields(path, records, kind)
  feature = READ_KINDS[kind]
  local = pd.Series(parse_times(f["when"].to_numpy()), index=f.index)
  loc = common.localise(local, tz)
  values, reason = _numbers(f["raw"])
  reason[(reason == "") & common.out_of_range(feature, values)] = "out_of_range"
  reason[(reason == "") & (f["confidence"].to_numpy() == 0)] = "low_confidence"
  reason[loc.nonexistent] = "nonexistent_local_time"
  reason[loc.unresolved] = "ambiguous_local_time"
  reason[local.isna().to_numpy()] = "bad_timestamp"
  reason[f["reason"].to_numpy() != ""] = "malformed_row"
  utc = common.naive_utc(loc.utc)
  if kind == "steps":
    utc = utc.astype("datetime64[m]").astype("datetime64[ns]")
  return {"utc": utc, "values": values, "reason": reason, "rows": f.index.to_numpy(),
          "raw": f["raw"].to_numpy(dtype=object), "notes": common.tz_notes(loc),
          "subject": subject, "path": path}


def _numbers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
  """common.classify_values for JSON values (numbers, or steps' numeric strings):
  (float64 values, reason '' / non_numeric / non_finite); the strings are looked at
  only for the values that are not finite."""
  values = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
  reason = np.full(len(values), "", dtype=object)
  bad = ~np.isfinite(values)
  if bad.any():
    reason[bad] = common.classify_values(raw[bad].astype(str))[1]
  return values, reason


def _concat(parts: list[dict], key: str) -> np.ndarray:
  return np.concatenate([p[key] for p in parts])


def _kind_result(kind: str, parts: list[dict], paths: list[str]) -> common.SourceResult:
  """Readings of one kind from its parsed files, after the export-wide repeat rule."""
  feature = READ_KINDS[kind]
  utc, values, reason = (_concat(parts, k) for k in ("utc", "values", "reason"))
  rows, raw = _concat(parts, "rows"), _concat(parts, "raw")
  subjects = np.concatenate([np.full(len(p["rows"]), p["subject"], dtype=object)
                             for p in parts])
  number = {path: i for i, path in enumerate(paths)}
  file_no = np.concatenate([np.full(len(p["rows"]), number[p["path"]]) for p in parts])
  codes = pd.factorize(subjects)[0]
  reason[fitbit._repeats_in_file(codes, utc.astype(np.int64), values,
                                 reason == "")] = "duplicate"
  ok = reason == ""
  raw[~ok] = raw[~ok].astype(str)  # the dead letters' raw cell, as text
  if kind == "steps":
    readings = _attributed(common.readings_frame(
        subjects[ok], utc[ok], feature, values[ok], "", rows[ok]), file_no[ok], paths)
  else:
    readings = _minute_means(subjects[ok], utc[ok], values[ok], file_no[ok], rows[ok],
                             paths)
  dead = [common.reason_entries(paths[i], reason[file_no == i], rows[file_no == i],
                                subject_id=subjects[file_no == i],
                                timestamp=utc[file_no == i], field=kind,
                                raw=raw[file_no == i])
          for i in np.unique(file_no[~ok])]
  notes: dict[str, int] = {}
  for p in parts:
    for k, v in p["notes"].items():
      notes[k] = notes.get(k, 0) + v
  return common.SourceResult(
      FORMAT, readings, common.empty_entries(),
      pd.concat(dead, ignore_index=True) if dead else common.empty_entries(),
      {s: frozenset([feature]) for s in pd.unique(subjects)}, len(reason),
      int(ok.sum()), notes)


def _attributed(readings: pd.DataFrame, file_no: np.ndarray,
                paths: list[str]) -> pd.DataFrame:
  """Readings whose `source` is the file (index file_no into paths) each came from."""
  readings["source"] = pd.Categorical.from_codes(
      np.asarray(file_no, np.int64), dtype=pd.CategoricalDtype(paths))
  return readings


def _minute_means(subjects, utc, values, file_no, rows, paths) -> pd.DataFrame:
  """HR readings: per subject, the mean of each UTC minute's samples
  (derive.mean_per_minute); a reading's source and row are those of its minute's
  first sample in (file, record) order."""
  out = []
  t_s = utc.astype(np.int64) / 1e9
  minute = derive.minute_of(t_s)
  for subject in pd.unique(subjects):
    pick = subjects == subject
    r = derive.to_readings(subject, derive.mean_per_minute(t_s[pick], values[pick], "HR"))
    order = np.lexsort((rows[pick], file_no[pick], minute[pick]))
    want = r["timestamp"].dt.as_unit("ns").astype("int64").to_numpy() // 60_000_000_000
    at = order[np.searchsorted(minute[pick][order], want)]
    r["row"] = rows[pick][at]
    out.append(_attributed(r, file_no[pick][at], paths)[list(common.READING_COLUMNS)])
  if not out:
    return common.empty_readings()
  return pd.concat(out, ignore_index=True)


def _extras(path: str, records: list, kind: str, subject: str) -> common.SourceResult:
  """A file of a kind that maps to no LSM feature: all its records, one extras entry."""
  first = records[0] if records else ""
  extras = common.range_entries(path, np.arange(1, len(records) + 1), "not_an_lsm_feature",
                                subject_id=subject, field=kind,
                                raw=np.full(len(records), json.dumps(first)[:200],
                                            dtype=object))
  return common.SourceResult(FORMAT, common.empty_readings(), extras,
                             common.empty_entries(), {subject: frozenset()},
                             len(records), 0)


def read_takeout_fitbit(paths: Sequence[str], *, tz, subject_id: str | None = None,
                        subject_id_pattern: str | None = None,
                        opener: common.Opener = common.local_open
                        ) -> common.SourceResult:
  """A Takeout Fitbit export (its day files, any kinds); see the module docstring.

  Files are read in path order (the repeat rule). A file with no bytes or an empty
  array yields nothing and is counted (notes files_empty); a kind of EXPECTED_KINDS
  without any record is noted as absent.<kind> = 1. Notes files.<kind> and
  records.<kind> count each kind's files and records. Raises SourceError naming the
  file for one that is not a JSON array, or whose values contradict its kind.
  """
  paths = sorted(paths)
  tzinfo = common.parse_tz(tz, paths[0] if paths else FORMAT)
  parsed: dict[str, list[dict]] = {k: [] for k in READ_KINDS}
  results, notes = [], {"files_empty": 0}
  for path in paths:
    kind = kind_of(path)
    subject = common.subject_of(path, "folder", subject_id=subject_id,
                                pattern=subject_id_pattern)
    records = _records(path, opener, array_only=kind in READ_KINDS)
    notes[f"files.{kind}"] = notes.get(f"files.{kind}", 0) + 1
    notes[f"records.{kind}"] = notes.get(f"records.{kind}", 0) + len(records)
    notes["files_empty"] += not records
    if kind in READ_KINDS:
      parsed[kind].append(_parse_file(path, records, kind, subject, tzinfo))
    else:
      results.append(_extras(path, records, kind, subject))
  results += [_kind_result(k, parts, paths) for k, parts in parsed.items() if parts]
  notes.update({f"absent.{k}": 1 for k in EXPECTED_KINDS if not notes.get(f"records.{k}")})
  merged = common.merge_results(FORMAT, results)
  merged.notes.update(notes)
  return merged


DEVICE = registry.Device(
    name=FORMAT,
    looks_for="JSON arrays of {\"dateTime\": \"MM/DD/YY HH:MM:SS\", \"value\": ...} "
    "records (Takeout's Fitbit/Global Export Data/<kind>-YYYY-MM-DD.json; "
    "heart_rate values {bpm, confidence}, steps values strings)",
    detect=detect,
    read=read_takeout_fitbit,
    needs_tz=True,
    subject_rule="the folder above the export's layout folders (Global Export Data, "
    "Fitbit, Takeout, Physical Activity, user-site-export), unless --subject_id / "
    "--subject_id_pattern",
    example="lsm-pipeline --input 'Takeout/Fitbit/Global Export Data/*.json' "
    "--tz America/New_York --subject_id u01 --output out",
    folder_file=folder_file,
    optional=("altitude-*.json", "altitude-*.json.gz"),
)
