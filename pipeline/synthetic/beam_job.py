"""The synthetic cohort as one Beam job (any runner), to rehearse a full-scale run.

  python -m pipeline.synthetic.beam_job --subjects 165000 --days 10 \
      --output gs://B/synth --format parquet [Beam options, e.g. --runner DataflowRunner]

The files are the ones lsm-synth writes for the same seed (GenerateCohort /
WriteCohort); every option lsm-synth does not know goes to Beam. Without --runner
the local FnApiRunner runs it, so nothing tries to download the Prism runner.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.synthetic import beam as synth_beam
from pipeline.synthetic import writers

LOCAL_RUNNER = "FnApiRunner"


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--subjects", type=int, required=True)
  parser.add_argument("--days", type=int, required=True)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output", required=True, help="output directory (local or gs://)")
  parser.add_argument("--layout", choices=writers.LAYOUTS, default="wide")
  parser.add_argument("--format", choices=writers.FORMATS, default="csv", dest="fmt")
  parser.add_argument("--dirty", action="store_true")
  return parser.parse_known_args(list(argv))


def build(p: beam.Pipeline, args: argparse.Namespace):
  return (p
          | "GenerateCohort" >> synth_beam.GenerateCohort(args.seed, args.subjects, args.days)
          | "WriteCohort" >> synth_beam.WriteCohort(
              args.output.rstrip("/"), args.subjects, args.days, args.seed, args.layout,
              args.fmt, args.dirty))


def run(argv: Sequence[str]):
  """Builds and runs the job; returns the finished PipelineResult."""
  args, beam_argv = parse_args(argv)
  options = PipelineOptions(beam_argv)
  standard = options.view_as(StandardOptions)
  if standard.runner is None:
    standard.runner = LOCAL_RUNNER
  p = beam.Pipeline(options=options)
  build(p, args)
  result = p.run()
  result.wait_until_finish()
  return result


def main(argv: Sequence[str] | None = None) -> None:
  logging.getLogger().setLevel(logging.INFO)
  run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
  main()
