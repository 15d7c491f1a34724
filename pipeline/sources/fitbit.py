"""Fitbit / Fitabase exports: narrow minute files, wear-time files, heartrate_seconds.

Fitabase writes local wall-clock times without an offset (US style
'11/26/2021 12:00:00 AM', or ISO 'YYYY-MM-DD HH:MM:SS' in re-published copies), so
the caller must give the timezone; common.localise applies the project's DST rule.
Fitabase pads every day to 1440 minutes, including the hour that does not exist on
a spring-forward day: those rows are dead-lettered as nonexistent_local_time.

Repeated minutes (Fitbit pads a minute with 0 and may list it again with the real
count). Within ONE file, of the rows of one (subject, minute, measure) the first
non-zero one wins (so 0 then 17 steps keeps 17), or the first when all are zero;
any other repeat keeps the first row (5 then 17 keeps 5). Across the files of one
export (overlapping Fitabase date ranges), the first file in path order wins. The
losing rows are dead-lettered here as `duplicate`, naming the file, its data row
and the raw cell, so the pipeline's own duplicate rule only sees repeats across
sources.

Files without an Id column take their subject from common.subject_of (the file
name's prefix unless --subject_id or --subject_id_pattern says otherwise).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pipeline import derive
from pipeline.sources import common, registry
from schemas.features import canonical_name

WEAR_HEADER = ["day", "totalminutesweartime", "percentageweartime"]


def is_wear_file(header: list[str]) -> bool:
  return [h.lower() for h in header] == WEAR_HEADER


def is_minute_header(header: list[str]) -> bool:
  low = [h.lower() for h in header]
  return (len(low) == 2 and low[0] == "activityminute") or (
      len(low) == 3 and low[:2] == ["id", "activityminute"])


def is_heartrate_header(header: list[str]) -> bool:
  return [h.lower() for h in header] in (["id", "time", "value"], ["id", "time", "hr"])


def _subjects(rows: common.Rows, path: str, has_id: bool, subject_id: str | None,
              pattern: str | None) -> tuple[np.ndarray, np.ndarray]:
  """Per-row subject ids and the rows lacking one (missing_subject)."""
  if has_id:
    ids = rows.fields[0].to_numpy(dtype=object)
    return ids, ids == ""
  subject = common.subject_of(path, "file", subject_id=subject_id, pattern=pattern)
  return np.full(len(rows.fields), subject, dtype=object), np.zeros(len(rows.fields), bool)


def _off_wrist_days(path: str, opener: common.Opener, subject_id: str | None,
                    pattern: str | None) -> tuple[common.SourceResult, str, set]:
  """Days with zero wear minutes. The file only has daily totals, so a partly worn
  day cannot be narrowed to minutes and stays in; only wholly unworn days go."""
  rows = common.split_rows(common.read_text(path, opener), path)
  if not is_wear_file(rows.header):
    raise common.SourceError(f"{path}: not a Fitabase wear-time file (header {rows.header})")
  subject = common.subject_of(path, "file", subject_id=subject_id, pattern=pattern)
  day = pd.to_datetime(rows.fields[0], format="%m/%d/%Y", errors="coerce")
  minutes, reason = common.classify_values(rows.fields[1])
  reason[day.isna().to_numpy()] = "bad_timestamp"
  dead = common.reason_entries(path, reason, rows.fields.index.to_numpy(),
                               subject_id=subject, field="TotalMinutesWearTime",
                               raw=rows.fields[1].to_numpy(dtype=object))
  ok = reason == ""
  off = set(day[ok & (minutes == 0)])
  result = common.SourceResult(
      "fitbit_minute", common.empty_readings(), common.empty_entries(),
      pd.concat([rows.malformed, dead], ignore_index=True), {}, rows.n_rows,
      int(ok.sum()))
  return result, subject, off


def _repeats_in_file(codes: np.ndarray, utc: np.ndarray, values: np.ndarray,
                     ok: np.ndarray) -> np.ndarray:
  """Rows that lose to another row of the same (subject code, minute) in one file:
  the first non-zero row wins, else the first (the module docstring's rule)."""
  idx = np.flatnonzero(ok)
  keys = pd.DataFrame({"s": codes[idx], "t": utc[idx]})
  repeated = keys.duplicated(keep=False).to_numpy()
  if not repeated.any():
    return np.zeros(len(ok), bool)
  idx, keys = idx[repeated], keys[repeated]
  key = pd.factorize(pd.MultiIndex.from_frame(keys))[0]
  order = np.lexsort((idx, values[idx] == 0, key))
  winner = np.concatenate([[True], key[order][1:] != key[order][:-1]])
  lose = np.zeros(len(ok), bool)
  lose[idx[order][~winner]] = True
  return lose


def _taken_before(subjects: np.ndarray, utc: np.ndarray, ok: np.ndarray, feature: str,
                  taken: dict) -> np.ndarray:
  """Rows whose (subject, minute) of `feature` an earlier file of the export already
  gave (first file wins); records this file's rows in `taken`."""
  keys = pd.MultiIndex.from_arrays([subjects[ok], utc[ok]])
  before = taken.get(feature)
  lose = np.zeros(len(ok), bool)
  if before is not None:
    lose[np.flatnonzero(ok)[keys.isin(before)]] = True
    keys = before.append(keys[~lose[ok]])
  taken[feature] = keys
  return lose


def _minute_file(path: str, opener: common.Opener, tz, subject_id: str | None,
                 pattern: str | None, off_days: dict[str, set],
                 taken: dict) -> common.SourceResult:
  rows = common.split_rows(common.read_text(path, opener), path)
  if not is_minute_header(rows.header):
    raise common.SourceError(f"{path}: not a Fitabase narrow minute file "
                             f"(header {rows.header})")
  has_id = len(rows.header) == 3
  measure = rows.header[-1]
  feature = canonical_name(measure)
  f = rows.fields
  subjects, no_subject = _subjects(rows, path, has_id, subject_id, pattern)
  codes = pd.factorize(subjects)[0]
  local = common.parse_local_times(f[len(rows.header) - 2])
  loc = common.localise(local, tz, group=codes)
  values, reason = common.classify_values(f[len(rows.header) - 1])
  if feature:
    reason[(reason == "") & common.out_of_range(feature, values)] = "out_of_range"
  reason[loc.nonexistent] = "nonexistent_local_time"
  reason[loc.unresolved] = "ambiguous_local_time"
  reason[local.isna().to_numpy()] = "bad_timestamp"
  reason[no_subject] = "missing_subject"
  row_no = f.index.to_numpy()
  raw = f[len(rows.header) - 1].to_numpy(dtype=object)
  utc = common.naive_utc(loc.utc)
  provided = {s: frozenset([feature]) if feature else frozenset()
              for s in pd.unique(subjects[~no_subject])}
  if feature is None:
    # METs, intensities, calories: real data, not LSM features; kept as extras.
    ok = ~no_subject
    extras = common.entries(path, row_no[ok], "not_an_lsm_feature", subject_id=subjects[ok],
                            timestamp=utc[ok], field=measure, raw=raw[ok])
    dead = common.reason_entries(path, np.where(no_subject, "missing_subject", ""), row_no)
    return common.SourceResult("fitbit_minute", common.empty_readings(), extras,
                               pd.concat([rows.malformed, dead], ignore_index=True),
                               provided, rows.n_rows, 0, common.tz_notes(loc))
  if off_days:
    day = local.dt.normalize().to_numpy()
    pairs = pd.MultiIndex.from_arrays([subjects, day])
    off = pairs.isin([(s, np.datetime64(d, "ns")) for s, days in off_days.items()
                      for d in days])
    reason[(reason == "") & off] = "off_wrist"
  reason[_repeats_in_file(codes, utc, values, reason == "")] = "duplicate"
  reason[_taken_before(subjects, utc, reason == "", feature, taken)] = "duplicate"
  ok = reason == ""
  readings = common.readings_frame(subjects[ok], utc[ok], feature, values[ok], path,
                                   row_no[ok])
  dead = common.reason_entries(path, reason, row_no, subject_id=subjects, timestamp=utc,
                               field=measure, raw=raw)
  return common.SourceResult("fitbit_minute", readings, common.empty_entries(),
                             pd.concat([rows.malformed, dead], ignore_index=True),
                             provided, rows.n_rows, int(ok.sum()), common.tz_notes(loc))


def read_fitbit_minute(paths: Sequence[str], *, tz, subject_id: str | None = None,
                       subject_id_pattern: str | None = None,
                       opener: common.Opener = common.local_open) -> common.SourceResult:
  """A Fitabase export: narrow minute files plus optional fitbitWearTimeViaHR files.

  Steps become LSM `steps`; METs, intensities and calories are extras
  (not_an_lsm_feature); minutes of days the wear file reports as unworn are
  dead-lettered as off_wrist. Files are read in path order (the duplicate rule).
  """
  paths = sorted(paths)
  tzinfo = common.parse_tz(tz, paths[0] if paths else "fitbit_minute")
  heads = {p: common.read_head(p, opener, 1)[:1] for p in paths}
  wear = [p for p in paths if heads[p] and is_wear_file(heads[p][0].split(","))]
  results, off_days, taken = [], {}, {}
  for p in wear:
    result, subject, off = _off_wrist_days(p, opener, subject_id, subject_id_pattern)
    results.append(result)
    off_days.setdefault(subject, set()).update(off)
  for p in paths:
    if p not in wear:
      results.append(_minute_file(p, opener, tzinfo, subject_id, subject_id_pattern,
                                  off_days, taken))
  merged = common.merge_results("fitbit_minute", results)
  for subject in off_days:
    merged.provided.setdefault(subject, frozenset())
  return merged


def read_fitbit_heartrate(paths: Sequence[str], *, tz, opener: common.Opener =
                          common.local_open) -> common.SourceResult:
  """heartrate_seconds exports (Id,Time,Value or id,time,hr): HR, the per-minute mean."""
  tzinfo = common.parse_tz(tz, paths[0] if paths else "fitbit_heartrate_seconds")
  return common.merge_results("fitbit_heartrate_seconds",
                              [_heartrate_file(p, opener, tzinfo) for p in paths])


def _heartrate_file(path: str, opener: common.Opener, tz) -> common.SourceResult:
  rows = common.split_rows(common.read_text(path, opener), path)
  if not is_heartrate_header(rows.header):
    raise common.SourceError(f"{path}: not a heartrate_seconds file (header {rows.header})")
  f = rows.fields
  subjects, no_subject = _subjects(rows, path, True, None, None)
  local = common.parse_local_times(f[1])
  loc = common.localise(local, tz, group=pd.factorize(subjects)[0])
  values, reason = common.classify_values(f[2])
  reason[(reason == "") & common.out_of_range("HR", values)] = "out_of_range"
  reason[loc.nonexistent] = "nonexistent_local_time"
  reason[loc.unresolved] = "ambiguous_local_time"
  reason[local.isna().to_numpy()] = "bad_timestamp"
  reason[no_subject] = "missing_subject"
  ok = reason == ""
  row_no = f.index.to_numpy()
  t_s = loc.utc.dt.as_unit("ns").astype("int64").to_numpy() / 1e9
  readings = []
  for subject in pd.unique(subjects[ok]):
    pick = ok & (subjects == subject)
    readings.append(common.derived_readings(
        subject, derive.mean_per_minute(t_s[pick], values[pick], "HR"), path, t_s[pick],
        row_no[pick]))
  dead = common.reason_entries(path, reason, row_no, subject_id=subjects,
                               timestamp=common.naive_utc(loc.utc), field=rows.header[2],
                               raw=f[2].to_numpy(dtype=object))
  return common.SourceResult(
      "fitbit_heartrate_seconds",
      pd.concat(readings, ignore_index=True) if readings else common.empty_readings(),
      common.empty_entries(), pd.concat([rows.malformed, dead], ignore_index=True),
      {s: frozenset(["HR"]) for s in pd.unique(subjects[~no_subject])},
      rows.n_rows, int(ok.sum()), common.tz_notes(loc))


def _read_heartrate(paths: Sequence[str], *, tz, subject_id, subject_id_pattern,
                    opener: common.Opener) -> common.SourceResult:
  """The registry's call; every heartrate_seconds row names its subject (Id), so the
  subject options do not apply."""
  del subject_id, subject_id_pattern
  return read_fitbit_heartrate(paths, tz=tz, opener=opener)


def _is_minute(sniff: registry.Sniff) -> bool:
  cols = sniff.lines[0].split(",") if sniff.lines else []
  return bool(cols) and (is_minute_header(cols) or is_wear_file(cols))


def _is_heartrate(sniff: registry.Sniff) -> bool:
  return bool(sniff.lines) and is_heartrate_header(sniff.lines[0].split(","))


_TZ_EXAMPLE = "--tz America/New_York --output out"
DEVICES = (
    registry.Device(
        "fitbit_minute", looks_for="header [Id,]ActivityMinute,<measure> or "
        "Day,TotalMinutesWearTime,PercentageWearTime", detect=_is_minute,
        read=read_fitbit_minute, needs_tz=True,
        subject_rule="the Id column, else the file-name prefix ('name1' in "
        "'name1_minuteStepsNarrow_...'), unless --subject_id / --subject_id_pattern",
        example=f"lsm-pipeline --input 'fitabase/*.csv' {_TZ_EXAMPLE}"),
    registry.Device(
        "fitbit_heartrate_seconds", looks_for="header Id,Time,Value or id,time,hr",
        detect=_is_heartrate, read=_read_heartrate, needs_tz=True,
        subject_rule="the Id column",
        example=f"lsm-pipeline --input heartrate_seconds_merged.csv {_TZ_EXAMPLE}"),
)
