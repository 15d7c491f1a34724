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

from schemas.raw import ADAPTER_REASONS, EXTRA_REASONS  # noqa: F401 (re-exported)

# Opens a path for binary reading. Beam's FileSystems.open fits, so gs:// works.
Opener = Callable[[str], IO[bytes]]

READING_COLUMNS = ("subject_id", "timestamp", "feature", "value", "source", "row")
# One entry of the extras or the dead-letter table. An entry covers n_rows consecutive
# input entries (data rows; E4 samples are rows) of `source` starting at `row`, so a
# block of raw samples is one entry rather than thousands. `row` counts data rows
# from 1 (the header, or the E4 start/rate rows, are not counted); `field` is the
# column or event type; `raw` is the (first) raw content.
ENTRY_COLUMNS = ("source", "row", "n_rows", "subject_id", "timestamp", "field", "raw",
                 "reason")

# Reasons an entry is dead-lettered by an adapter (beyond schemas.raw.DEAD_LETTER_REASONS,
# which the adapters also use where they fit), and why an entry is an extra: the
# contract's tuples, under the names the adapters use.
ADAPTER_DEAD_LETTER_REASONS = ADAPTER_REASONS


class SourceError(ValueError):
  """A file that cannot be read as its format: the message names the file and why."""


def local_open(path: str) -> IO[bytes]:
  """Opens a local file; the readers gunzip by magic bytes, whatever the opener."""
  return open(path, "rb")


def read_head(path: str, opener: Opener, n_lines: int = 3) -> list[str]:
  """First lines of a file (decoded, BOM and line ends stripped) for detection."""
  with opener(path) as f:
    stream = ungzip(f)
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
    return ungzip(f).read().decode("utf-8-sig", errors="replace")


GZIP_MAGIC = b"\x1f\x8b"


def ungzip(f: IO[bytes]) -> IO[bytes]:
  """The file's bytes, gunzipped when they start with gzip's magic bytes.

  The one gzip rule of every reader (detection, adapters, pipeline.read): the bytes
  decide, not the name, so gzip bytes in 'x.csv' and plain bytes in 'x.csv.gz' are
  both read as what they are. Open with Beam's CompressionTypes.UNCOMPRESSED so that
  nothing gunzips by name first.
  """
  buffered = f if hasattr(f, "peek") else io.BufferedReader(f)
  head = buffered.peek(2)[:2]
  return gzip.GzipFile(fileobj=buffered) if head == GZIP_MAGIC else buffered


def basename(path: str) -> str:
  return os.path.basename(path.rstrip("/"))


def dirname(path: str) -> str:
  return os.path.dirname(path.rstrip("/"))


# E4 Connect names a session's folder '<unix time>_<device id>' (1600000000_A01B2C).
E4_SESSION_FOLDER = re.compile(r"^\d{9,11}_[0-9A-Za-z]+$")
# Folders an export tool names itself, never a person: Google Takeout's
# 'Takeout/Fitbit/Global Export Data/', the Fitbit account archive's
# '<Name>/Physical Activity/' and 'user-site-export/', Apple's 'apple_health_export/'.
# subject_of looks above them.
EXPORT_LAYOUT_FOLDERS = frozenset({"global export data", "fitbit", "takeout",
                                   "physical activity", "user-site-export",
                                   "apple_health_export"})
# Fitabase file names start with the subject: 'name1_minuteStepsNarrow_...'.
FITABASE_PREFIX = re.compile(
    r"^(?P<subject>.+?)_(?:minute|fitbitWearTime|heartrate|hourly|daily|sleep|second)",
    re.I)


def subject_of(path: str, by: str, *, subject_id: str | None = None,
               pattern: str | None = None) -> str:
  """THE subject of a device file whose rows name none (E4, Garmin, Fitabase files
  without an Id column); one rule for every adapter, in this order:
    1. subject_id (--subject_id), when given: one id for the run's device exports;
    2. pattern (--subject_id_pattern), a regular expression searched in the path:
       its group 'subject', else its first group, else the whole match;
    3. the name: by='folder': the file's folder, or the folder above it when the
       folder is an E4 Connect session ('<unix time>_<device id>'), so that the
       sessions of one participant (p01/1600000000_A01B2C/) are one subject;
       folders of an export's own layout (EXPORT_LAYOUT_FOLDERS: Takeout's
       'Takeout/Fitbit/Global Export Data', Apple's 'apple_health_export') are skipped, so
       'u01/Takeout/Fitbit/Global Export Data/x.json' is 'u01';
       by='file': the Fitabase file-name prefix ('name1' in 'name1_minuteSteps...').
  Raises SourceError naming the path when the pattern does not match it or nothing
  names the subject.
  """
  if subject_id:
    return subject_id
  if pattern:
    m = re.search(pattern, path)
    if not m:
      raise SourceError(f"{path}: --subject_id_pattern '{pattern}' does not match this "
                        "path, so its subject is unknown")
    found = m.group(m.re.groupindex.get("subject") or (1 if m.re.groups else 0))
    if not found:
      raise SourceError(f"{path}: --subject_id_pattern '{pattern}' matches this path "
                        "with an empty subject")
    return found
  if by == "file":
    m = FITABASE_PREFIX.match(basename(path))
    if not m:
      raise SourceError(f"{path}: no Id column and the subject cannot be read from the "
                        "file name (expected '<subject>_minuteStepsNarrow_...'); pass "
                        "--subject_id or --subject_id_pattern")
    return m.group("subject")
  folder = dirname(path) if "://" in path else os.path.dirname(os.path.abspath(path))
  while basename(folder).lower() in EXPORT_LAYOUT_FOLDERS and basename(dirname(folder)):
    folder = dirname(folder)
  name = basename(folder)
  if E4_SESSION_FOLDER.match(name) and basename(dirname(folder)):
    name = basename(dirname(folder))
  if not name:
    raise SourceError(f"{path}: the subject cannot be read from the folder name; pass "
                      "--subject_id or --subject_id_pattern")
  return name


def entries(source: str, rows: Iterable[int] | np.ndarray, reason: str, *,
            n_rows: Iterable[int] | np.ndarray | int = 1,
            subject_id: Iterable[str] | str = "",
            timestamp: Iterable | None = None,
            field: Iterable[str] | str = "",
            raw: Iterable[str] | str = "") -> pd.DataFrame:
  """Builds extras or dead-letter entries (ENTRY_COLUMNS), vectorised over rows;
  subject_id, field, raw: one str, one per row, or a pd.Categorical (cheapest)."""
  rows = np.asarray(rows, dtype=np.int64).reshape(-1)
  n = len(rows)

  def column(value, dtype=object):
    if isinstance(value, int):
      return np.full(n, value, dtype=dtype)
    return str_column(value, n) if dtype is object else np.asarray(value, dtype).reshape(-1)

  if timestamp is None:
    ts = pd.DatetimeIndex(np.full(n, np.datetime64("NaT", "ns"))).tz_localize("UTC")
  else:
    ts = np.asarray(timestamp).reshape(-1)
    ts = (pd.DatetimeIndex(ts).as_unit("ns").tz_localize("UTC") if ts.dtype.kind == "M"
          else pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).as_unit("ns"))
  return pd.DataFrame({
      "source": str_column(source, n),
      "row": rows,
      "n_rows": column(n_rows, np.int64),
      "subject_id": column(subject_id),
      "timestamp": ts.array,
      "field": column(field),
      "raw": column(raw),
      "reason": str_column(reason, n),
  })


def empty_entries() -> pd.DataFrame:
  return entries("", [], "")


def naive_utc(utc: pd.Series) -> np.ndarray:
  """A tz-aware UTC series as naive datetime64[ns] numpy (fast; no Timestamp objects)."""
  return utc.dt.tz_convert(None).dt.as_unit("ns").to_numpy()


def readings_frame(subjects, utc_naive: np.ndarray, feature, values, source: str,
                   rows: np.ndarray) -> pd.DataFrame:
  """Canonical readings (READING_COLUMNS) from arrays; timestamps naive-UTC datetime64;
  rows: each reading's data row in `source` (the file). subjects, feature: one str
  for every reading, or one per reading (a pd.Categorical is cheapest). The frame
  takes the numpy arrays given (no copy: minute-level exports have millions of
  readings); callers pass arrays they no longer change."""
  n = len(values)
  utc = pd.DatetimeIndex(utc_naive, copy=False).as_unit("ns").tz_localize("UTC")
  return pd.DataFrame({
      "subject_id": str_column(subjects, n),
      "timestamp": utc,
      "feature": str_column(feature, n),
      "value": np.asarray(values, dtype=np.float64),
      "source": one_category(source, n),
      "row": np.asarray(rows, dtype=np.int64),
  }, copy=False)


def str_column(value, n: int):
  """A str column of n rows from one str, a pd.Categorical (both built in Arrow:
  pandas 3 turns an object column into Arrow strings through one Python str per
  row, ~50 B/row more at the peak, and a minute-level export has millions of
  readings) or one str per row."""
  if isinstance(value, str):
    value = pd.Categorical.from_codes(np.zeros(n, np.int8), [value])
  if not isinstance(value, pd.Categorical):
    return np.asarray(value, dtype=object).reshape(-1)
  import pyarrow as pa
  # large_string: pandas' str dtype's own layout, so pd.array does not copy it again.
  arrow = pa.DictionaryArray.from_arrays(
      pa.array(value.codes), pa.array(list(value.categories), pa.large_string())
  ).cast(pa.large_string())
  return pd.array(arrow, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def one_category(value: str, n: int) -> pd.Categorical:
  """n copies of one string as a categorical: a file's path on each of its readings,
  without a million-string column (pandas 3 would build an Arrow string per row)."""
  return pd.Categorical.from_codes(np.zeros(n, np.int8), [value])


def empty_readings() -> pd.DataFrame:
  return readings_frame([], np.zeros(0, "datetime64[ns]"), [], [], "", [])


def derived_readings(subject_id: str, frame: pd.DataFrame, source: str, t_s: np.ndarray,
                     rows: np.ndarray) -> pd.DataFrame:
  """Readings of a per-minute frame derived from the samples (t_s seconds, UTC; their
  data rows in `source`). A reading's row is the first row of its minute's samples,
  or, for a minute without samples (a counter's increment spread back), of the next
  sample: the row a user opens to see where the value came from."""
  from pipeline.derive import minute_of, to_readings
  out = to_readings(subject_id, frame)
  minute = minute_of(t_s)
  order = np.lexsort((rows, minute))
  want = out["timestamp"].dt.as_unit("ns").astype("int64").to_numpy() // 60_000_000_000
  at = np.minimum(np.searchsorted(minute[order], want), max(len(order) - 1, 0))
  out["source"] = one_category(source, len(out))
  out["row"] = np.asarray(rows, np.int64)[order][at] if len(order) else np.zeros(0, np.int64)
  return out


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
    from schemas.raw import DEAD_LETTER_REASONS
    dead_reasons = DEAD_LETTER_REASONS + ADAPTER_DEAD_LETTER_REASONS
    for table, known in ((self.extras, EXTRA_REASONS), (self.dead_letter, dead_reasons)):
      odd = set(table["reason"].unique()) - set(known)
      if odd:
        raise AssertionError(f"{self.format}: undeclared reasons {sorted(odd)}")
    if self.readings["value"].isna().any():
      raise AssertionError(f"{self.format}: NaN readings (missing must be absent)")
    unknown = (set(self.readings["feature"].unique())
               - set().union(*self.provided.values(), set()))
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
      readings=_concat(_same_sources([r.readings for r in results]), empty_readings()),
      extras=_concat([r.extras for r in results], empty_entries()),
      dead_letter=_concat([r.dead_letter for r in results], empty_entries()),
      provided=provided,
      entries_read=sum(r.entries_read for r in results),
      entries_used=sum(r.entries_used for r in results),
      notes=notes)


def _same_sources(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
  """Readings frames whose `source` categoricals share one category list, so that
  concatenating them keeps the column categorical."""
  files = pd.CategoricalDtype(sorted({c for f in frames for c in f["source"].cat.categories}))
  return [f.assign(source=f["source"].astype(files)) for f in frames]


def _concat(frames: Sequence[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
  frames = [f for f in frames if len(f)]
  return pd.concat(frames, ignore_index=True) if frames else empty


def one_subject(paths: Sequence[str], by: str, *, subject_id: str | None = None,
                pattern: str | None = None) -> str:
  """subject_of for a single-subject export (an E4 session, a Garmin folder): every
  file must name the same subject; a SourceError names two that disagree."""
  first = subject_of(paths[0], by, subject_id=subject_id, pattern=pattern)
  for p in paths[1:]:
    other = subject_of(p, by, subject_id=subject_id, pattern=pattern)
    if other != first:
      raise SourceError(f"{paths[0]} and {p}: one export names two subjects "
                        f"({first!r}, {other!r})")
  return first


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
  utc: pd.Series            # datetime64[ns, UTC]; NaT where nonexistent or unresolved
  nonexistent: np.ndarray   # bool: inside a spring-forward gap
  ambiguous_first: int      # fall-back hour, first pass (earlier, daylight offset)
  ambiguous_second: int     # fall-back hour, second pass (later, standard offset)
  unresolved: np.ndarray    # bool: in a fall-back hour whose passes the order cannot tell


def localise(local: pd.Series, tz: dt.tzinfo, group: np.ndarray | None = None) -> Localised:
  """Local wall-clock times (naive datetime64) to UTC by THE project rule.

  Rule (one for every adapter), the same whether a `group` (a subject's rows, in
  file order) is listed oldest first or newest first. The direction is the order
  of the group's rows outside the repeated (fall-back) hour on that local day;
  with no such rows to tell, oldest first unless only newest first fits the
  hour's rows. Read in that direction,
  the rows inside the repeated hour of one day either never go back (the hour is
  listed once, Fitabase's fixed 1440-minute days: every row takes the first pass,
  the earlier, daylight offset), or go back once (the hour is listed twice: the
  rows before the jump in time order are the first pass, those after it the
  second, standard-offset pass). Where the order cannot tell the passes apart
  (rows shuffled: the day's other rows are not in one order, or the hour's rows
  go back more than once), the day's repeated-hour rows are `unresolved`: no UTC instant, and
  the caller dead-letters them as ambiguous_local_time, never merged onto one hour.
  A local time inside a spring-forward gap does not exist: it gets no UTC instant
  (NaT) and the caller dead-letters it as nonexistent_local_time, never shifted
  onto another minute.
  """
  naive = pd.DatetimeIndex(local)
  none = np.zeros(len(naive), bool)
  if isinstance(tz, dt.timezone):
    utc = naive.tz_localize(tz).tz_convert("UTC")
    return Localised(pd.Series(utc, index=local.index), none, 0, 0, none)
  strict = naive.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
  as_dst = naive.tz_localize(tz, ambiguous=np.ones(len(naive), bool), nonexistent="NaT")
  nonexistent = np.asarray(as_dst.isna() & ~naive.isna())
  ambiguous = np.asarray(strict.isna() & ~as_dst.isna())
  n_amb = int(ambiguous.sum())
  if not n_amb:
    return Localised(pd.Series(as_dst.tz_convert("UTC"), index=local.index),
                     nonexistent, 0, 0, none)
  group = np.zeros(len(naive), np.int64) if group is None else pd.factorize(group)[0]
  second, unresolved = _fall_back_passes(naive.asi8, group, ambiguous, ~naive.isna())
  utc = naive.tz_localize(tz, ambiguous=~second, nonexistent="NaT").tz_convert("UTC")
  utc = utc.where(~unresolved)
  return Localised(pd.Series(utc, index=local.index), nonexistent,
                   int(n_amb - second.sum() - unresolved.sum()), int(second.sum()),
                   unresolved)


def _fall_back_passes(values: np.ndarray, group: np.ndarray, ambiguous: np.ndarray,
                      valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(second pass, unresolved), bool per row, by localise's rule; vectorised over the
  (group, local day)s that hold repeated-hour rows."""
  day = values // (86_400 * 10**9)
  seg = np.full(len(values), -1, np.int64)
  seg[valid] = pd.factorize(pd.MultiIndex.from_arrays([group[valid], day[valid]]))[0]
  plain = valid & ~ambiguous
  up_steps, down_steps = _steps(values[plain], seg[plain], int(seg.max()) + 1)
  direction = np.sign(up_steps - down_steps)
  ordered = np.minimum(up_steps, down_steps) == 0  # shuffled rows tell nothing
  at = np.flatnonzero(ambiguous)
  at = at[np.argsort(seg[at], kind="stable")]  # by (group, day), listing order kept
  s = seg[at]
  step = pd.Series(values[at]).groupby(s).diff().to_numpy()
  back, ahead = pd.Series(step < 0).groupby(s), pd.Series(step > 0).groupby(s)
  n_back, n_ahead = back.transform("sum").to_numpy(), ahead.transform("sum").to_numpy()
  # Oldest first: second pass from the backward jump on. Newest first: the rows
  # before the forward jump (listed first, they are the later pass).
  second_up = back.cumsum().to_numpy() > 0
  second_down = (ahead.cumsum().to_numpy() == 0) & (n_ahead == 1)
  up_ok, down_ok = n_back <= 1, n_ahead <= 1
  d = direction[s]
  up = (d > 0) | ((d == 0) & up_ok)  # no rows to tell: oldest first if it fits
  ok = ordered[s] & np.where(up, up_ok, down_ok)
  second = np.zeros(len(values), bool)
  unresolved = np.zeros(len(values), bool)
  second[at] = np.where(up, second_up, second_down) & ok
  unresolved[at] = ~ok
  return second, unresolved


def _steps(values: np.ndarray, seg: np.ndarray, n_segs: int) -> tuple[np.ndarray, np.ndarray]:
  """Per segment: how many consecutive rows (listing order) go forward, and back."""
  same = seg[1:] == seg[:-1]
  step = np.diff(values)[same]
  where = seg[1:][same]
  return (np.bincount(where[step > 0], minlength=n_segs),
          np.bincount(where[step < 0], minlength=n_segs))


def tz_notes(loc: Localised) -> dict[str, int]:
  return {"ambiguous_local_time_first": loc.ambiguous_first,
          "ambiguous_local_time_second": loc.ambiguous_second}




# ------------------------------------------------------------------ text rows

@dataclasses.dataclass
class Rows:
  """The data rows of a delimited text file, split; malformed rows already set aside."""

  header: list[str] | None
  fields: pd.DataFrame      # one str column per field (0..n-1), index = data row number
  malformed: pd.DataFrame   # dead-letter entries (malformed_row)
  n_rows: int               # data rows read (blank lines are not rows)


def split_rows(text: str, source: str, *, sep: str = ",", header: bool = True,
               n_fields: int | None = None) -> Rows:
  """Splits delimited text into string fields (pyarrow's C reader); rows with the wrong
  field count are set aside as malformed_row.

  Data rows are numbered from 1 after the header. Blank lines carry nothing and are
  not counted.
  """
  import pyarrow as pa
  import pyarrow.csv as pacsv
  data = text.encode("utf-8")
  bad: list[tuple[int, str]] = []

  def on_invalid(row) -> str:
    bad.append((row.number, row.text))
    return "skip"

  if header:
    first = text.split("\n", 1)[0].rstrip("\r")
    if not first.strip():
      raise SourceError(f"{source}: empty first line, expected a header")
    head = [h.strip() for h in first.split(sep)]
    names = [str(i) for i in range(len(head))]
    skip = 1
  else:
    if n_fields is None:
      raise SourceError(f"{source}: number of fields unknown")
    head, names, skip = None, [str(i) for i in range(n_fields)], 0
    if not text.strip():  # no data rows (E4's IBI.csv without beats); pyarrow refuses ''
      fields = pd.DataFrame({i: pd.Series([], dtype=object) for i in range(n_fields)})
      return Rows(head, fields.set_axis(np.zeros(0, np.int64)), empty_entries(), 0)
  try:
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(use_threads=False, column_names=names,
                                       skip_rows=skip, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(delimiter=sep, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=False,
            quoted_strings_can_be_null=False))
  except pa.ArrowInvalid as e:
    raise SourceError(f"{source}: cannot be read as delimited text ({e})") from None
  n_rows = table.num_rows + len(bad)
  # pyarrow numbers rows from 1 counting the skipped header row.
  bad_rows = np.array([number - skip for number, _ in bad], dtype=np.int64)
  good_rows = np.setdiff1d(np.arange(1, n_rows + 1), bad_rows, assume_unique=True)
  import pyarrow.compute as pc
  fields = pa.table([pc.utf8_trim_whitespace(c) for c in table.columns],
                    names=names).to_pandas()
  fields.columns = range(len(names))
  fields.index = good_rows
  malformed = entries(source, bad_rows, "malformed_row",
                      raw=np.array([t[:200] for _, t in bad], dtype=object))
  return Rows(head, fields, malformed, n_rows)


_US_TIME = re.compile(r"^(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4}) "
                      r"(?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2}) "
                      r"(?P<ampm>[AaPp][Mm])$")


def parse_local_times(values: pd.Series) -> pd.Series:
  """Fitbit/Fitabase local times: US '11/26/2021 12:00:00 AM' or ISO 'YYYY-MM-DD HH:MM:SS'.

  The style is chosen per file from its first value, so one odd row is a
  bad_timestamp rather than silently parsed another way. Naive, ns. The US style
  is split by one regex in Arrow and assembled by pandas (5x faster than strptime).
  """
  first = str(values.iloc[0]).strip() if len(values) else ""
  if not _US_TIME.match(first):
    return pd.to_datetime(values, format="ISO8601", errors="coerce").dt.as_unit("ns")
  import pyarrow as pa
  import pyarrow.compute as pc
  parts = pc.extract_regex(pa.array(values.astype(object), pa.string()), _US_TIME.pattern)
  num = {name: pc.cast(pc.struct_field(parts, name), pa.float64()).to_numpy(zero_copy_only=False)
         for name in ("year", "month", "day", "hour", "minute", "second")}
  pm = np.asarray(pc.utf8_upper(pc.struct_field(parts, "ampm")).to_pandas(), dtype=object) == "PM"
  hour = num["hour"]
  num["hour"] = np.where((hour >= 1) & (hour <= 12), hour % 12 + 12 * pm, np.nan)
  out = pd.to_datetime(pd.DataFrame(num), errors="coerce")
  out.index = values.index
  return out.dt.as_unit("ns")


def numbers(values: pd.Series) -> pd.Series:
  return pd.to_numeric(values, errors="coerce").astype(np.float64)

_NON_FINITE = ("nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity",
               "-infinity")


def classify_values(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
  """Parses numbers; returns (values, reason) with reason '' for good values,
  'non_numeric' or 'non_finite' otherwise (schemas.raw's reading reasons)."""
  values = numbers(raw).to_numpy()
  bad = ~np.isfinite(values)
  reason = np.full(len(values), "", dtype=object)
  if bad.any():
    lowered = raw.str.strip().str.lower().to_numpy()
    non_finite = bad & np.isin(lowered, _NON_FINITE)
    reason[bad] = "non_numeric"
    reason[non_finite] = "non_finite"
  return values, reason


def out_of_range(feature: str, values: np.ndarray) -> np.ndarray:
  """True where a sample is outside the feature's physical range (a device fault)."""
  from schemas.features import FEATURES, FEATURE_INDEX
  lo, hi = FEATURES[FEATURE_INDEX[feature]].valid_range
  return (values < lo) | (values > hi)


def reason_entries(source: str, reason: np.ndarray, rows: np.ndarray, *,
                   subject_id=None, timestamp=None, field="", raw="") -> pd.DataFrame:
  """Entries (one per row) for the rows whose reason is not '' (vectorised)."""
  reason = np.asarray(reason, dtype=object)
  pick = reason != ""
  if not pick.any():
    return empty_entries()

  def sub(v):
    if v is None or isinstance(v, str):
      return v if v is not None else ""
    return np.asarray(v)[pick]

  out = entries(source, np.asarray(rows)[pick], "", subject_id=sub(subject_id),
                timestamp=None if timestamp is None else sub(timestamp),
                field=sub(field), raw=sub(raw))
  out["reason"] = reason[pick]
  return out


def range_entries(source: str, rows: np.ndarray, reason: str, *, subject_id: str = "",
                  field: str = "", raw: np.ndarray | None = None,
                  timestamp: np.ndarray | None = None) -> pd.DataFrame:
  """Entries for many rows, one per run of consecutive row numbers (blocks of samples).

  raw/timestamp, if given, are per row (aligned with `rows`); each run keeps its first.
  """
  rows = np.asarray(rows, np.int64)
  if not len(rows):
    return empty_entries()
  order = np.argsort(rows, kind="stable")
  rows = rows[order]
  starts = np.flatnonzero(np.concatenate([[True], np.diff(rows) != 1]))
  lengths = np.diff(np.concatenate([starts, [len(rows)]]))
  return entries(source, rows[starts], reason, n_rows=lengths, subject_id=subject_id,
                 field=field,
                 raw="" if raw is None else np.asarray(raw, dtype=object)[order][starts],
                 timestamp=None if timestamp is None else np.asarray(timestamp)[order][starts])


def unused_sample_entries(source: str, rows: np.ndarray, t_s: np.ndarray,
                          frame: pd.DataFrame, *, subject_id: str, field: str,
                          ) -> tuple[int, pd.DataFrame]:
  """Samples whose minute produced no derived value: (n used, incomplete_minute entries)."""
  from pipeline.derive import minute_of
  produced = frame.index[np.isfinite(frame.to_numpy(np.float64)).any(axis=1)]
  used = np.isin(minute_of(t_s), produced.to_numpy())
  dead = range_entries(source, rows[~used], "incomplete_minute", subject_id=subject_id,
                       field=field,
                       timestamp=pd.to_datetime(t_s[~used], unit="s").as_unit("ns").to_numpy())
  return int(used.sum()), dead


def provided_mask(features: Iterable[str]) -> np.ndarray:
  """bool[26] in LSM order: True for the features a subject's source provides.

  What the window code needs for issue 7's rule: missing ratio over provided
  features = missing cells in provided columns / (T * provided count).
  """
  from schemas.features import FEATURE_INDEX, FEATURE_NAMES
  mask = np.zeros(len(FEATURE_NAMES), bool)
  for name in features:
    mask[FEATURE_INDEX[name]] = True
  return mask
