"""lsm-pipeline: raw per-minute streams to normalised 300-minute window shards.

  lsm-pipeline --input 'raw/*.parquet' --output out/ --subject_hash_key_file key.txt \
      [--format auto] [--tz America/New_York] [--subject_id p01 | --subject_id_pattern
      '/(p\\d+)/'] [--labels labels/sessions.csv] [--direct_num_workers 2 \
      --direct_running_mode multi_processing] [Beam options, e.g. --runner DataflowRunner]

Without --runner the local runner is Beam's FnApiRunner (the engine behind the
DirectRunner for batch pipelines), chosen explicitly so that nothing tries to
download the Prism runner; any other --runner gets the same graph unchanged. On a
local runner readings and windows cross shuffles as files (--exchange, see
pipeline/exchange.py), elsewhere through the runner's shuffle.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import sys

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline import (counts, devices, exchange, gcs, keys, options as lsm_options, privacy,
                      publish, statistics)
from pipeline.align import AlignSubjects
from pipeline.labels import ReadLabels
from pipeline.normalise import Normalise
from pipeline.parse import ParseReadings
from pipeline.read import ReadRaw, UnreadableFileError, match_inputs
from pipeline.split import AssignSplit
from pipeline.windows import CutWindows, RatioStats
from pipeline.write import WriteManifest, WriteShards, log_summary
from schemas import manifest

LOCAL_RUNNER = "FnApiRunner"
# Loggers through which the local runner reports a DoFn's exception with its traceback.
RUNNER_ERROR_LOGGERS = ("apache_beam.runners.common",
                        "apache_beam.runners.portability.local_job_service",
                        "apache_beam.runners.worker.sdk_worker")


def read_subjects(p: beam.Pipeline, opts: lsm_options.LsmOptions, inputs: list[str],
                  key: keys.KeyRef):
  """The reading half of the pipeline, shared with lsm-impute's preparation
  (pipeline/prepare.py): every input through the same adapters, validation and
  alignment. Returns (plan, device outputs, aligned outputs: .grids of (subject,
  Grid), count PCollections, dead-letter PCollections)."""
  rule = lsm_options.time_rule(opts)
  plan = devices.plan_inputs(inputs, opts.format, rule,  # fails naming a file, before any work
                             opts.csv_delimiter)
  if (opts.subject_id or opts.subject_id_pattern) and not plan.exports:
    logging.warning("lsm-pipeline: --subject_id / --subject_id_pattern name the subject "
                    "of device exports that name none; every input here is a canonical "
                    "file with a subject_id column, so they are not used")
  exchange_dir = lsm_options.exchange_dir(opts)
  parsed = (p | "ReadRaw" >> ReadRaw(plan.canonical, plan.file_format, opts.csv_delimiter,
                                     opts.decimal)
            | "ParseReadings" >> ParseReadings(key, rule))
  device = p | "ReadDevices" >> devices.ReadDevices(
      plan.exports, opts.tz, opts.subject_id, key, opts.subject_id_pattern, rule,
      lsm_options.device_options(opts))
  # Stashed before the Flatten: the local runner materialises a Flatten of two stages.
  readings = ((parsed.readings | "StashReadings" >> exchange.Stash(exchange_dir),
               device.readings | "StashDeviceReadings" >> exchange.Stash(exchange_dir))
              | "AllReadings" >> beam.Flatten())
  subjects = {"readings": readings, "provided": device[devices.PROVIDED]}
  count_parts = [parsed[counts.COUNTS], device[counts.COUNTS],
                 device[devices.PROVIDED] | "SessionsPerSubject" >> devices.SessionsPerSubject()]
  letter_parts = [parsed[counts.DEAD_LETTER], device[counts.DEAD_LETTER]]
  if opts.session_labels:
    sessions = p | "ReadLabels" >> ReadLabels(opts.session_labels, key)
    subjects["sessions"] = sessions.sessions
    count_parts.append(sessions[counts.COUNTS])
    letter_parts.append(sessions[counts.DEAD_LETTER])
  aligned = subjects | "AlignSubjects" >> AlignSubjects(opts.max_gap_minutes)
  count_parts.append(aligned[counts.COUNTS])
  letter_parts.append(aligned[counts.DEAD_LETTER])
  return plan, device, aligned, count_parts, letter_parts


def build(p: beam.Pipeline, opts: lsm_options.LsmOptions, inputs: list[str],
          key: keys.KeyRef):
  """Adds every stage to `p`; returns the manifest path PCollection.

  key: where the subject-hash key lives; the stages get this reference and read the
  key on the worker, so its bytes are in neither the graph nor its options. The
  dead letters (raw rows) go to lsm_options.dead_letter_dir, outside the shareable
  output, owner-only when local (pipeline.privacy)."""
  window, stride = opts.window_minutes, lsm_options.stride(opts)
  fractions = lsm_options.split_fractions(opts)
  labelled = bool(opts.session_labels) and opts.labelled_windows
  output = opts.output
  staging = publish.staging_dir(output)  # every published file is written here first
  exchange_dir = lsm_options.exchange_dir(opts)
  plan, device, aligned, count_parts, letter_parts = read_subjects(p, opts, inputs, key)
  windows = (aligned.grids
             | "AssignSplit" >> AssignSplit(fractions, opts.split_salt)
             | "CutWindows" >> CutWindows(window, stride, opts.max_missing, labelled))
  count_parts.append(windows[counts.COUNTS])
  transform = windows.windows | "Normalise" >> Normalise(
      window, os.path.join(staging, "transform"), os.path.join(output, "tmp"))
  written = {"windows": windows.windows, "transform": transform} | "WriteShards" >> \
      WriteShards(staging, window, opts.num_shards, exchange_dir)
  letters = letter_parts | "AllDeadLetters" >> beam.Flatten()
  letter_dir = lsm_options.dead_letter_dir(opts)
  _private_dead_letters(letter_dir, output)
  letters_written = (letters | "WriteDeadLetters" >> beam.io.WriteToText(
      os.path.join(letter_dir, "dead_letter"), file_name_suffix=".jsonl", num_shards=1,
      shard_name_template="") | "OwnerOnly" >> beam.Map(privacy.owner_only))
  examples = letters | "DeadLetterExamples" >> beam.CombineGlobally(counts.FirstExamples())
  _ = (device[devices.EXTRAS] | "WriteExtras" >> beam.io.WriteToText(
      os.path.join(staging, "extras", "extras"), file_name_suffix=".jsonl", num_shards=1,
      shard_name_template=""))
  ratios = windows.windows | "WindowRatios" >> beam.CombineGlobally(RatioStats())
  all_counts = count_parts | "AllCounts" >> beam.Flatten()
  total = all_counts | "SumCounts" >> beam.CombineGlobally(counts.SumCounts())
  by_source = all_counts | "SumBySource" >> beam.CombineGlobally(counts.SumBySource())
  secret = key.resolve()  # here, on the launcher: input ids for the manifest
  header = {"options": lsm_options.recorded(opts),
            "inputs": devices.with_input_ids(plan.inputs, secret),
            devices.EMPTY_COUNT: sum(e["format"] == devices.EMPTY for e in plan.inputs),
            "labels_input": opts.session_labels and keys.input_id(opts.session_labels, secret),
            "datasets_written": ["pretrain"] + (["labelled"] if labelled else [])}
  parts = {"counts": total, "shards": written["shards"],
           "statistics": written["statistics"], "ratios": ratios, "by_source": by_source,
           "examples": examples, "dead_letters": letters_written}
  if opts.statistics:
    parts["data_statistics"] = {"grids": aligned.grids, "windows": windows.windows} \
        | "DataStatistics" >> statistics.DataStatistics(staging, window, opts.drift_threshold)
  return parts | "WriteManifest" >> WriteManifest(output, header, window, opts.num_shards,
                                                  staging=staging)


def _private_dead_letters(folder: str, output: str) -> None:
  """Creates the dead-letter folder owner-only and says where it is and why."""
  try:
    privacy.private_folder(folder)
  except OSError as e:
    raise SystemExit(f"lsm-pipeline: cannot write the dead letters to {folder}: "
                     f"{e.strerror or e}; pass --dead_letter_dir with a folder you can "
                     "write (outside --output)") from None
  logging.info("lsm-pipeline: dead letters (raw rows, raw subject ids and paths: for the "
               "data owner, not for sharing) go to %s%s", folder,
               "" if gcs.is_local(folder) else "; bucket IAM decides who reads them")
  def norm(path):
    return (os.path.abspath(path) if gcs.is_local(path) else path.rstrip("/")) + "/"
  if norm(folder).startswith(norm(output)):
    logging.warning("lsm-pipeline: --dead_letter_dir %s is inside --output: the output "
                    "folder then holds raw ids and must not be shared whole", folder)


def run(argv=None, save_main_session: bool = False):
  """Builds and runs the pipeline; returns the Beam PipelineResult once it is done."""
  argv = list(argv or sys.argv[1:])
  lsm_options.check_no_stray_arguments(argv)
  opts = PipelineOptions(keys.literal_to_env(lsm_options.labels_alias(argv))).view_as(
      lsm_options.LsmOptions)
  standard = opts.view_as(StandardOptions)
  if standard.runner is None:
    standard.runner = LOCAL_RUNNER
  if not opts.input or not opts.output:
    raise SystemExit("lsm-pipeline: --input and --output are required (see --help)")
  key = lsm_options.subject_key(opts)
  inputs = match_inputs(opts.input)  # fails fast, naming the glob, before any work
  lsm_options.check(opts)
  _clear_output(opts)
  p = beam.Pipeline(options=opts)
  build(p, opts, inputs, key)
  try:
    result = p.run()
    result.wait_until_finish()
  finally:  # a failed run (counts.RunFailed) leaves no exchange files behind either
    if standard.runner == LOCAL_RUNNER:
      tmp = os.path.join(opts.output, "tmp")
      if FileSystems.exists(tmp):
        FileSystems.delete([tmp])
  written = os.path.join(opts.output, manifest.MANIFEST_NAME)
  if FileSystems.exists(written):  # absent when a runner only built the job (templates)
    with FileSystems.open(written) as f:
      log_summary(json.load(f))
  return result


def _clear_output(opts) -> None:
  """Refuses an output folder holding a finished run (its manifest.json) unless
  --overwrite, and one the run cannot write (pipeline.publish.check_writable); then
  removes every earlier run's scratch and staging folders. A finished run's files
  stay until this run publishes (pipeline.publish removes them then), so that a
  failed or killed rerun leaves it whole. A run that failed or was killed before it
  published its manifest is not one: its files go now, without asking, so that the
  user can fix the input and run the same command again."""
  finished = FileSystems.exists(os.path.join(opts.output, manifest.MANIFEST_NAME))
  if finished and not opts.overwrite:
    others = len(publish.files_under(opts.output, publish.PUBLISHED))
    raise SystemExit(f"lsm-pipeline: {opts.output} holds an earlier run (manifest.json and "
                     f"{others} more files); pass --overwrite to replace it, or "
                     "choose another --output")
  publish.check_writable(opts.output)
  removed = publish.remove(opts.output, publish.SCRATCH + (
      () if finished else publish.PUBLISHED))
  if removed:
    logging.info("lsm-pipeline: removed %d files of earlier unfinished runs from %s",
                 removed, opts.output)
  if finished:
    logging.info("lsm-pipeline: the earlier run in %s is replaced once this one has "
                 "succeeded (--overwrite)", opts.output)


# Errors that say what the user must change: main() prints their message alone.
# UnreadableFileError is also raised mid-run (a bad timestamp form found past a
# file's head); RunFailed only there.
USER_ERRORS = (counts.RunFailed, UnreadableFileError)


def user_error(error: BaseException) -> str | None:
  """The message of a USER_ERRORS exception behind `error` (the runner's wrapping and
  its " [while running 'step']" suffix removed), or None.

  In process the runner re-raises the exception itself; from worker processes it
  arrives as the text of a RuntimeError's traceback.
  """
  while error is not None:
    text = str(error)
    for kind in USER_ERRORS:
      if isinstance(error, kind) or f"{kind.__name__}: " in text:
        found = re.search(rf"(?:{kind.__name__}: )?(.*?)(?: \[while running '[^']*'\])?"
                          r"(?:\n\n|\n?$)", text.split(f"{kind.__name__}: ", 1)[-1], re.S)
        message = found.group(1)
        return message if kind is counts.RunFailed else f"lsm-pipeline: {message}"
    error = error.__cause__ or error.__context__
  return None


class _HideUserErrorTracebacks(logging.Filter):
  """Drops the runner's error logs of USER_ERRORS: main() prints their message alone."""

  def filter(self, record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return not (isinstance(error, USER_ERRORS) or any(
        f"{kind.__name__}: " in record.getMessage() for kind in USER_ERRORS))


def main(argv=None) -> None:
  logging.getLogger().setLevel(logging.INFO)
  for name in RUNNER_ERROR_LOGGERS:
    logging.getLogger(name).addFilter(_HideUserErrorTracebacks())
  argv = sys.argv[1:] if argv is None else argv
  if not argv or "--help" in argv or "-h" in argv:
    print(__doc__)
    lsm_options.LsmOptions(["--help"])
  try:
    run(argv)
  except Exception as e:  # raised before the run, or wrapped by the runner
    message = user_error(e)
    if message is None:
      raise
    sys.exit(message)


def cli() -> None:
  """The console entry (lsm-pipeline, python -m pipeline): main(), then, on success,
  the process ends without Python's interpreter teardown, which costs ~1 s once
  TensorFlow is loaded (freeing its modules and C++ statics; benchmarks/README.md)
  and that a finished run does not need: the output is published and closed by then,
  and the exit handlers (logging's flush, multiprocessing's child cleanup) run first.
  A failed run raises or exits as main() does, with the normal teardown."""
  main()
  atexit._run_exitfuncs()  # pylint: disable=protected-access
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(0)


if __name__ == "__main__":
  cli()
