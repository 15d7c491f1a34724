"""Runs lsm-pipeline (or the synthetic rehearsal) on Google Cloud Dataflow.

  python -m deploy.dataflow.launch pipeline --project P --region R --bucket gs://B \
      --input 'gs://B/raw/*.parquet' --output gs://B/lsm/v1 [--dry-run]
  python -m deploy.dataflow.launch synth --project P --region R --bucket gs://B \
      --subjects 165000 --days 10 --output gs://B/synth [--dry-run]
  python -m deploy.dataflow.launch build-image --project P --region R --bucket gs://B
  python -m deploy.dataflow.launch build-template --project P --region R --bucket gs://B

The job uses the same `lsm-pipeline` code and options as a local run; only the runner
and the Google Cloud options differ. Worker sizing defaults are the recommendation for
the full 165k-subject corpus (deploy/README.md explains them).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

from deploy import commands

# n2-standard-4: 4 vCPU / 16 GB. One subject-year of minutes is ~55 MB of float32, so
# memory per worker is far from binding; CPU is (see deploy/README.md).
DEFAULT_MACHINE = "n2-standard-4"
DEFAULT_MAX_WORKERS = 64
SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "setup.py")


def _common_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--project", required=True)
  parser.add_argument("--region", required=True)
  parser.add_argument("--bucket", required=True, help="gs://bucket for staging and temp")
  parser.add_argument("--image", default=None,
                      help="worker container image; default REGION-docker.pkg.dev/"
                           "PROJECT/lsm/lsm-worker:latest")
  parser.add_argument("--dry-run", action="store_true", help="print, do not run")


def _image(args) -> str:
  return args.image or f"{args.region}-docker.pkg.dev/{args.project}/lsm/lsm-worker:latest"


def _bucket(args) -> str:
  if not args.bucket.startswith("gs://"):
    raise SystemExit(f"--bucket must be a gs:// URL, got {args.bucket!r}")
  return args.bucket.rstrip("/")


def dataflow_options(args, job_prefix: str) -> list[str]:
  """Google Cloud options shared by every Dataflow job of the project."""
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
  options = [
      "--runner=DataflowRunner",
      f"--project={args.project}",
      f"--region={args.region}",
      f"--job_name={job_prefix}-{stamp}",
      f"--temp_location={_bucket(args)}/tmp",
      f"--staging_location={_bucket(args)}/staging",
      f"--machine_type={args.machine_type}",
      f"--max_num_workers={args.max_workers}",
      "--autoscaling_algorithm=THROUGHPUT_BASED",
      "--experiments=shuffle_mode=service",
  ]
  if args.use_container:
    options += [f"--sdk_container_image={_image(args)}", "--sdk_location=container"]
  else:
    options += [f"--setup_file={SETUP_FILE}"]
  return options


def pipeline_command(args) -> list[str]:
  command = ["lsm-pipeline"]
  for pattern in args.input:
    command.append(f"--input={pattern}")
  # A reference to the key (read by each worker), never the key itself.
  key = (f"--subject_hash_key_file={args.subject_hash_key_file}" if args.subject_hash_key_file
         else f"--subject_hash_key_secret={args.subject_hash_key_secret}")
  command += [f"--output={args.output}", key]
  if args.dead_letter_dir:
    command.append(f"--dead_letter_dir={args.dead_letter_dir}")
  if args.session_labels:
    command.append(f"--session_labels={args.session_labels}")
  command += [f"--num_shards={args.num_shards}"]
  return command + dataflow_options(args, "lsm-pipeline") + list(args.extra)


def synth_command(args) -> list[str]:
  """The synthetic cohort on Dataflow: the same files lsm-synth writes, in parallel."""
  command = [sys.executable, "-m", "pipeline.synthetic.beam_job",
             f"--subjects={args.subjects}", f"--days={args.days}", f"--seed={args.seed}",
             f"--output={args.output}", f"--layout={args.layout}", f"--format={args.format}"]
  if args.dirty:
    command.append("--dirty")
  return command + dataflow_options(args, "lsm-synth") + list(args.extra)


def _worker_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--machine_type", default=DEFAULT_MACHINE)
  parser.add_argument("--max_workers", type=int, default=DEFAULT_MAX_WORKERS)
  parser.add_argument("--use_container", action="store_true",
                      help="run on the pinned worker image instead of --setup_file")
  parser.add_argument("extra", nargs=argparse.REMAINDER,
                      help="after --, further options for the job")


def build_image_commands(args) -> list[list[str]]:
  return [["gcloud", "builds", "submit", f"--project={args.project}",
           f"--region={args.region}", "--config=deploy/dataflow/cloudbuild.yaml",
           f"--substitutions=_IMAGE={_image(args)}", "."]]


def build_template_commands(args) -> list[list[str]]:
  return [["gcloud", "dataflow", "flex-template", "build",
           f"{_bucket(args)}/templates/lsm-pipeline.json",
           f"--project={args.project}",
           f"--image={_image(args)}",
           "--sdk-language=PYTHON",
           "--metadata-file=deploy/dataflow/metadata.json"]]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="what", required=True)
  pipe = sub.add_parser("pipeline", help="run lsm-pipeline on Dataflow")
  _common_args(pipe)
  pipe.add_argument("--input", action="append", required=True, help="raw file glob (repeatable)")
  pipe.add_argument("--output", required=True, help="gs:// output directory")
  key = pipe.add_mutually_exclusive_group(required=True)
  key.add_argument("--subject_hash_key_file",
                   help="gs:// file holding the secret subject-hash key (outside the "
                        "output bucket)")
  key.add_argument("--subject_hash_key_secret",
                   help="Secret Manager secret of the key, projects/P/secrets/S[/versions/V]"
                        " (the workers' service account needs secretAccessor on it)")
  pipe.add_argument("--dead_letter_dir", default=None,
                    help="gs:// folder of the dead letters (raw rows and ids): put it in a "
                         "bucket only the data owner reads; default OUTPUT.dead_letter")
  pipe.add_argument("--session_labels", default=None)
  pipe.add_argument("--num_shards", type=int, default=256)
  _worker_args(pipe)
  synth = sub.add_parser("synth", help="generate a synthetic cohort on Dataflow")
  _common_args(synth)
  synth.add_argument("--subjects", type=int, default=165000)
  synth.add_argument("--days", type=int, default=10)
  synth.add_argument("--seed", type=int, default=0)
  synth.add_argument("--output", required=True, help="gs:// output directory")
  synth.add_argument("--layout", default="wide", choices=("long", "wide"))
  synth.add_argument("--format", default="parquet", choices=("csv", "csv.gz", "parquet"))
  synth.add_argument("--dirty", action="store_true")
  _worker_args(synth)
  for name in ("build-image", "build-template"):
    _common_args(sub.add_parser(name, help=f"{name.replace('-', ' ')} for Dataflow"))
  args = commands.parse_args(parser, argv)
  if args.what == "pipeline":
    todo = [pipeline_command(args)]
  elif args.what == "synth":
    todo = [synth_command(args)]
  elif args.what == "build-image":
    todo = build_image_commands(args)
  else:
    todo = build_template_commands(args)
  return commands.run_all(todo, args.dry_run)


if __name__ == "__main__":
  sys.exit(main())
