"""Command-line options of lsm-pipeline, as Beam PipelineOptions (like Beam's examples)."""

from __future__ import annotations

import os
import re

import pandas as pd
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline import gcs
from pipeline.align import MAX_GAP_MINUTES
from pipeline.counts import MAX_DEAD_LETTER_FRACTION
from pipeline.keys import KEY_ENV, KeyRef, MissingKeyError
from pipeline.parse import MAX_TIME, MIN_TIME, UNITS, TimeRule
from pipeline.sources import registry
from pipeline.sources.common import SourceError, parse_tz
from pipeline.statistics import DRIFT_THRESHOLD
from schemas.constants import MAX_MISSING_RATIO, SPLITS, WINDOW_MINUTES

FILE_FORMATS = ("csv", "parquet", "jsonl")
DEAD_LETTER_FILE = "dead_letter.jsonl"
EXCHANGES = ("auto", "files", "runner")
# Runners that run on this machine (their shuffle is the runner process's memory).
LOCAL_RUNNERS = (None, "FnApiRunner", "DirectRunner", "SwitchingDirectRunner",
                 "BundleBasedDirectRunner", "PrismRunner")


class LsmOptions(PipelineOptions):
  """The pipeline's own options; every other flag goes to Beam (runner, workers, GCP)."""

  @classmethod
  def _add_argparse_args(cls, parser):
    # Not argparse-required: Beam parses every PipelineOptions subclass it has seen
    # whenever any options object is built, so run() checks these two instead.
    parser.add_argument("--input", action="append",
                        help="raw input file or glob (local or gs://); repeatable; required")
    parser.add_argument("--output", help="output directory (local or gs://); required")
    parser.add_argument("--format", default="auto", choices=formats(),
                        help="input format; auto: per file, by name and first lines "
                             "(device exports: " + "; ".join(
                                 f"{name}: {d.looks_for}" for name, d in
                                 registry.devices().items() if d.read is not None)
                             + "; else canonical: Parquet / JSON lines by extension, "
                             "CSV by its header), logged and recorded in the manifest. "
                             "csv, parquet, jsonl: canonical files of that file format; "
                             "a device format: every input is that device's export")
    for option in registry.options().values():
      owners = [d.name for d in registry.devices().values() if option in d.options]
      parser.add_argument(f"--{option.name}", default=option.default,
                          help=f"{', '.join(owners)} exports: {option.help}")
    parser.add_argument("--csv_delimiter", default=",",
                        help="field separator of canonical CSV files, e.g. ';' for "
                             "European spreadsheets (device exports keep their own)")
    parser.add_argument("--decimal", default=".", choices=(".", ","),
                        help="decimal mark of numbers in canonical CSV files; ',': a "
                             "cell that is a decimal-comma number (33,00, quoted when "
                             "the separator is ',') is read as 33.00")
    parser.add_argument("--tz", default=None,
                        help="timezone of timestamps written in local time without an "
                             "offset (Fitbit exports; canonical files with such times): "
                             "IANA name (America/New_York) or fixed offset (+02:00); "
                             "required for them, ignored by others")
    parser.add_argument("--timestamp_unit", default="auto", choices=UNITS,
                        help="canonical timestamps that are numbers: epoch seconds (s) "
                             "or milliseconds (ms); auto: below 1e11 seconds, else "
                             "milliseconds (10 vs 13 digits today); iso: numbers are "
                             "an error")
    parser.add_argument("--min_time", default=MIN_TIME,
                        help="earliest plausible time (ISO 8601; UTC without offset): "
                             "earlier canonical rows are dead-lettered bad_timestamp, "
                             "device readings outside_time_range")
    parser.add_argument("--max_time", default=MAX_TIME,
                        help="end of the plausible times (exclusive), like --min_time")
    parser.add_argument("--subject_id", default=None,
                        help="subject id of single-subject exports that name none (E4, "
                             "Garmin: default the folder name; Fitabase files without "
                             "Id: default the file-name prefix); applies to every "
                             "device export of the run")
    parser.add_argument("--subject_id_pattern", default=None,
                        help="regular expression searched in each device input's path "
                             "(files whose rows name no subject: E4, Garmin, Fitabase "
                             "without Id); its group 'subject', else its first group, "
                             "is the subject id, e.g. '/(p\\d+)/'; a path it does not "
                             "match is an error. Default: the folder name (for an E4 "
                             "Connect session folder '<unix time>_<device id>', the "
                             "folder above it), or the Fitabase file-name prefix")
    parser.add_argument("--window_minutes", type=int, default=WINDOW_MINUTES)
    parser.add_argument("--stride_minutes", type=int, default=0,
                        help="minutes between window starts; 0: the window length")
    parser.add_argument("--max_missing", type=float, default=MAX_MISSING_RATIO,
                        help="windows with a larger missing ratio are dropped (counted)")
    parser.add_argument("--max_dead_letter_fraction", type=float,
                        default=MAX_DEAD_LETTER_FRACTION,
                        help="the run fails (no manifest) when it dead-letters more than "
                             "this fraction of its rows and device entries, or of its "
                             "readings for a bad value (non-numeric, non-finite, out of "
                             "range); it also fails when an input file keeps none of its rows")
    parser.add_argument("--max_gap_minutes", type=int, default=MAX_GAP_MINUTES,
                        help="readings of a subject more than this many minutes apart "
                             "start a new minute grid (no window spans the gap), so a "
                             "stray timestamp years away allocates no grid over the years "
                             "between; default 7 days")
    parser.add_argument("--split", default="0.8,0.1,0.1",
                        help="train,valid,test fractions of subjects; one person's own "
                             "data (n-of-1): 1,0,0 (statistics need train windows)")
    parser.add_argument("--split_salt", default="lsm-split-v1",
                        help="salt of the subject hash that assigns splits; change it "
                             "to draw another split")
    parser.add_argument("--num_shards", type=int, default=0,
                        help="ArrayRecord shards per split; 0: about one per 256 MiB")
    parser.add_argument("--session_labels", default=None,
                        help="session label table (CSV with schemas.raw.LABEL_COLUMNS); "
                             "also accepted as --labels PATH (see labels_alias)")
    parser.add_argument("--labelled_windows", default=True, type=_bool,
                        help="with --labels, also write dataset 'labelled': one window "
                             "centred on each labelled session")
    parser.add_argument("--exchange", default="auto", choices=EXCHANGES,
                        help="how readings and windows cross shuffles: files (Arrow IPC "
                             "under OUTPUT/tmp/exchange, references through the runner; "
                             "flat runner memory), runner (the arrays themselves); auto: "
                             "files on a local runner, runner elsewhere (Dataflow)")
    parser.add_argument("--subject_hash_key", default=None,
                        help=f"secret key of the subject-id HMAC, local runs only: moved "
                             f"into the environment variable {KEY_ENV} before the job is "
                             "built (never into the job graph or its options); prefer "
                             "--subject_hash_key_file")
    parser.add_argument("--subject_hash_key_file", default=None,
                        help="file holding the secret key of the subject-id HMAC (local, "
                             "a mounted secret, or gs://); read by each worker, never "
                             "copied into the job")
    parser.add_argument("--subject_hash_key_secret", default=None,
                        help="Secret Manager secret holding the key, read by each worker "
                             "(Dataflow): projects/P/secrets/S[/versions/V]; needs "
                             "google-cloud-secret-manager")
    parser.add_argument("--dead_letter_dir", default=None,
                        help="folder of the dead letters (raw rows with raw subject ids and "
                             "paths: for the data owner, not for sharing); default the "
                             "folder OUTPUT.dead_letter beside the output; written "
                             "owner-only (0700) when local")
    parser.add_argument("--statistics", action="store_true",
                        help="also write data statistics (TFDV's statistics proto of the "
                             "minute grid and of the windows per split), anomalies "
                             "against the schema, drift of valid/test from train, and an "
                             "HTML report under OUTPUT/statistics (pipeline.statistics)")
    parser.add_argument("--drift_threshold", type=float, default=DRIFT_THRESHOLD,
                        help="Jensen-Shannon divergence (base 2, 0..1) of a feature's "
                             "histogram in valid/test vs train above which --statistics "
                             "reports drift")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace what an earlier finished run wrote in --output "
                             "(manifest, shards, transform graph, dead letters, extras); "
                             "without it such an output folder is refused (an unfinished "
                             "run's leftovers are always removed)")


def formats() -> tuple[str, ...]:
  """--format's choices: auto, the canonical file formats, every registered format."""
  return ("auto",) + FILE_FORMATS + registry.formats()


def device_options(options: LsmOptions) -> dict:
  """The devices' own flags (registry.Option) by name, for their readers."""
  return {name: getattr(options, name) for name in registry.options()}


def labels_alias(argv: list[str]) -> list[str]:
  """--labels PATH -> --session_labels PATH.

  Beam's Dataflow options own --labels (job labels, key=value); a --labels value
  without '=' is this pipeline's label table, one with '=' stays Beam's.
  """
  out, i = [], 0
  while i < len(argv):
    arg = argv[i]
    if arg == "--labels" and i + 1 < len(argv) and "=" not in argv[i + 1]:
      out += ["--session_labels", argv[i + 1]]
      i += 2
      continue
    if arg.startswith("--labels=") and "=" not in arg[len("--labels="):]:
      arg = "--session_labels=" + arg[len("--labels="):]
    out.append(arg)
    i += 1
  return out


def _bool(text: str) -> bool:
  if text.lower() in ("1", "true", "yes"):
    return True
  if text.lower() in ("0", "false", "no"):
    return False
  raise ValueError(f"not a boolean: {text!r}")


def subject_key(options: LsmOptions) -> KeyRef:
  """Where the HMAC key lives, checked by reading it once here (fails before any work).

  Required, because an unkeyed hash of a subject id can be guessed. A literal
  --subject_hash_key was moved into KEY_ENV by keys.literal_to_env before the
  options were built. Raises SystemExit with one line when no key can be read, or
  when only an environment variable names it on a runner whose workers lack it.
  """
  if options.subject_hash_key_file and options.subject_hash_key_secret:
    raise SystemExit("lsm-pipeline: pass --subject_hash_key_file or "
                     "--subject_hash_key_secret, not both")
  ref = KeyRef(file=options.subject_hash_key_file, secret=options.subject_hash_key_secret)
  if not ref.reaches_workers and not _local(options):
    raise SystemExit("lsm-pipeline: on a remote runner the workers cannot read the key "
                     f"from {KEY_ENV} or --subject_hash_key; pass --subject_hash_key_file "
                     "(gs:// or a mounted secret) or --subject_hash_key_secret")
  try:
    ref.resolve()
  except (MissingKeyError, OSError) as e:
    raise SystemExit(f"lsm-pipeline: no subject hash key ({e}); pass "
                     "--subject_hash_key_file (or --subject_hash_key_secret, "
                     f"--subject_hash_key, or set {KEY_ENV}). Raw subject ids are "
                     "replaced by an HMAC under this key and never written out.") from None
  return ref


def dead_letter_dir(options: LsmOptions) -> str:
  """--dead_letter_dir, or default_dead_letter_dir of --output."""
  return options.dead_letter_dir or default_dead_letter_dir(options.output)


def default_dead_letter_dir(output: str) -> str:
  """OUTPUT.dead_letter beside the output folder (absolute when local), so that the
  output folder itself can be shared whole."""
  output = output.rstrip("/") or "/"
  return (output if not gcs.is_local(output) else os.path.abspath(output)) + ".dead_letter"


# Flags that take no value: a word after them is no value of theirs.
SWITCHES = ("--overwrite", "--statistics")


def check_no_stray_arguments(argv: list[str]) -> None:
  """Stops on a word that is no flag's value. Beam only logs such words ("Unparseable
  argument"), so an unquoted glob (--input raw/*.csv, which the shell expands into
  several files) would read the first file alone and drop the others silently."""
  previous = None
  for arg in argv:
    if not arg.startswith("-") and (previous is None or not previous.startswith("-")
                                    or "=" in previous or previous in SWITCHES):
      raise SystemExit(
          f"lsm-pipeline: unexpected argument {arg!r} (after {previous!r}): every input "
          "needs its own --input; quote a glob (--input 'raw/*.csv') so that the shell "
          "does not expand it into several files")
    previous = arg


def check(options: LsmOptions) -> None:
  """Stops with one line on an option value that cannot work, before any work."""
  if options.window_minutes <= 0 or stride(options) <= 0:
    raise SystemExit("lsm-pipeline: --window_minutes and --stride_minutes must be > 0")
  for name in ("max_missing", "max_dead_letter_fraction", "drift_threshold"):
    if not 0 <= getattr(options, name) <= 1:
      raise SystemExit(f"lsm-pipeline: --{name} must be within [0, 1]")
  if options.max_gap_minutes <= 0:
    raise SystemExit("lsm-pipeline: --max_gap_minutes must be > 0")
  check_subject_options(options)
  split_fractions(options)
  time_rule(options)


def check_subject_options(options: LsmOptions) -> None:
  """--subject_id and --subject_id_pattern exclude each other; the pattern must compile."""
  pattern = options.subject_id_pattern
  if pattern is None:
    return
  if options.subject_id is not None:
    raise SystemExit("lsm-pipeline: pass --subject_id (one id for every device export) "
                     "or --subject_id_pattern (an id per input path), not both")
  try:
    re.compile(pattern)
  except re.error as e:
    raise SystemExit(f"lsm-pipeline: --subject_id_pattern {pattern!r} is not a regular "
                     f"expression ({e})") from None


def split_fractions(options: LsmOptions) -> tuple[float, ...]:
  fractions = tuple(float(x) for x in options.split.split(","))
  if len(fractions) != len(SPLITS) or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
    raise SystemExit(f"lsm-pipeline: --split {options.split!r} must be {len(SPLITS)} "
                     f"non-negative fractions ({','.join(SPLITS)}) summing to 1")
  return fractions


def time_rule(options: LsmOptions) -> TimeRule:
  """How timestamps are read (parse.TimeRule); exits on a bad --tz or time range."""
  try:
    if options.tz is not None:
      parse_tz(options.tz, "--tz")
    low, high = (_instant(t) for t in (options.min_time, options.max_time))
  except (SourceError, ValueError) as e:
    raise SystemExit(f"lsm-pipeline: {e}") from None
  if low >= high:
    raise SystemExit(f"lsm-pipeline: --min_time {options.min_time} must be before "
                     f"--max_time {options.max_time}")
  return TimeRule(options.tz, options.timestamp_unit, low, high)


def _instant(text: str) -> int:
  """int64 ns UTC of an ISO 8601 time; one without offset is UTC."""
  stamp = pd.Timestamp(text)
  return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).value


def stride(options: LsmOptions) -> int:
  return options.stride_minutes or options.window_minutes


def exchange_dir(options: LsmOptions) -> str | None:
  """Where pipeline.exchange writes, or None to send arrays through the runner."""
  choice = options.exchange
  if choice == "auto":
    choice = "files" if _local(options) else "runner"
  return os.path.join(options.output, "tmp", "exchange") if choice == "files" else None


def _local(options: PipelineOptions) -> bool:
  """Whether the runner runs on this machine (workers share its files and environment)."""
  runner = options.view_as(StandardOptions).runner
  return runner in LOCAL_RUNNERS or getattr(runner, "__name__", "") in LOCAL_RUNNERS


def recorded(options: LsmOptions) -> dict:
  """The options that shape the output, for the manifest (no key, no paths, no runner)."""
  return {
      "window_minutes": options.window_minutes,
      "stride_minutes": stride(options),
      "max_missing": options.max_missing,
      "max_dead_letter_fraction": options.max_dead_letter_fraction,
      "max_gap_minutes": options.max_gap_minutes,
      "split": dict(zip(SPLITS, split_fractions(options))),
      "split_salt": options.split_salt,
      "num_shards": options.num_shards,
      "format": options.format,
      "csv_delimiter": options.csv_delimiter,
      "decimal": options.decimal,
      "tz": options.tz,
      "timestamp_unit": options.timestamp_unit,
      "min_time": options.min_time,
      "max_time": options.max_time,
      "subject_id_given": options.subject_id is not None,  # never the raw id itself
      "subject_id_pattern_given": options.subject_id_pattern is not None,  # may hold paths
      "labels": bool(options.session_labels),
      "labelled_windows": bool(options.session_labels) and options.labelled_windows,
      # names only: a value may name a person's device ("Jane's Apple Watch")
      "device_options_given": sorted(
          name for name, value in device_options(options).items()
          if value != registry.options()[name].default),
      "statistics": bool(options.statistics),
  }
