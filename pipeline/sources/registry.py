"""The device registry: every export format lsm-pipeline reads is one module here.

A format is one `Device` declared as `DEVICE` (or several as `DEVICES`) at the top
level of a module under pipeline/sources/. `devices()` finds them by walking the
package, so adding a device is writing one module: detection (`detect`),
`--format` choices, `--help`, the per-device options and the README table all come
from these declarations. Third-party formats can register the same way from their
own package through the `lsm_pipeline.devices` entry-point group (the entry point
names a module that declares DEVICE or DEVICES).

Adding a device: write pipeline/sources/<name>.py with a reader
`read(paths, *, tz, subject_id, subject_id_pattern, opener, **options) ->
common.SourceResult` and a top-level
  DEVICE = registry.Device(name=..., looks_for=..., detect=..., read=...,
                           needs_tz=..., subject_rule=..., example=...,
                           options=(...), folder_file=..., optional=(...))
Nothing else changes: tests/pipeline/sources/test_registry.py proves it with a
device written as one module in a temporary folder. Then re-render the README's
device table (print registry.markdown_table() between README.md's
devices:begin/end markers; a test compares them).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import importlib
import importlib.metadata
import pkgutil
from typing import Callable, Sequence

from pipeline.sources.common import SourceError

ENTRY_POINT_GROUP = "lsm_pipeline.devices"


@dataclasses.dataclass(frozen=True)
class Sniff:
  """What detection sees of one input, read once per file.

  path: the input's path (or URL); rules may look at its name.
  lines: up to the first 8 lines of text, gunzipped, BOM stripped, line ends
    removed, a line longer than 64 KiB cut there (its rest is the next line);
    [] for a file with no bytes or one that is not text (a zip).
  magic: the first 8 raw bytes (before gunzipping), e.g. b'PK\\x03\\x04' for a zip.
  text: False for a binary file (a NUL byte in its first lines, gunzipped).
  """
  path: str
  lines: Sequence[str]
  magic: bytes = b""
  text: bool = True


@dataclasses.dataclass(frozen=True)
class Option:
  """A command-line option that only one device reads (added to lsm-pipeline's
  flags as --<name>; its value reaches the device's `read` as keyword `name`)."""
  name: str
  default: str | None
  help: str


@dataclasses.dataclass(frozen=True)
class Device:
  """One export format.

  name: the --format value and the manifest's counts.sources.<name> key.
  looks_for: what detection checks, in words (errors, --help, README table).
  detect: Sniff -> bool; by content (a header, a root element, magic bytes), not
    only the file name. Rules of different devices must not both accept one file
    (an ambiguous file is an error naming it).
  read: (paths, *, tz, subject_id, subject_id_pattern, opener, **options) ->
    common.SourceResult, for one export (the files of one folder of this format);
    None for formats read by lsm-pipeline's canonical reader.
  needs_tz: the format writes local times without an offset, so --tz is required
    (no guess); formats with absolute times ignore --tz and say so in the log.
  subject_rule: how the subject is identified, in words (common.subject_of is the
    one rule; this says what it finds for this format).
  example: one lsm-pipeline command reading such an export (README, --help).
  options: device-specific flags (Option), passed to `read` by name.
  folder_file: for a device whose export is a folder (an E4 session): which file
    names in a folder belong to it; a folder input stands for those files.
  optional: file-name patterns (fnmatch, on the base name, e.g. 'IBI.csv*',
    'altitude-*.json') of files an export may hold without data (E4 writes IBI.csv
    with its header only when it found no beats). Such a file that is empty, or
    that yields no entry, is skipped and counted
    (counts.sources.<name>.optional_files_empty) instead of refusing the export;
    an empty one is detected as this device's by its name alone.
  """
  name: str
  looks_for: str
  detect: Callable[[Sniff], bool]
  read: Callable[..., object] | None
  needs_tz: bool = False
  subject_rule: str = ""
  example: str = ""
  options: tuple[Option, ...] = ()
  folder_file: Callable[[str], bool] | None = None
  optional: tuple[str, ...] = ()

  def is_optional(self, path: str) -> bool:
    """Whether `path`'s base name matches one of `optional`'s patterns."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.optional)


def _declared(module) -> list[Device]:
  """The devices a module declares (DEVICE and/or DEVICES), in declaration order."""
  found = list(getattr(module, "DEVICES", ()))
  if hasattr(module, "DEVICE"):
    found.append(module.DEVICE)
  return found


@functools.cache
def devices(package: str = "pipeline.sources") -> dict[str, Device]:
  """name -> Device for every module of `package` and every registered entry point:
  the canonical formats (read None) first, then the devices in module-name order.

  Cached (the package is walked once per process); devices.cache_clear() forgets it.
  Raises ValueError when two modules declare one name (a second reader for a format
  would silently win otherwise), or two devices one option name with another default.
  """
  pkg = importlib.import_module(package)
  modules = [importlib.import_module(f"{package}.{m.name}")
             for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)]
  modules += [ep.load() for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
  found: dict[str, Device] = {}
  for module in modules:
    for declared in _declared(module):
      if declared.name in found:
        raise ValueError(f"device format {declared.name!r} declared twice "
                         f"(second in {module.__name__})")
      found[declared.name] = declared
  ordered = sorted(found.values(), key=lambda d: d.read is not None)  # stable
  _check_options(ordered)
  return {d.name: d for d in ordered}


def _check_options(declared: list[Device]) -> None:
  """Two devices may share a flag (one value for both) only with one default."""
  seen: dict[str, Option] = {}
  for one in declared:
    for option in one.options:
      other = seen.setdefault(option.name, option)
      if other.default != option.default:
        raise ValueError(f"option --{option.name} declared with defaults "
                         f"{other.default!r} and {option.default!r}")


def formats() -> tuple[str, ...]:
  """Every format name: --format's device choices, detection's candidates."""
  return tuple(devices())


def options() -> dict[str, Option]:
  """name -> Option: every device's own flags (a shared name once)."""
  return {o.name: o for d in devices().values() for o in d.options}


def folder_device(folder: str, names: Sequence[str]) -> tuple[Device, list[str]]:
  """The device whose export is the folder `folder` holding `names` (base names), and
  the names that belong to it (a folder input stands for those files).

  Raises SourceError naming the folder when no device's folder_file takes a name, or
  when files of two such devices share it (pass the files instead).
  """
  claims = {}
  for candidate in devices().values():
    if candidate.folder_file is not None:
      members = [n for n in names if candidate.folder_file(n)]
      if members:
        claims[candidate.name] = (candidate, members)
  if len(claims) == 1:
    return claims.popitem()[1]
  kinds = [d for d in devices().values() if d.folder_file is not None]
  if not claims:
    raise SourceError(f"{folder}: a folder, but not the export folder of "
                      + " or ".join(f"{d.name} ({d.looks_for})" for d in kinds)
                      + "; pass its files or a glob")
  raise SourceError(f"{folder}: a folder holding files of {', '.join(claims)}; "
                    "pass its files or a glob")


COLUMNS = ("format", "detected by", "needs --tz", "subject identity", "example command")


def markdown_table() -> str:
  """The README's device table (Markdown, one row per format, a trailing newline)."""
  def cell(text: str) -> str:  # '<' would start an HTML tag, '|' a cell
    return text.replace("|", "\\|").replace("<", "\\<").replace("\n", " ")
  lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  for d in devices().values():
    tz = "yes" if d.needs_tz else ("times without offset" if d.read is None else "no")
    example = "`" + d.example.replace("|", "\\|") + "`" if d.example else ""
    lines.append("| " + " | ".join([f"`{d.name}`", cell(d.looks_for), tz,
                                    cell(d.subject_rule), example]) + " |")
  return "\n".join(lines) + "\n"
