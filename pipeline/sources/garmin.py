"""Garmin long event streams ('timestamp;TYPE;value') and raw accelerometer files.

Every timestamp carries its own UTC offset (2019-10-16T12:08:58.041+02:00), so
offset changes (travel, DST) inside a file are exact and no timezone is needed.
STEPS and ASCENT are cumulative daily counters: derive.spread_counter turns them
into per-minute increments (a drop is a reset and starts a new baseline).
HEART_RATE_VARIABILITY events are beat-to-beat intervals in ms. The export names
no subject: common.subject_of names it (the folder's name unless --subject_id or
--subject_id_pattern).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline import derive
from pipeline.sources import common, registry

ACC_UNITS_PER_G = 1000.0     # Garmin raw accelerometer is in milli-g
COUNTER_MAX_GAP_S = 15 * 60  # longer silences between counter events: increase unplaceable
_ISO_WITH_OFFSET = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:?\d\d|Z)"
EVENT_LINE = re.compile(rf"^{_ISO_WITH_OFFSET};[A-Z_]+;[^;]*$")
ACC_LINE = re.compile(rf"^{_ISO_WITH_OFFSET};-?\d+(?:\.\d+)?;-?\d+(?:\.\d+)?;-?\d+(?:\.\d+)?$")


def is_event_line(line: str) -> bool:
  return bool(EVENT_LINE.match(line.strip()))


def is_acc_line(line: str) -> bool:
  return bool(ACC_LINE.match(line.strip()))


def read_garmin(paths: Sequence[str], *, subject_id: str | None = None,
                subject_id_pattern: str | None = None,
                opener: common.Opener = common.local_open) -> common.SourceResult:
  """One subject's Garmin files: event streams and/or raw accelerometer files."""
  if not paths:
    raise common.SourceError("garmin: no files given")
  subject = common.one_subject(paths, "folder", subject_id=subject_id,
                               pattern=subject_id_pattern)
  kinds = {}
  for p in paths:
    head = common.read_head(p, opener, 1)
    if head and is_event_line(head[0]):
      kinds[p] = "events"
    elif head and is_acc_line(head[0]):
      kinds[p] = "acc"
    else:
      raise common.SourceError(f"{p}: neither a Garmin event stream "
                               "('timestamp;TYPE;value') nor a raw accelerometer file "
                               "('timestamp;x;y;z')")
  results = [_read_events(p, subject, opener) for p, k in kinds.items() if k == "events"]
  has_steps = any("steps" in feats for r in results for feats in r.provided.values())
  results += [_read_acc(p, subject, opener, steps=not has_steps)
              for p, k in kinds.items() if k == "acc"]
  merged = common.merge_results("garmin", results)
  merged.provided.setdefault(subject, frozenset())
  return merged


def _utc_seconds(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
  """Seconds since the epoch from ISO times with offsets; (seconds, parse_failed)."""
  ts = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
  bad = ts.isna().to_numpy()
  secs = ts.dt.as_unit("ns").astype("int64").to_numpy() / 1e9
  return np.where(bad, np.nan, secs), bad


def _read_events(path: str, subject: str, opener: common.Opener) -> common.SourceResult:
  rows = common.split_rows(common.read_text(path, opener), path, sep=";", header=False,
                           n_fields=3)
  f = rows.fields
  row_no = f.index.to_numpy()
  t_s, bad_time = _utc_seconds(f[0])
  kind = f[1].to_numpy(dtype=object)
  values, reason = common.classify_values(f[2])
  reason[bad_time] = "bad_timestamp"
  reason[(reason == "") & (kind == "HEART_RATE") & common.out_of_range("HR", values)] = (
      "out_of_range")
  used = np.zeros(len(f), bool)
  frames = []

  def pick(name):
    return np.flatnonzero((kind == name) & (reason == ""))

  hr = pick("HEART_RATE")
  if len(hr):
    frames.append(derive.mean_per_minute(t_s[hr], values[hr], "HR"))
    used[hr] = True
  beats = pick("HEART_RATE_VARIABILITY")
  if len(beats):
    frames.append(derive.hrv_per_minute(t_s[beats], values[beats], with_hr=not len(hr)))
    used[beats] = True
  for name, to_frame in (("STEPS", lambda s: s.per_minute.to_frame("steps")),
                         ("ASCENT", derive.altim_std_from_ascent)):
    idx = pick(name)
    if not len(idx):
      continue
    idx = idx[np.argsort(t_s[idx], kind="stable")]
    spread = derive.spread_counter(t_s[idx], values[idx], max_gap_s=COUNTER_MAX_GAP_S)
    frames.append(to_frame(spread))
    used[idx[spread.used]] = True
    reason[idx[~spread.used & spread.baseline]] = "counter_baseline"
    reason[idx[~spread.used & ~spread.baseline]] = "incomplete_minute"
  mapped = np.isin(kind, ["HEART_RATE", "HEART_RATE_VARIABILITY", "STEPS", "ASCENT"])
  other = ~mapped & (reason == "")
  # Calories, stress, intensity minutes...: real Garmin data, not LSM features.
  extras = common.entries(path, row_no[other], "not_an_lsm_feature", subject_id=subject,
                          timestamp=pd.to_datetime(t_s[other], unit="s").as_unit(
                              "ns").to_numpy(), field=kind[other],
                          raw=f[2].to_numpy(dtype=object)[other])
  dead = common.reason_entries(path, np.where(used | other, "", reason), row_no,
                               subject_id=subject, field=kind,
                               raw=(f[0] + ";" + f[2]).to_numpy(dtype=object))
  frame = _join(frames)
  return common.SourceResult(
      "garmin", common.derived_readings(subject, frame, path, t_s[used], row_no[used]),
      extras,
      pd.concat([rows.malformed, dead], ignore_index=True),
      {subject: frozenset(frame.columns)}, rows.n_rows, int(used.sum()))


def _join(frames: list[pd.DataFrame]) -> pd.DataFrame:
  frames = [f for f in frames if len(f.columns)]
  if not frames:
    return pd.DataFrame(index=pd.Index([], dtype=np.int64, name="minute"))
  out = pd.concat(frames, axis=1, join="outer").sort_index()
  out.index.name = "minute"
  return out


def _read_acc(path: str, subject: str, opener: common.Opener, *,
              steps: bool) -> common.SourceResult:
  rows = common.split_rows(common.read_text(path, opener), path, sep=";", header=False,
                           n_fields=4)
  f = rows.fields
  row_no = f.index.to_numpy()
  t_s, bad_time = _utc_seconds(f[0])
  parsed = [common.classify_values(f[i]) for i in (1, 2, 3)]
  xyz = np.stack([v for v, _ in parsed], axis=1) / ACC_UNITS_PER_G
  reason = parsed[0][1]
  for _, r in parsed[1:]:
    reason = np.where(reason == "", r, reason)
  reason[bad_time] = "bad_timestamp"
  ok = reason == ""
  dt_s = np.diff(np.sort(t_s[ok]))
  dt_s = dt_s[dt_s > 0]
  if not len(dt_s):
    raise common.SourceError(f"{path}: fewer than two timed samples; no sample rate")
  fs = 1.0 / float(np.median(dt_s))
  frame = derive.accel_per_minute(t_s[ok], xyz[ok], fs, steps=steps)
  used, incomplete = common.unused_sample_entries(path, row_no[ok], t_s[ok], frame,
                                                  subject_id=subject, field="ACC")
  raw = f[0].to_numpy(dtype=object)
  dead = pd.concat([rows.malformed, incomplete, common.reason_entries(
      path, reason, row_no, subject_id=subject, field="ACC", raw=raw)], ignore_index=True)
  return common.SourceResult("garmin",
                             common.derived_readings(subject, frame, path, t_s[ok], row_no[ok]),
                             common.empty_entries(), dead,
                             {subject: frozenset(frame.columns)}, rows.n_rows, used)


def _registry_read(paths: Sequence[str], *, tz, subject_id, subject_id_pattern,
                   opener: common.Opener) -> common.SourceResult:
  """The registry's call; every Garmin time carries its offset, so tz does not apply."""
  del tz
  return read_garmin(paths, subject_id=subject_id, subject_id_pattern=subject_id_pattern,
                     opener=opener)


DEVICE = registry.Device(
    "garmin", looks_for="lines 'ISO-time-with-offset;TYPE;value' or 'ISO-time;x;y;z'",
    detect=lambda sniff: bool(sniff.lines) and (is_event_line(sniff.lines[0])
                                                or is_acc_line(sniff.lines[0])),
    read=_registry_read,
    subject_rule="the folder's name, unless --subject_id / --subject_id_pattern",
    example="lsm-pipeline --input 'garmin/p01/*.csv' --output out")
