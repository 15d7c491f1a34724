"""Trains with lsm-train on one host with several GPUs (e.g. 8x H100/H200), or prints how.

  python -m deploy.gpu.launch --data /data/lsm/v1 --workdir /runs/lsm-b \
      --config trainer/configs/mae.py:b [--steps install,check,train] [--dry-run]

One process drives every local GPU: the trainer's mesh spans jax.devices() and the
global batch is split along it (data parallel, parameters replicated; add
-- --config.shard_params=True to shard them FSDP-style when a model does not fit).
Computation runs in bfloat16 (parameters and optimiser state stay float32), and
Grain worker processes decode and mask windows so the GPUs are not starved
(deploy/README.md sizes them). No jax.distributed is needed on a single host.
Run it from the repository root of a checkout on the GPU host.
"""

from __future__ import annotations

import argparse
import sys

from deploy import commands

STEPS = ("install", "check", "train")
VENV = ".venv-gpu"


def step_commands(args, step: str) -> list[list[str]]:
  pip = f"{VENV}/bin/pip"
  if step == "install":
    return [["python3", "-m", "venv", VENV],
            [pip, "install", "-q", "-r", "requirements.txt"],
            [pip, "install", "-q", f"jax[cuda12]=={args.jax_version}"],
            [pip, "install", "-q", "--no-deps", "-e", "."]]
  if step == "check":
    # Fails unless JAX sees the expected number of GPUs (a CPU fallback would be silent).
    return [[f"{VENV}/bin/python", "-c",
             "import jax, sys; d = jax.devices(); print(d); "
             f"sys.exit(0 if d[0].platform == 'gpu' and len(d) >= {args.gpus} else 1)"]]
  if step == "train":
    return [[f"{VENV}/bin/lsm-train", f"--config={args.config}", f"--workdir={args.workdir}",
             f"--config.data_dir={args.data}", "--config.model.dtype=bfloat16",
             f"--config.batch_size={args.batch_size}", f"--config.workers={args.workers}",
             f"--config.num_train_steps={args.steps_to_train}"] + list(args.extra)]
  raise SystemExit(f"unknown step {step!r}; choose from {STEPS}")


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data", required=True, help="pipeline output (with manifest.json)")
  parser.add_argument("--workdir", required=True, help="checkpoints and logs")
  parser.add_argument("--config", default="trainer/configs/mae.py:b")
  parser.add_argument("--gpus", type=int, default=8, help="GPUs the check step expects")
  parser.add_argument("--batch_size", type=int, default=4096, help="global batch")
  parser.add_argument("--steps_to_train", type=int, default=50000)
  parser.add_argument("--workers", type=int, default=32, help="Grain worker processes")
  parser.add_argument("--jax_version", default="0.10.2")
  commands.add_step_arguments(parser, STEPS)
  args = commands.parse_args(parser, argv)
  if args.batch_size % args.gpus:
    raise SystemExit(f"--batch_size {args.batch_size} must be divisible by --gpus {args.gpus}")
  todo = [c for step in args.steps.split(",") for c in step_commands(args, step.strip())]
  return commands.run_all(todo, args.dry_run)


if __name__ == "__main__":
  sys.exit(main())
