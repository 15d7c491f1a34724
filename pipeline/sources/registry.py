"""The device registry: every export format lsm-pipeline reads is one module here.

A format is one `Device` declared as `DEVICE` (or several as `DEVICES`) at the top
level of a module under pipeline/sources/. `devices()` finds them by walking the
package, so adding a device is writing one module: detection (`detect`),
`--format` choices, `--help`, the per-device options and the README table all come
from these declarations. Third-party formats can register the same way from their
own package through the `lsm_pipeline.devices` entry-point group (the entry point
names a module that declares DEVICE or DEVICES).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import pkgutil
from typing import Callable, Sequence

ENTRY_POINT_GROUP = "lsm_pipeline.devices"


@dataclasses.dataclass(frozen=True)
class Sniff:
  """What detection sees of one input, read once per file.

  path: the input's path (or URL); rules may look at its name.
  lines: up to the first 8 lines of text, gunzipped, BOM stripped, line ends
    removed; [] for a file with no bytes or one that is not text (a zip).
  magic: the first 8 raw bytes (before gunzipping), e.g. b'PK\\x03\\x04' for a zip.
  """
  path: str
  lines: Sequence[str]
  magic: bytes = b""


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


def _declared(module) -> list[Device]:
  """The devices a module declares (DEVICE and/or DEVICES), in declaration order."""
  found = list(getattr(module, "DEVICES", ()))
  if hasattr(module, "DEVICE"):
    found.append(module.DEVICE)
  return found


def devices(package: str = "pipeline.sources") -> dict[str, Device]:
  """name -> Device for every module of `package` and every registered entry point.

  Raises ValueError when two modules declare one name (a second reader for a format
  would silently win otherwise).
  """
  pkg = importlib.import_module(package)
  modules = [importlib.import_module(f"{package}.{m.name}")
             for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)]
  modules += [ep.load() for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
  found: dict[str, Device] = {}
  for module in modules:
    for device in _declared(module):
      if device.name in found:
        raise ValueError(f"device format {device.name!r} declared twice "
                         f"(second in {module.__name__})")
      found[device.name] = device
  return found
