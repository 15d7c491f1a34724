"""Empatica E4 session exports: one CSV per sensor.

Each sample file starts with the session start (unix seconds, UTC) and the sample
rate (Hz), one value per column; IBI.csv starts with the start time and 'IBI', then
rows of (seconds since start, interval in seconds). Timestamps are UTC, so no
timezone is needed. The export names no subject: common.subject_of names it (the
session folder's name, or the participant folder above an E4 Connect session
folder '<unix time>_<device id>', unless --subject_id or --subject_id_pattern).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pipeline import derive
from pipeline.sources import common, registry

ACC_UNITS_PER_G = 64.0       # E4 ACC is in 1/64 g (range +-2 g)
TEMP_SLOPE_SCALE = 1000.0    # degC/min -> milli-degC/min (skin_temperature_slope)
SAMPLE_FILES = ("ACC", "BVP", "EDA", "HR", "TEMP")
FILES = SAMPLE_FILES + ("IBI", "tags")


def sensor_of(path: str) -> str | None:
  """'ACC' for '.../ACC.csv' (E4's fixed file names), None for anything else."""
  name = common.basename(path)
  for sensor in FILES:
    if name in (f"{sensor}.csv", f"{sensor}.csv.gz"):
      return sensor
  return None


def looks_like_e4(lines: list[str], sensor: str) -> bool:
  """The preamble E4 writes: start time (and a rate, or 'IBI') in every column."""
  if sensor == "tags":
    return bool(lines) and _floats(lines[0]) is not None and len(lines[0].split(",")) == 1
  if sensor == "IBI":  # the header alone when E4 found no beats
    start = [c.strip() for c in lines[0].split(",")] if lines else []
    return len(start) == 2 and start[1] == "IBI" and _floats(start[0]) is not None
  if len(lines) < 2:
    return False
  return _floats(lines[0]) is not None and _floats(lines[1]) is not None


def _floats(line: str) -> list[float] | None:
  try:
    values = [float(c) for c in line.split(",")]
  except ValueError:
    return None
  return values if values and all(np.isfinite(values)) else None


def read_empatica_e4(paths: Sequence[str], *, subject_id: str | None = None,
                     subject_id_pattern: str | None = None,
                     opener: common.Opener = common.local_open) -> common.SourceResult:
  """One E4 session: its sensor files (any subset), e.g. the files of one folder."""
  by_sensor = {}
  for p in paths:
    sensor = sensor_of(p)
    if sensor is None:
      raise common.SourceError(f"{p}: not an Empatica E4 sensor file "
                               f"(expected one of {', '.join(s + '.csv' for s in FILES)})")
    if sensor in by_sensor:
      raise common.SourceError(f"{p}: second {sensor}.csv in one session "
                               f"(also {by_sensor[sensor]}); pass one session at a time")
    by_sensor[sensor] = p
  subject = common.one_subject(paths, "folder", subject_id=subject_id,
                               pattern=subject_id_pattern)
  results = [_read_sensor(sensor, p, subject, opener, has_hr="HR" in by_sensor)
             for sensor, p in by_sensor.items()]
  merged = common.merge_results("empatica_e4", results)
  merged.provided.setdefault(subject, frozenset())
  return merged


def _preamble(path: str, text: str, n_columns: int) -> tuple[float, float, str]:
  lines = text.split("\n", 2)
  if len(lines) < 3:
    raise common.SourceError(f"{path}: shorter than the two E4 header rows")
  start, rate = _floats(lines[0]), _floats(lines[1])
  if start is None or rate is None or len(start) != n_columns or len(rate) != n_columns:
    raise common.SourceError(f"{path}: E4 header rows must be the start time and the "
                             f"sample rate in each of {n_columns} column(s)")
  if len(set(start)) != 1 or len(set(rate)) != 1 or rate[0] <= 0:
    raise common.SourceError(f"{path}: columns disagree on start time or rate, or "
                             f"rate is not positive ({lines[0]!r}, {lines[1]!r})")
  return start[0], rate[0], lines[2]


def _read_sensor(sensor: str, path: str, subject: str, opener: common.Opener,
                 has_hr: bool) -> common.SourceResult:
  text = common.read_text(path, opener)
  if sensor == "IBI":
    return _read_ibi(path, text, subject, with_hr=not has_hr)
  if sensor == "tags":
    rows = common.split_rows(text, path, header=False, n_fields=1)
    extras = common.range_entries(path, rows.fields.index.to_numpy(), "not_an_lsm_feature",
                                  subject_id=subject, field="tags",
                                  raw=rows.fields[0].to_numpy(dtype=object))
    return common.SourceResult("empatica_e4", common.empty_readings(), extras,
                               rows.malformed, {subject: frozenset()}, rows.n_rows, 0)
  n_columns = 3 if sensor == "ACC" else 1
  start, fs, body = _preamble(path, text, n_columns)
  rows = common.split_rows(body, path, header=False, n_fields=n_columns)
  row_no = rows.fields.index.to_numpy()
  t_s = start + (row_no - 1) / fs
  if sensor == "BVP":
    # The raw PPG waveform; E4's own HR.csv and IBI.csv carry what LSM needs from it.
    extras = common.range_entries(path, row_no, "raw_ppg_waveform_not_an_lsm_feature",
                                  subject_id=subject, field="BVP",
                                  raw=rows.fields[0].to_numpy(dtype=object))
    return common.SourceResult("empatica_e4", common.empty_readings(), extras,
                               rows.malformed, {subject: frozenset()}, rows.n_rows, 0)
  parsed = [common.classify_values(rows.fields[i]) for i in range(n_columns)]
  values = np.stack([v for v, _ in parsed], axis=1)
  reason = parsed[0][1]
  for _, r in parsed[1:]:
    reason = np.where(reason == "", r, reason)
  feature = {"EDA": "eda_level_real", "TEMP": "wrist_temperatures", "HR": "HR"}.get(sensor)
  if feature:
    reason[(reason == "") & common.out_of_range(feature, values[:, 0])] = "out_of_range"
  ok = reason == ""
  t_ok, v_ok = t_s[ok], values[ok]
  min_samples = derive.MIN_COVERAGE * fs * 60.0
  if sensor == "ACC":
    frame = derive.accel_per_minute(t_ok, v_ok / ACC_UNITS_PER_G, fs, steps=True)
  elif sensor == "EDA":
    frame = derive.level_slope_per_minute(t_ok, v_ok[:, 0], level="eda_level_real",
                                          slope="ceda_slope_real_micro_siemens",
                                          min_samples=min_samples)
  elif sensor == "TEMP":
    frame = derive.level_slope_per_minute(t_ok, v_ok[:, 0], level="wrist_temperatures",
                                          slope="skin_temperature_slope",
                                          slope_scale=TEMP_SLOPE_SCALE,
                                          min_samples=min_samples)
  else:
    frame = derive.mean_per_minute(t_ok, v_ok[:, 0], "HR")
  used, incomplete = common.unused_sample_entries(path, row_no[ok], t_ok, frame,
                                                  subject_id=subject, field=sensor)
  raw = rows.fields[0].to_numpy(dtype=object).copy()
  bad = ~ok
  for i in range(1, n_columns):  # join the raw columns back only for rows that failed
    raw[bad] = raw[bad] + "," + rows.fields[i].to_numpy(dtype=object)[bad]
  dead = pd.concat([rows.malformed, incomplete,
                    common.reason_entries(path, reason, row_no, subject_id=subject,
                                          field=sensor, raw=raw)], ignore_index=True)
  return common.SourceResult("empatica_e4",
                             common.derived_readings(subject, frame, path, t_ok, row_no[ok]),
                             common.empty_entries(), dead,
                             {subject: frozenset(frame.columns)}, rows.n_rows, used)


def _read_ibi(path: str, text: str, subject: str, with_hr: bool) -> common.SourceResult:
  first, _, body = text.partition("\n")
  start = [c.strip() for c in first.split(",")]
  if len(start) != 2 or start[1] != "IBI" or _floats(start[0]) is None:
    raise common.SourceError(f"{path}: E4 IBI header must be '<start time>, IBI'")
  rows = common.split_rows(body, path, header=False, n_fields=2)
  offset, r1 = common.classify_values(rows.fields[0])
  ibi_s, r2 = common.classify_values(rows.fields[1])
  reason = np.where(r1 == "", r2, r1)
  ok = reason == ""
  row_no = rows.fields.index.to_numpy()
  t_s = float(start[0]) + offset
  frame = derive.hrv_per_minute(t_s[ok], ibi_s[ok] * 1000.0, with_hr=with_hr)
  used, incomplete = common.unused_sample_entries(path, row_no[ok], t_s[ok], frame,
                                                  subject_id=subject, field="IBI")
  dead = pd.concat([rows.malformed, incomplete, common.reason_entries(
      path, reason, row_no, subject_id=subject, field="IBI",
      raw=(rows.fields[0] + "," + rows.fields[1]).to_numpy(dtype=object))],
                   ignore_index=True)
  provides = frozenset(frame.columns) if rows.n_rows else frozenset()  # no beats: no HRV
  return common.SourceResult("empatica_e4",
                             common.derived_readings(subject, frame, path, t_s[ok], row_no[ok]),
                             common.empty_entries(), dead,
                             {subject: provides}, rows.n_rows, used)


def _detect(sniff: registry.Sniff) -> bool:
  sensor = sensor_of(sniff.path)
  return sensor is not None and looks_like_e4(list(sniff.lines), sensor)


def _registry_read(paths: Sequence[str], *, tz, subject_id, subject_id_pattern,
                   opener: common.Opener) -> common.SourceResult:
  """The registry's call; E4 times are unix UTC, so tz does not apply."""
  del tz
  return read_empatica_e4(paths, subject_id=subject_id,
                          subject_id_pattern=subject_id_pattern, opener=opener)


DEVICE = registry.Device(
    "empatica_e4", looks_for="E4 file name (ACC/BVP/EDA/HR/IBI/TEMP/tags.csv) and "
    "start-time/rate preamble", detect=_detect, read=_registry_read,
    subject_rule="the session folder's name, or the participant folder above an E4 "
    "Connect session folder '<unix time>_<device id>', unless --subject_id / "
    "--subject_id_pattern",
    example="lsm-pipeline --input e4/p01/1560279000_A01B2C/ --output out",
    folder_file=lambda name: sensor_of(name) is not None,
    # E4 writes IBI.csv with its header only when it found no beats, and an empty
    # tags.csv when the button was never pressed.
    optional=("IBI.csv", "IBI.csv.gz", "tags.csv", "tags.csv.gz"))
