"""Which format a file is, from what the device registry declares; never a guess.

Every format is a `registry.Device` (pipeline/sources/registry.py) whose `detect`
looks at one thing the format always has (a header, E4's file names and preamble,
Garmin's 'ISO-time;TYPE;value' lines, a zip's or an XML root's first bytes). Each
file is read once into a `registry.Sniff` (its first SNIFF_LINES lines gunzipped,
and its first SNIFF_BYTES raw bytes) and offered to every device's rule. A file no
rule accepts, or more than one rule accepts, is an error naming the file, so a new
export never slips through under the wrong reader. `--format` (read_source's
format=) skips detection. A file with no bytes (after gunzipping) is an
EmptyFileError, not an unknown format, unless its name is an optional file of
exactly one device (registry.Device.optional, E4's tags.csv): then it belongs to
that device's export, which skips and counts it.

Adding a format is writing its module (registry's docstring); nothing here changes.
"""

from __future__ import annotations

import io
import os

from absl import logging

from pipeline.sources import common, registry
from schemas.features import normalise_alias

SNIFF_LINES = 8    # lines a rule may look at (an XML root after its DOCTYPE line)
SNIFF_BYTES = 8    # raw bytes a rule may look at (b'PK\x03\x04': a zip)
MAX_LINE = 1 << 16  # bytes read per line: a binary file without line ends stays cheap


class EmptyFileError(common.SourceError):
  """A file with no bytes (or only line ends) that no format rule accepts."""


def sniff(path: str, opener: common.Opener = common.local_open) -> registry.Sniff:
  """One read of the file's start: what every device's rule sees (registry.Sniff).

  lines is [] for a file whose first lines hold a NUL byte (a zip, any binary file).
  """
  with opener(path) as f:
    buffered = f if hasattr(f, "peek") else io.BufferedReader(f)
    magic = buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    stream = common.ungzip(buffered)
    raw = [stream.readline(MAX_LINE) for _ in range(SNIFF_LINES)]
  raw = [line for line in raw if line]
  if any(b"\x00" in line for line in raw):
    return registry.Sniff(path, [], magic, text=False)
  lines = [line.decode("utf-8-sig" if i == 0 else "utf-8", errors="replace")
           .rstrip("\r\n") for i, line in enumerate(raw)]
  return registry.Sniff(path, lines, magic)


def is_empty(found: registry.Sniff) -> bool:
  """No bytes (gunzipped), or only line ends; a binary file is not empty."""
  return found.text and not any(line.strip() for line in found.lines)


def detect(path: str, *, opener: common.Opener = common.local_open) -> str:
  """The format name of one file (or of a device's export folder); logs why.

  Raises SourceError naming the file when no device or several accept it
  (EmptyFileError for a file with no bytes that is no device's optional file).
  """
  if os.path.isdir(path):
    device, members = registry.folder_device(path, sorted(os.listdir(path)))
    for name in members:
      found = detect(os.path.join(path, name), opener=opener)
      if found != device.name:
        raise common.SourceError(f"{path}: a {device.name} folder holding "
                                 f"{name}, a {found} file")
    logging.info("%s: detected %s (folder with %s)", path, device.name,
                 ", ".join(members))
    return device.name
  return classify(sniff(path, opener))


def candidates(found: registry.Sniff) -> list[str]:
  """The formats whose rule accepts the file; for an empty file (no rule takes it),
  the one device whose optional files its name matches (Device.optional)."""
  matches = [d.name for d in registry.devices().values() if d.detect(found)]
  if not matches and is_empty(found):
    owners = [d.name for d in registry.devices().values() if d.is_optional(found.path)]
    return owners if len(owners) == 1 else []
  return matches


def classify(found: registry.Sniff) -> str:
  """The format of a sniffed file (candidates); logs why. Raises SourceError naming
  the file when no format or several accept it, EmptyFileError when it is empty."""
  path, matches = found.path, candidates(found)
  known = registry.devices()
  if len(matches) == 1:
    why = "an empty optional file" if is_empty(found) else known[matches[0]].looks_for
    logging.info("%s: detected %s (%s)", path, matches[0], why)
    return matches[0]
  if matches:
    raise common.SourceError(f"{path}: ambiguous format, matches {', '.join(matches)}; "
                             "pass --format to choose")
  if is_empty(found):
    raise EmptyFileError(f"{path}: empty file (no bytes, or only blank lines)")
  raise common.SourceError(f"{path}: unknown format ({_first(found)}); supported: "
                           f"{', '.join(known)}. " + _advice(found))


def _first(found: registry.Sniff) -> str:
  if found.lines:
    return f"first line {found.lines[0][:120]!r}"
  return f"not text, first bytes {found.magic!r}"


def _advice(found: registry.Sniff) -> str:
  hint = delimiter_hint(found.lines[0]) if found.lines else ""
  if hint:
    return f"It splits on another separator: {hint}"
  names = {normalise_alias(c) for c in found.lines[0].split(",")} if found.lines else set()
  if "timestamp" in names and "subject_id" not in names:
    return ("Its header has a timestamp column but no subject_id column: a canonical "
            "table needs one (schemas/raw.py), one id per row")
  return "Convert it to the canonical long format (schemas/raw.py) or pass --format"


def delimiter_hint(line: str) -> str:
  """'pass --csv_delimiter X' for a header that names subject_id and timestamp when
  split on X (';', tab, '|'), as European spreadsheets write it; else ''."""
  for sep in (";", "\t", "|"):
    if {"subject_id", "timestamp"} <= {normalise_alias(c) for c in line.split(sep)}:
      return f"pass --csv_delimiter {sep!r}"
  return ""
