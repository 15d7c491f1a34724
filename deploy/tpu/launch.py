"""Trains with lsm-train on a Cloud TPU VM slice (several hosts) or prints how.

  python -m deploy.tpu.launch --project P --zone us-west4-a --name lsm-v5e \
      --accelerator v5litepod-16 --bucket gs://B --data gs://B/lsm/v1 \
      --config trainer/configs/mae.py:b --workdir gs://B/runs/lsm-b [--dry-run]

Steps (run all, or pick with --steps): create the slice; copy this checkout (git
archive of HEAD) to every worker; install the pinned requirements plus jax[tpu] on
every worker; mount the bucket with gcsfuse on every worker (Grain reads ArrayRecord
shards from local paths, and the trainer writes its config, TensorBoard events and
plots with plain file I/O); run the same lsm-train command on all workers at once.
Each host initialises jax.distributed (the TPU runtime supplies the coordinator),
reads its own share of every global batch (trainer/input_pipeline.py slices the
globally shuffled stream by jax.process_index), and Orbax writes the checkpoints
into the gs:// workdir through the shared mount. `--steps delete` removes the slice.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from deploy import commands

STEPS = ("create", "copy", "install", "mount", "train")
DATA_MOUNT = "/mnt/lsm"


def _ssh(args, remote: str) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", args.name, f"--zone={args.zone}",
          f"--project={args.project}", "--worker=all", f"--command={remote}"]


def mounted(args, url: str, flag: str) -> str:
  """A gs:// URL inside --bucket as every worker sees it: gs://bucket/path -> mount/path."""
  bucket, _, path = url[len("gs://"):].partition("/")
  if bucket != args.bucket[len("gs://"):].rstrip("/"):
    raise SystemExit(f"{flag} {url} must be inside --bucket {args.bucket}")
  return f"{DATA_MOUNT}/{path}".rstrip("/")


def step_commands(args, step: str) -> list[list[str]]:
  if step == "create":
    return [["gcloud", "compute", "tpus", "tpu-vm", "create", args.name,
             f"--zone={args.zone}", f"--project={args.project}",
             f"--accelerator-type={args.accelerator}", f"--version={args.runtime}"]]
  if step == "copy":
    return [["git", "archive", "--format=tar.gz", "--output=/tmp/lsm.tar.gz", "HEAD"],
            ["gcloud", "compute", "tpus", "tpu-vm", "scp", "/tmp/lsm.tar.gz",
             f"{args.name}:lsm.tar.gz", f"--zone={args.zone}", f"--project={args.project}",
             "--worker=all"],
            _ssh(args, "rm -rf lsm && mkdir lsm && tar xzf lsm.tar.gz -C lsm")]
  if step == "install":
    return [_ssh(args, "cd lsm && python3 -m venv .venv && "
                       ".venv/bin/pip install -q -r requirements.txt && "
                       f".venv/bin/pip install -q 'jax[tpu]=={args.jax_version}' && "
                       ".venv/bin/pip install -q --no-deps -e .")]
  if step == "mount":
    bucket = args.bucket[len("gs://"):].rstrip("/")
    return [_ssh(args, f"sudo mkdir -p {DATA_MOUNT} && sudo chmod a+rwx {DATA_MOUNT} && "
                       f"gcsfuse --implicit-dirs {bucket} {DATA_MOUNT}")]
  if step == "train":
    train = ["lsm/.venv/bin/lsm-train", f"--config=lsm/{args.config}",
             f"--workdir={mounted(args, args.workdir, '--workdir')}",
             f"--config.data_dir={mounted(args, args.data, '--data')}",
             "--config.distributed=True"] + list(args.extra)
    return [_ssh(args, " ".join(shlex.quote(p) for p in train))]
  if step == "delete":
    return [["gcloud", "compute", "tpus", "tpu-vm", "delete", args.name,
             f"--zone={args.zone}", f"--project={args.project}", "--quiet"]]
  raise SystemExit(f"unknown step {step!r}; choose from {STEPS + ('delete',)}")


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--project", required=True)
  parser.add_argument("--zone", required=True)
  parser.add_argument("--name", required=True, help="TPU VM name")
  parser.add_argument("--accelerator", default="v5litepod-16")
  parser.add_argument("--runtime", default="v2-alpha-tpuv5-lite", help="TPU VM software version")
  parser.add_argument("--jax_version", default="0.10.2")
  parser.add_argument("--bucket", required=True, help="gs://bucket holding data and runs")
  parser.add_argument("--data", required=True, help="gs:// pipeline output (with manifest.json)")
  parser.add_argument("--config", default="trainer/configs/mae.py:b")
  parser.add_argument("--workdir", required=True, help="gs:// directory for checkpoints and logs")
  commands.add_step_arguments(parser, STEPS)
  args = commands.parse_args(parser, argv)
  for url in (args.bucket, args.data, args.workdir):
    if not url.startswith("gs://"):
      raise SystemExit(f"{url!r} must be a gs:// URL: TPU workers share data through GCS")
  todo = [c for step in args.steps.split(",") for c in step_commands(args, step.strip())]
  return commands.run_all(todo, args.dry_run)


if __name__ == "__main__":
  sys.exit(main())
