"""Source adapters: device and research-platform exports to canonical LSM readings.

The formats come from the device registry (registry.py): every module here that
declares a `registry.Device` as DEVICE (or several as DEVICES) is a format, found
by walking this package (and the `lsm_pipeline.devices` entry points). Adding a
device is writing ONE module, pipeline/sources/<name>.py, that declares
  name          the --format value, counts.sources.<name> in the manifest
  looks_for     what detection checks, in words (errors, --help, README table)
  detect        registry.Sniff -> bool, by content: the file's first 8 lines
                (gunzipped) and first 8 raw bytes, read once per file
  read          (paths, *, tz, subject_id, subject_id_pattern, opener, **options)
                -> SourceResult for one export; None for the canonical formats
  needs_tz      local times without an offset: --tz required
  subject_rule  how the subject is identified, in words (common.subject_of)
  example       one lsm-pipeline command (README table)
  options       registry.Option flags of its own, added to lsm-pipeline and
                passed to `read` by name
  folder_file   for a folder export (an E4 session): which names belong to it
  optional      file-name patterns of files that may hold no data (E4's IBI.csv
                and tags.csv): such a file, empty or yielding no entry, is skipped
                and counted as optional_files_empty instead of refusing the export
Detection, read_source's dispatch, lsm-pipeline's --format choices, --help, its
per-device flags and the README's device table all follow; nothing else changes
(tests/pipeline/sources/test_registry.py adds a device that way).

Interface (what lsm-pipeline calls; one call per export: a subject's or a cohort's
files of one format, e.g. one E4 session folder, one Garmin folder, a Fitabase
export, a heartrate_seconds file, an NHANES counts + wear pair):

  detect(path, *, opener=local_open) -> str
      The format name (one of FORMATS: registry.formats(), canonical first) from
      the file's name, first lines and first bytes (detection.py); logs what it
      chose and why. Unknown or ambiguous: SourceError naming the file.

  read_source(paths, *, format=None, tz=None, subject_id=None,
              subject_id_pattern=None, opener=local_open, options=None)
      -> SourceResult
      Detects (or takes `format`, the --format override), reads with the
      device's `read`, derives per-minute features, and checks the accounting
      before returning. A folder stands for the files its device's folder_file
      takes. Optional files without data are skipped and counted (notes
      optional_files_empty); an export of nothing else yields no subject.
      tz: the recording's timezone for formats written in local time without an
        offset (needs_tz: fitbit_minute, fitbit_heartrate_seconds): an IANA name
        ('America/New_York') or a fixed offset ('+02:00', '-0500'). Required for
        them (no guess); ignored by formats whose times are absolute (E4: unix UTC;
        Garmin: ISO with offsets; NHANES has no dates).
      subject_id, subject_id_pattern: for exports that name no subject (E4,
        Garmin, Fitabase files without an Id column), common.subject_of, one rule
        for every adapter: subject_id if given, else the pattern's group searched
        in each file's path, else the name (E4, Garmin: the folder's name, or the
        participant folder above an E4 Connect session folder
        '<unix time>_<device id>'; Fitabase: the file name's prefix, 'name1' in
        'name1_minuteStepsNarrow_...').
      opener: path -> binary file object; pass apache_beam.io.filesystems.
        FileSystems.open for gs:// and other Beam file systems. Gzip is detected
        from the bytes.
      options: {option name: value} of the devices' own flags (registry.Option);
        the device gets its own, a missing one at its default.

  SourceResult (pipeline/sources/common.py):
    format        the format name.
    readings      pandas DataFrame, columns READING_COLUMNS:
                    subject_id  str, the raw id (hash it before anything leaves)
                    timestamp   datetime64[ns, UTC], the start of the UTC minute
                    feature     str, a canonical LSM name (schemas.features)
                    value       float64, in the feature's unit (derive.py)
                    source      str, the file the reading comes from
                    row         int64, its data row in that file (from 1); for a
                                reading derived from many samples, the first
                                row of its minute's samples
                  Sub-minute samples are already reduced here (one reading per
                  subject, minute and feature); minute-level rows pass through 1:1.
                  Repeats visible inside one export are resolved by its adapter
                  (fitbit.py's docstring: the rule per source) and dead-lettered
                  as `duplicate`; the pipeline's own `duplicate` rule handles
                  repeats across sources. NaN never appears. Values are not range-checked
                  or clipped against schemas (the pipeline does that, as for any
                  source), except raw samples out of their feature's valid range,
                  dead-lettered before they can bias a minute's mean.
    extras        entries that are real data but not LSM features (METs,
                  intensities, calories, stress, BVP waveform, activity counts,
                  E4 tags), columns ENTRY_COLUMNS (source, row, n_rows,
                  subject_id, timestamp, field, raw, reason); reasons EXTRA_REASONS.
    dead_letter   entries that could not be used, same columns; reasons from
                  schemas.raw.DEAD_LETTER_REASONS plus ADAPTER_DEAD_LETTER_REASONS.
    provided      {subject_id: frozenset of LSM features this subject's source
                  can provide}; every subject seen is a key, even with no feature.
                  Features not in the set must be missing (mask 0) for the whole
                  subject, and the window drop rule counts missingness over this
                  set (issue 7).
    entries_read, entries_used
                  Accounting: an entry is a data row (a CSV line, an E4 sample,
                  an NHANES subject-day row). entries_read == entries_used +
                  sum(extras.n_rows) + sum(dead_letter.n_rows); `used` means it
                  became or contributed to a reading (or, for wear files, was
                  applied as the wear mask). check_accounting() asserts it.
    notes         counters, e.g. ambiguous_local_time_first/second (DST rule);
                  they reach the manifest as counts.sources.<format>.<note>.
    counts()      flat counters for the manifest / Beam metrics.

  provided_mask(features) -> bool[26] in LSM order, for the window drop rule.

The timezone rule (DST fall-back and spring-forward) is common.localise's
docstring; every feature derivation is documented in pipeline/derive.py.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from absl import logging

from pipeline.sources import common, detection, registry
from pipeline.sources.common import (ADAPTER_DEAD_LETTER_REASONS, ENTRY_COLUMNS,
                                     EXTRA_REASONS, READING_COLUMNS, SourceError,
                                     SourceResult, local_open, provided_mask)
from pipeline.sources.detection import detect

__all__ = ["ADAPTER_DEAD_LETTER_REASONS", "ENTRY_COLUMNS", "EXTRA_REASONS", "FORMATS", "READING_COLUMNS", "SourceError", "SourceResult",
           "detect", "local_open", "provided_mask", "read_source"]

OPTIONAL_EMPTY = "optional_files_empty"  # note: optional files that held no data


def __getattr__(name: str):
  """FORMATS: every format name (registry.formats(), read when used)."""
  if name == "FORMATS":
    return registry.formats()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _expand(paths: Sequence[str]) -> list[str]:
  """A device's export folder (an E4 session) stands for its files (registry's
  folder_file; info.txt is documentation)."""
  out = []
  for p in paths:
    if os.path.isdir(p):
      names = sorted(os.listdir(p))
      _, members = registry.folder_device(p, names)
      skipped = sorted(set(names) - set(members))
      if skipped:
        logging.info("%s: not export files, not read: %s", p, ", ".join(skipped))
      out += [os.path.join(p, n) for n in members]
    else:
      out.append(p)
  return out


def _device(files: list[str], format: str | None, opener) -> registry.Device:  # noqa: A002
  """The export's Device: `format` (--format), else the one its files are detected as."""
  if format is None:
    found = {p: detect(p, opener=opener) for p in files}
    kinds = set(found.values())
    if len(kinds) > 1:
      raise SourceError("files of different formats in one export: " + "; ".join(
          f"{p}: {k}" for p, k in found.items()))
    format = kinds.pop()
  known = registry.devices()
  if format not in known:
    raise SourceError(f"unknown format {format!r}; supported: {', '.join(known)}")
  if known[format].read is None:
    raise SourceError(f"{files[0]}: {format} files are read by lsm-pipeline's canonical "
                      "reader (schemas/raw.py), not by a device adapter")
  return known[format]


def _blank(path: str, opener) -> bool:
  """No bytes, or only line ends (detection's rule)."""
  return detection.is_empty(detection.sniff(path, opener))


def read_source(paths: Sequence[str] | str, *, format: str | None = None,  # noqa: A002
                tz=None, subject_id: str | None = None,
                subject_id_pattern: str | None = None,
                opener: common.Opener = local_open,
                options: Mapping[str, str | None] | None = None) -> SourceResult:
  """Reads one export; see the module docstring for the contract."""
  if isinstance(paths, str):
    paths = [paths]
  files = _expand(paths)
  if not files:
    raise SourceError(f"no files in {list(paths)}")
  device = _device(files, format, opener)
  if tz is not None and not device.needs_tz:
    logging.info("%s: timestamps are absolute; tz=%r not needed, ignored", device.name, tz)
  blank = [p for p in files if device.is_optional(p) and _blank(p, opener)]
  files = [p for p in files if p not in blank]
  given = dict(options or {})
  chosen = {o.name: given.get(o.name, o.default) for o in device.options}
  if files:
    result = device.read(files, tz=tz, subject_id=subject_id,
                         subject_id_pattern=subject_id_pattern, opener=opener, **chosen)
  else:  # nothing but empty optional files: no subject, no entry
    result = SourceResult(device.name, common.empty_readings(), common.empty_entries(),
                          common.empty_entries(), {}, 0, 0)
  _note_optional_empty(device, result, blank, files)
  result.check_accounting()
  return result


def _note_optional_empty(device: registry.Device, result: SourceResult,
                         blank: list[str], read: list[str]) -> None:
  """Counts the optional files that held no data: the blank ones not read, and those
  read that no reading, extra or dead letter names (a header and no rows)."""
  named = set()
  for table in (result.readings, result.extras, result.dead_letter):
    named.update(table["source"].unique())
  silent = [p for p in read if device.is_optional(p) and p not in named]
  if blank or silent:
    result.notes[OPTIONAL_EMPTY] = result.notes.get(OPTIONAL_EMPTY, 0) + len(blank + silent)
    logging.warning("%s: optional files without data, skipped: %s", device.name,
                    ", ".join(blank + silent))
