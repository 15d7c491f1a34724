"""Which source format a file is, from its name and first lines; never a guess.

Each rule looks at one thing a format always has (a header, E4's file names and
preamble, Garmin's 'ISO-time;TYPE;value' lines). A file no rule accepts, or more
than one rule accepts, is an error naming the file, so a new export never slips
through under the wrong reader. `--format` (read_source's format=) skips detection.
A file with no bytes (after gunzipping) is an EmptyFileError, not an unknown format.
"""

from __future__ import annotations

import os

from absl import logging

from pipeline.sources import common, empatica, fitbit, garmin, nhanes
from schemas.features import canonical_name, normalise_alias
from schemas.raw import LONG_COLUMNS, WIDE_ID_COLUMNS


def _canonical_long(path, head):
  return bool(head) and [h.strip() for h in head[0].split(",")] == list(LONG_COLUMNS)


def _canonical_wide(path, head):
  if not head:
    return False
  cols = [h.strip() for h in head[0].split(",")]
  return (cols[:2] == list(WIDE_ID_COLUMNS) and len(cols) > 2
          and all(canonical_name(c) for c in cols[2:]))


def _fitbit_minute(path, head):
  if not head:
    return False
  cols = head[0].split(",")
  return fitbit.is_minute_header(cols) or fitbit.is_wear_file(cols)


def _fitbit_heartrate(path, head):
  return bool(head) and fitbit.is_heartrate_header(head[0].split(","))


def _empatica(path, head):
  sensor = empatica.sensor_of(path)
  return sensor is not None and empatica.looks_like_e4(head, sensor)


def _garmin(path, head):
  return bool(head) and (garmin.is_event_line(head[0]) or garmin.is_acc_line(head[0]))


def _nhanes(path, head):
  return bool(head) and nhanes.is_nhanes_header(head[0].split(","))


# format name -> (rule, what it looks for); canonical formats are read by the pipeline.
RULES = {
    "canonical_long": (_canonical_long, "header subject_id,timestamp,feature,value"),
    "canonical_wide": (_canonical_wide, "header subject_id,timestamp,<LSM features>"),
    "fitbit_minute": (_fitbit_minute, "header [Id,]ActivityMinute,<measure> or "
                      "Day,TotalMinutesWearTime,PercentageWearTime"),
    "fitbit_heartrate_seconds": (_fitbit_heartrate, "header Id,Time,Value or id,time,hr"),
    "empatica_e4": (_empatica, "E4 file name (ACC/BVP/EDA/HR/IBI/TEMP/tags.csv) and "
                    "start-time/rate preamble"),
    "garmin": (_garmin, "lines 'ISO-time-with-offset;TYPE;value' or 'ISO-time;x;y;z'"),
    "nhanes": (_nhanes, "header ID,Day,MIN1..MIN1440"),
}
FORMATS = tuple(RULES)


class EmptyFileError(common.SourceError):
  """A file with no bytes (or only line ends) that no format rule accepts."""


def detect(path: str, *, opener: common.Opener = common.local_open) -> str:
  """The format name of one file (or of an E4 session folder); logs why."""
  if os.path.isdir(path):
    names = sorted(os.listdir(path))
    sensors = [n for n in names if empatica.sensor_of(n)]
    if sensors:
      for n in sensors:
        detect(os.path.join(path, n), opener=opener)
      logging.info("%s: detected empatica_e4 (folder with %s)", path, ", ".join(sensors))
      return "empatica_e4"
    raise common.SourceError(f"{path}: a folder, but not an Empatica E4 session "
                             "(no ACC/BVP/EDA/HR/IBI/TEMP/tags.csv); pass its files")
  head = common.read_head(path, opener, 3)
  matches = [name for name, (rule, _) in RULES.items() if rule(path, head)]
  if len(matches) == 1:
    logging.info("%s: detected %s (%s)", path, matches[0], RULES[matches[0]][1])
    return matches[0]
  if not matches and not any(line.strip() for line in head):
    raise EmptyFileError(f"{path}: empty file (no bytes, or only blank lines)")
  if not matches:
    hint = delimiter_hint(head[0])
    raise common.SourceError(
        f"{path}: unknown format (first line {head[0][:120]!r}); supported: "
        f"{', '.join(FORMATS)}. " + (f"It splits on another separator: {hint}" if hint
                                     else "Convert it to the canonical long format "
                                     "(schemas/raw.py) or pass --format"))
  raise common.SourceError(f"{path}: ambiguous format, matches {', '.join(matches)}; "
                           "pass --format to choose")


def delimiter_hint(line: str) -> str:
  """'pass --csv_delimiter X' for a header that names subject_id and timestamp when
  split on X (';', tab, '|'), as European spreadsheets write it; else ''."""
  for sep in (";", "\t", "|"):
    if {"subject_id", "timestamp"} <= {normalise_alias(c) for c in line.split(sep)}:
      return f"pass --csv_delimiter {sep!r}"
  return ""
