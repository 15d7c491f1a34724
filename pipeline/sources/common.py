"""What every source adapter shares: opening files, the result type, local time to UTC.

Kept apart from the adapters so that the accounting and the timezone rule are
written once and every format obeys the same ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io
import os
import re
from typing import IO, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

# Opens a path for binary reading. Beam's FileSystems.open fits, so gs:// works.
Opener = Callable[[str], IO[bytes]]

READING_COLUMNS = ("subject_id", "timestamp", "feature", "value")
# One entry of the extras or the dead-letter table. An entry covers n_rows consecutive
# input entries (rows, or cells of a wide row) of `source` starting at `row`, so a
# block of raw samples is one entry rather than thousands. `row` counts data rows
# from 1 (the header, or the E4 start/rate rows, are not counted); `field` is the
# column or event type; `raw` is the (first) raw content.
ENTRY_COLUMNS = ("source", "row", "n_rows", "subject_id", "timestamp", "field", "raw",
                 "reason")

# Reasons an entry is dead-lettered by an adapter (beyond schemas.raw.DEAD_LETTER_REASONS,
# which the adapters also use where they fit).
ADAPTER_DEAD_LETTER_REASONS = (
    "nonexistent_local_time",  # local time inside a spring-forward gap: no UTC instant
    "off_wrist",               # the export's own wear information says not worn
    "incomplete_minute",       # raw samples of a minute too sparse to derive features
    "counter_baseline",        # first reading of a cumulative counter, or after a reset/gap
    "artefact",                # beat interval rejected by artefact rejection
)


class SourceError(ValueError):
  """A file that cannot be read as its format: the message names the file and why."""


def local_open(path: str) -> IO[bytes]:
  """Opens a local file, transparently gunzipping (by magic bytes, not by name)."""
  raw = open(path, "rb")
  if raw.peek(2)[:2] == b"\x1f\x8b":
    return gzip.GzipFile(fileobj=raw)
  return raw


def read_head(path: str, opener: Opener, n_lines: int = 3) -> list[str]:
  """First lines of a file (decoded, BOM and line ends stripped) for detection."""
  with opener(path) as f:
    stream = _ungzip(f)
    lines = []
    for _ in range(n_lines):
      line = stream.readline()
      if not line:
        break
      lines.append(line.decode("utf-8-sig", errors="replace").rstrip("\r\n"))
  return lines


def read_text(path: str, opener: Opener) -> str:
  """Whole file as text; bad bytes become U+FFFD so a row can be dead-lettered, not crash."""
  with opener(path) as f:
    return _ungzip(f).read().decode("utf-8-sig", errors="replace")


def _ungzip(f: IO[bytes]) -> IO[bytes]:
  # Beam's FileSystems.open already decompresses .gz by default; a local opener may not.
  buffered = f if hasattr(f, "peek") else io.BufferedReader(f)
  head = buffered.peek(2)[:2]
  return gzip.GzipFile(fileobj=buffered) if head == b"\x1f\x8b" else buffered


def basename(path: str) -> str:
  return os.path.basename(path.rstrip("/"))


def dirname(path: str) -> str:
  return os.path.dirname(path.rstrip("/"))


def entries(source: str, rows: Iterable[int] | np.ndarray, reason: str, *,
            n_rows: Iterable[int] | np.ndarray | int = 1,
            subject_id: Iterable[str] | str = "",
            timestamp: Iterable | None = None,
            field: Iterable[str] | str = "",
            raw: Iterable[str] | str = "") -> pd.DataFrame:
  """Builds extras or dead-letter entries (ENTRY_COLUMNS), vectorised over rows."""
  rows = np.asarray(rows, dtype=np.int64).reshape(-1)
  n = len(rows)

  def column(value, dtype=object):
    if isinstance(value, (str, int)):
      return np.full(n, value, dtype=dtype)
    return np.asarray(value, dtype=dtype).reshape(-1)

  if timestamp is None:
    ts = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
  else:
    ts = pd.Series(pd.to_datetime(np.asarray(timestamp).reshape(-1), utc=True))
  return pd.DataFrame({
      "source": np.full(n, source, dtype=object),
      "row": rows,
      "n_rows": column(n_rows, np.int64),
      "subject_id": column(subject_id),
      "timestamp": ts.to_numpy() if n else ts,
      "field": column(field),
      "raw": column(raw),
      "reason": np.full(n, reason, dtype=object),
  })


def empty_entries() -> pd.DataFrame:
  return entries("", [], "")


def empty_readings() -> pd.DataFrame:
  return pd.DataFrame({
      "subject_id": pd.Series([], dtype=object),
      "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
      "feature": pd.Series([], dtype=object),
      "value": pd.Series([], dtype=np.float64),
  })


@dataclasses.dataclass
class SourceResult:
  """What an adapter returns; see pipeline/sources/__init__.py for the contract."""

  format: str
  readings: pd.DataFrame
  extras: pd.DataFrame
  dead_letter: pd.DataFrame
  provided: dict[str, frozenset[str]]
  entries_read: int
  entries_used: int
  notes: dict[str, int] = dataclasses.field(default_factory=dict)

  def check_accounting(self) -> None:
    """Raises unless every input entry is used, an extra or dead-lettered, exactly once."""
    extra = int(self.extras["n_rows"].sum())
    dead = int(self.dead_letter["n_rows"].sum())
    if self.entries_read != self.entries_used + extra + dead:
      raise AssertionError(
          f"{self.format}: entries_read {self.entries_read} != used {self.entries_used}"
          f" + extras {extra} + dead-lettered {dead}")
    unknown = set(self.readings["feature"]) - set().union(*self.provided.values(), set())
    if unknown:
      raise AssertionError(f"{self.format}: readings of features not declared provided: "
                           f"{sorted(unknown)}")

  def counts(self) -> dict[str, int]:
    """Flat counters for the manifest and Beam metrics."""
    out = {"entries_read": self.entries_read, "entries_used": self.entries_used,
           "readings": len(self.readings)}
    for name, table in (("extras", self.extras), ("dead_letter", self.dead_letter)):
      for reason, n in table.groupby("reason")["n_rows"].sum().items():
        out[f"{name}.{reason}"] = int(n)
    out.update(self.notes)
    return out


def merge_results(fmt: str, results: Sequence[SourceResult]) -> SourceResult:
  """One result from the per-file results of one export."""
  provided: dict[str, frozenset[str]] = {}
  notes: dict[str, int] = {}
  for r in results:
    for subject, feats in r.provided.items():
      provided[subject] = provided.get(subject, frozenset()) | feats
    for k, v in r.notes.items():
      notes[k] = notes.get(k, 0) + v
  return SourceResult(
      format=fmt,
      readings=_concat([r.readings for r in results], empty_readings()),
      extras=_concat([r.extras for r in results], empty_entries()),
      dead_letter=_concat([r.dead_letter for r in results], empty_entries()),
      provided=provided,
      entries_read=sum(r.entries_read for r in results),
      entries_used=sum(r.entries_used for r in results),
      notes=notes)


def _concat(frames: Sequence[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
  frames = [f for f in frames if len(f)]
  return pd.concat(frames, ignore_index=True) if frames else empty


# ------------------------------------------------------------------ local time -> UTC

_FIXED_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?$")


def parse_tz(tz: str | dt.tzinfo | None, source: str) -> dt.tzinfo:
  """A user's timezone: an IANA name ('America/New_York') or a fixed offset ('+02:00')."""
  if tz is None:
    raise SourceError(
        f"{source}: timestamps are local time without an offset; pass the recording's "
        "timezone (tz='America/New_York' or a fixed offset such as tz='+02:00')")
  if isinstance(tz, dt.tzinfo):
    return tz
  text = tz.strip()
  if text.upper() in ("UTC", "Z", "GMT"):
    return dt.timezone.utc
  m = _FIXED_OFFSET.match(text)
  if m:
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    return dt.timezone(dt.timedelta(minutes=-minutes if m.group(1) == "-" else minutes))
  try:
    import zoneinfo
    return zoneinfo.ZoneInfo(text)
  except Exception as e:  # zoneinfo raises several types for bad keys
    raise SourceError(f"{source}: unknown timezone {tz!r} ({e})") from None


@dataclasses.dataclass
class Localised:
  utc: pd.Series            # datetime64[ns, UTC]; NaT where nonexistent
  nonexistent: np.ndarray   # bool: inside a spring-forward gap
  ambiguous_first: int      # fall-back hour, first pass (earlier, daylight offset)
  ambiguous_second: int     # fall-back hour, second pass (later, standard offset)


def localise(local: pd.Series, tz: dt.tzinfo, group: np.ndarray | None = None) -> Localised:
  """Local wall-clock times (naive datetime64) to UTC by THE project rule.

  Rule (one for every adapter): within each `group` (a subject's file, in file
  order), a local time in a fall-back (repeated) hour gets the earlier, daylight
  offset, unless the clock has already gone backwards inside that repeated hour
  earlier in the same group, in which case it gets the later, standard offset.
  So an export that lists the repeated hour twice lands both copies on their true
  UTC minutes, and one that lists it once (Fitabase's fixed 1440-minute days)
  puts it on the first occurrence. A local time inside a spring-forward gap does
  not exist: it gets no UTC instant (NaT) and the caller dead-letters it as
  nonexistent_local_time, never shifted onto another minute.
  """
  naive = pd.DatetimeIndex(local)
  if not hasattr(tz, "key") and isinstance(tz, dt.timezone):
    utc = naive.tz_localize(tz).tz_convert("UTC")
    return Localised(pd.Series(utc, index=local.index), np.zeros(len(naive), bool), 0, 0)
  strict = naive.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
  as_dst = naive.tz_localize(tz, ambiguous=np.ones(len(naive), bool), nonexistent="NaT")
  nonexistent = np.asarray(as_dst.isna() & ~naive.isna())
  ambiguous = np.asarray(strict.isna() & ~as_dst.isna())
  n_amb = int(ambiguous.sum())
  if not n_amb:
    return Localised(pd.Series(as_dst.tz_convert("UTC"), index=local.index),
                     nonexistent, 0, 0)
  values = naive.asi8
  group = np.zeros(len(values), np.int64) if group is None else np.asarray(group)
  prev = np.concatenate([[values[0]], values[:-1]])
  same_group = np.concatenate([[False], group[1:] == group[:-1]])
  went_back = ambiguous & same_group & (values < prev)
  day = values // (86_400 * 10**9)
  passes = pd.Series(went_back.astype(np.int64)).groupby([group, day]).cumsum().to_numpy()
  second = ambiguous & (passes > 0)
  flags = ~second  # True = daylight (first pass)
  utc = naive.tz_localize(tz, ambiguous=flags, nonexistent="NaT").tz_convert("UTC")
  return Localised(pd.Series(utc, index=local.index), nonexistent,
                   int(n_amb - second.sum()), int(second.sum()))


def tz_notes(loc: Localised) -> dict[str, int]:
  return {"ambiguous_local_time_first": loc.ambiguous_first,
          "ambiguous_local_time_second": loc.ambiguous_second}


