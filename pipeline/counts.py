"""Counts that reconcile: every stage emits dicts of counts; one global sum goes to the manifest.

Counts travel as PCollection elements (not only Beam metrics) so that the manifest is
written inside the pipeline on every runner; each increment also feeds a Beam
metrics counter of the same name for live monitoring.

The readers also name their input (a canonical file, or a device export's folder)
in the counts they emit (key SOURCE), so that the counts can be summed per input
too (SumBySource) and a run that lost a whole file, or more than
--max_dead_letter_fraction of its rows and entries, fails naming the file(s), the
top reasons and an example raw value of each (run_failures, RunFailed). The
examples come from the dead letters themselves (FirstExamples: the lowest row of
each input and reason), so the readers need no extra output.
"""

from __future__ import annotations

import collections
import json

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas.features import normalise_alias

COUNTS = "counts"
DEAD_LETTER = "dead_letter"
SOURCE = "source"  # the input (file or export folder) a counts element belongs to
MAX_DEAD_LETTER_FRACTION = 0.5
EXAMPLE_CHARS = 80
TOP_REASONS = 3
# Readings whose value itself is bad: counted against --max_dead_letter_fraction like
# rows (unknown features, duplicates and HRV gating are not a broken value).
BAD_VALUE_REASONS = ("non_numeric", "non_finite", "out_of_range")


def emit(counts: dict, source: str | None = None) -> beam.pvalue.TaggedOutput:
  """A tagged counts element (of input `source` when given); also increments the
  matching Beam counters."""
  for name, value in counts.items():
    if value:
      Metrics.counter("lsm", name).inc(int(value))
  out = {k: int(v) for k, v in counts.items() if v}
  if source is not None:
    out[SOURCE] = source
  return beam.pvalue.TaggedOutput(COUNTS, out)


class SumCounts(beam.CombineFn):
  def create_accumulator(self):
    return collections.Counter()

  def add_input(self, accumulator, counts):
    accumulator.update({k: v for k, v in counts.items() if k != SOURCE})
    return accumulator

  def merge_accumulators(self, accumulators):
    total = collections.Counter()
    for accumulator in accumulators:
      total.update(accumulator)
    return total

  def extract_output(self, accumulator):
    return dict(sorted(accumulator.items()))


class SumBySource(beam.CombineFn):
  """Counts elements -> {source: {name: total}} over the elements that name an input."""

  def create_accumulator(self):
    return {}

  def add_input(self, accumulator, counts):
    source = counts.get(SOURCE)
    if source is not None:
      accumulator.setdefault(source, collections.Counter()).update(
          {k: v for k, v in counts.items() if k != SOURCE})
    return accumulator

  def merge_accumulators(self, accumulators):
    out = {}
    for accumulator in accumulators:
      for source, total in accumulator.items():
        out.setdefault(source, collections.Counter()).update(total)
    return out

  def extract_output(self, accumulator):
    return {s: dict(sorted(c.items())) for s, c in sorted(accumulator.items())}


def example(entry: dict) -> str:
  """The raw value that shows a dead letter's reason: the timestamp cell of a
  bad_timestamp row, the cell of a bad reading, the first undecodable cell of a
  malformed row (parse decodes it with U+FFFD for the bytes that are not UTF-8), else
  the raw content; shortened."""
  raw = entry.get("raw")
  if isinstance(raw, dict):
    undecodable = next((k for k, v in raw.items() if isinstance(v, str) and "\ufffd" in v),
                       None) if entry.get("reason") == "malformed_row" else None
    if undecodable is not None:
      raw = f"not UTF-8 in column {undecodable}: {raw[undecodable]}"
    elif entry.get("reason") == "bad_timestamp":
      raw = next((v for k, v in raw.items() if normalise_alias(k) == "timestamp"), raw)
    elif "reading" in raw:  # wide: the reading's column; long: the feature cell
      name = raw["reading"]
      if entry.get("reason") == "unknown_feature":
        raw = f"column {name}" if name in raw else f"feature {name}"
      else:
        raw = raw.get(name, raw.get("value", raw))
    elif "value" in raw:
      raw = raw["value"]
  text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
  return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS - 3] + "..."


class FirstExamples(beam.CombineFn):
  """Dead-letter JSON lines -> {source: {reason: (row, example)}}, the lowest row of each.

  The lowest row (not the first to arrive) keeps the choice independent of bundling.
  """

  def create_accumulator(self):
    return {}

  def add_input(self, accumulator, line):
    entry = json.loads(line)
    key = (entry.get("source"), entry.get("reason"))
    row = entry.get("row")
    row = -1 if row is None else int(row)
    if key not in accumulator or row < accumulator[key][0]:
      accumulator[key] = (row, example(entry))
    return accumulator

  def merge_accumulators(self, accumulators):
    out = {}
    for accumulator in accumulators:
      for key, value in accumulator.items():
        if key not in out or value < out[key]:
          out[key] = value
    return out

  def extract_output(self, accumulator):
    out = {}
    for (source, reason), value in sorted(accumulator.items(), key=lambda kv: (
        str(kv[0][0]), str(kv[0][1]))):
      out.setdefault(source, {})[reason] = value
    return out


class RunFailed(RuntimeError):
  """A run that lost a whole input or too much of its rows: no manifest is written.

  The message is the summary for the user (no blank line in it, so that it can be
  found again in a traceback a runner passes on as text: pipeline.main.user_error).
  """


def _dead(counts: dict, prefix: str) -> dict:
  """{reason: n} of the counter names `prefix<reason>`."""
  return {k[len(prefix):]: v for k, v in counts.items() if k.startswith(prefix) and v}


def _readings_lost(counts: dict) -> tuple[int, dict] | None:
  """(readings read, dead-lettered by reason) of a canonical file whose parsed rows
  passed no reading on; None when some reading got through (or no row parsed)."""
  read = counts.get("readings_read", 0)
  dead = _dead(counts, "readings_dead_letter/")
  if not counts.get("rows_parsed") or read > sum(dead.values()):
    return None
  return read, dead


def _input_counts(counts: dict) -> tuple[int, int, dict]:
  """(rows or entries read, kept (parsed, used or extras), dead-lettered by reason)."""
  read, kept = counts.get("rows_read", 0), counts.get("rows_parsed", 0)
  dead = collections.Counter(_dead(counts, "rows_dead_letter/"))
  for name, value in counts.items():
    parts = name.split("/")
    if parts[0] != "sources" or len(parts) < 3:
      continue
    if parts[2] == "entries_read":
      read += value
    elif parts[2] in ("entries_used", "extras"):
      kept += value
    elif parts[2] == "dead_letter":
      dead[parts[3]] += value
  return read, kept, dict(dead)


def _where(source, row: int, with_source: bool) -> str:
  """'row 2' (or 'a.csv row 2'): where an example was found."""
  parts = ([str(source)] if with_source and source else []) + (
      [f"row {row}"] if row >= 0 else [])
  return " ".join(parts)


def _reasons(dead: dict, examples: dict) -> str:
  """"bad_timestamp 60 (row 2: '...')", the TOP_REASONS largest first.

  examples: {reason: (where, raw example)}.
  """
  top = sorted(dead.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
  out = []
  for reason, n in top:
    if reason in examples:
      where, text = examples[reason]
      out.append(f"{reason} {n} ({where + ': ' if where else 'e.g. '}{text!r})")
    else:
      out.append(f"{reason} {n}")
  more = len(dead) - len(top)
  return ", ".join(out) + (f" and {more} more reason(s)" if more > 0 else "")


def run_failures(by_source: dict, examples: dict, max_fraction: float,
                 files: dict | None = None) -> list[str]:
  """Why the run must fail, one line per finding ([] when it may succeed).

  by_source: SumBySource's output; examples: FirstExamples' output; files: for a
  device export's folder, the files it was read from (named in the message).
  An input fails when it had rows (entries) and kept none: no parsed row of a
  canonical file, or no reading of its parsed rows that passed the checks; no used
  entry and no extra of a device export. The run fails when
  more than max_fraction of all its rows and entries were dead-lettered (a line of
  its own only when some input kept rows: else the lost inputs say it all), or, when
  nothing else failed it, more than max_fraction of its readings for a bad value
  (BAD_VALUE_REASONS).
  """
  files = files or {}
  lines, total_read, total_dead, kept_any = [], 0, collections.Counter(), False
  readings, bad_values = 0, collections.Counter()
  for source, counts in sorted(by_source.items()):
    read, kept, dead = _input_counts(counts)
    total_read += read
    total_dead.update(dead)
    readings += counts.get("readings_read", 0)
    bad_values.update({reason: n for reason, n in _dead(counts, "readings_dead_letter/").items()
                       if reason in BAD_VALUE_REASONS})
    kept_any |= bool(kept)
    if read and not kept:
      named = source if source not in files else (
          f"{source} ({', '.join(files[source])})")
      noun = "rows" if "rows_read" in counts else "entries"
      lines.append(f"{named}: all {read} {noun} were dead-lettered: "
                   f"{_reasons(dead, _examples_of(source, examples))}")
    elif _readings_lost(counts):
      readings, lost = _readings_lost(counts)
      lines.append(f"{source}: its {read} rows gave no usable reading: " + (
          f"all {readings} readings were dead-lettered: "
          f"{_reasons(lost, _examples_of(source, examples))}" if readings
          else "every feature cell is empty"))
  run_examples = {}
  for source in sorted(examples, key=str):
    for reason, (row, text) in examples[source].items():
      run_examples.setdefault(reason, (_where(source, row, True), text))
  dead_total = sum(total_dead.values())
  if total_read and dead_total > max_fraction * total_read and (kept_any or not lines):
    lines.append(f"the run dead-lettered {dead_total} of its {total_read} rows and "
                 f"entries ({dead_total / total_read:.0%}), more than "
                 f"--max_dead_letter_fraction {max_fraction:g}: "
                 f"{_reasons(dict(total_dead), run_examples)}")
  bad_total = sum(bad_values.values())
  if readings and bad_total > max_fraction * readings and not lines:
    lines.append(f"the run dead-lettered {bad_total} of its {readings} readings for a bad "
                 f"value ({bad_total / readings:.0%}), more than --max_dead_letter_fraction "
                 f"{max_fraction:g}: {_reasons(dict(bad_values), run_examples)}")
  return lines


def _examples_of(source: str, examples: dict) -> dict:
  """{reason: (where, example)} of one input: its own dead letters, or those of the
  files in its folder (a device export)."""
  out = {r: (_where(source, row, False), text)
         for r, (row, text) in examples.get(source, {}).items()}
  prefix = source.rstrip("/") + "/"
  for other in sorted((s for s in examples if s and s.startswith(prefix)), key=str):
    for reason, (row, text) in examples[other].items():
      out.setdefault(reason, (_where(other, row, True), text))
  return out
