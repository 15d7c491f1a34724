"""lsm-pipeline: raw per-minute streams to normalised 300-minute window shards.

  lsm-pipeline --input 'raw/*.parquet' --output out/ --subject_hash_key_file key.txt \
      [--format auto] [--tz America/New_York] [--subject_id p01 | --subject_id_pattern
      '/(p\d+)/'] [--labels labels/sessions.csv] [--direct_num_workers 2 \
      --direct_running_mode multi_processing] [Beam options, e.g. --runner DataflowRunner]

Without --runner the local runner is Beam's FnApiRunner (the engine behind the
DirectRunner for batch pipelines), chosen explicitly so that nothing tries to
download the Prism runner; any other --runner gets the same graph unchanged. On a
local runner readings and windows cross shuffles as files (--exchange, see
pipeline/exchange.py), elsewhere through the runner's shuffle.
"""

from __future__ import annotations

import logging
import os
import sys

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline import counts, devices, exchange, options as lsm_options
from pipeline.align import AlignSubjects
from pipeline.labels import ReadLabels
from pipeline.normalise import Normalise
from pipeline.parse import ParseReadings
from pipeline.read import ReadRaw, UnreadableFileError, match_inputs
from pipeline.split import AssignSplit
from pipeline.windows import CutWindows, RatioStats
from pipeline.write import WriteManifest, WriteShards

LOCAL_RUNNER = "FnApiRunner"


def build(p: beam.Pipeline, opts: lsm_options.LsmOptions, inputs: list[str], key: bytes):
  """Adds every stage to `p`; returns the manifest path PCollection."""
  window, stride = opts.window_minutes, lsm_options.stride(opts)
  fractions = lsm_options.split_fractions(opts)
  labelled = bool(opts.session_labels) and opts.labelled_windows
  output = opts.output
  rule = lsm_options.time_rule(opts)
  plan = devices.plan_inputs(inputs, opts.format, rule,  # fails naming a file, before any work
                             opts.csv_delimiter)
  exchange_dir = lsm_options.exchange_dir(opts)
  parsed = (p | "ReadRaw" >> ReadRaw(plan.canonical, plan.file_format, opts.csv_delimiter,
                                     opts.decimal)
            | "ParseReadings" >> ParseReadings(key, rule))
  device = p | "ReadDevices" >> devices.ReadDevices(plan.exports, opts.tz, opts.subject_id,
                                                    key, opts.subject_id_pattern, rule)
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
  aligned = subjects | "AlignSubjects" >> AlignSubjects()
  count_parts.append(aligned[counts.COUNTS])
  letter_parts.append(aligned[counts.DEAD_LETTER])
  windows = (aligned.grids
             | "AssignSplit" >> AssignSplit(fractions, opts.split_salt)
             | "CutWindows" >> CutWindows(window, stride, opts.max_missing, labelled))
  count_parts.append(windows[counts.COUNTS])
  transform = windows.windows | "Normalise" >> Normalise(
      window, os.path.join(output, "transform"), os.path.join(output, "tmp"))
  written = {"windows": windows.windows, "transform": transform} | "WriteShards" >> \
      WriteShards(output, window, opts.num_shards, exchange_dir)
  _ = (letter_parts | "AllDeadLetters" >> beam.Flatten()
       | "WriteDeadLetters" >> beam.io.WriteToText(
           os.path.join(output, "dead_letter", "dead_letter"), file_name_suffix=".jsonl",
           num_shards=1, shard_name_template=""))
  _ = (device[devices.EXTRAS] | "WriteExtras" >> beam.io.WriteToText(
      os.path.join(output, "extras", "extras"), file_name_suffix=".jsonl", num_shards=1,
      shard_name_template=""))
  ratios = windows.windows | "WindowRatios" >> beam.CombineGlobally(RatioStats())
  total = (count_parts | "AllCounts" >> beam.Flatten()
           | "SumCounts" >> beam.CombineGlobally(counts.SumCounts()))
  header = {"options": lsm_options.recorded(opts), "inputs": plan.inputs,
            devices.EMPTY_COUNT: sum(e["format"] == devices.EMPTY for e in plan.inputs),
            "labels_input": opts.session_labels,
            "datasets_written": ["pretrain"] + (["labelled"] if labelled else [])}
  return {"counts": total, "shards": written["shards"],
          "statistics": written["statistics"], "ratios": ratios} \
      | "WriteManifest" >> WriteManifest(output, header, window, opts.num_shards)


def run(argv=None, save_main_session: bool = False):
  """Builds and runs the pipeline; returns the Beam PipelineResult once it is done."""
  opts = PipelineOptions(lsm_options.labels_alias(list(argv or sys.argv[1:]))).view_as(
      lsm_options.LsmOptions)
  standard = opts.view_as(StandardOptions)
  if standard.runner is None:
    standard.runner = LOCAL_RUNNER
  if not opts.input or not opts.output:
    raise SystemExit("lsm-pipeline: --input and --output are required (see --help)")
  key = lsm_options.subject_key(opts)
  inputs = match_inputs(opts.input)  # fails fast, naming the glob, before any work
  if opts.window_minutes <= 0 or lsm_options.stride(opts) <= 0:
    raise SystemExit("lsm-pipeline: --window_minutes and --stride_minutes must be > 0")
  if not 0 <= opts.max_missing <= 1:
    raise SystemExit("lsm-pipeline: --max_missing must be within [0, 1]")
  lsm_options.check_subject_options(opts)
  p = beam.Pipeline(options=opts)
  build(p, opts, inputs, key)
  result = p.run()
  result.wait_until_finish()
  if standard.runner == LOCAL_RUNNER:
    tmp = os.path.join(opts.output, "tmp")
    if FileSystems.exists(tmp):
      FileSystems.delete([tmp])
  return result


def main(argv=None) -> None:
  logging.getLogger().setLevel(logging.INFO)
  argv = sys.argv[1:] if argv is None else argv
  if not argv or "--help" in argv or "-h" in argv:
    print(__doc__)
    lsm_options.LsmOptions(["--help"])
  try:
    run(argv)
  except UnreadableFileError as e:
    sys.exit(f"lsm-pipeline: {e}")


if __name__ == "__main__":
  main()
