"""Trainer throughput: loader windows/s, training windows/s and FLOP/s vs matmul peak.

  PYTHONPATH=. python benchmarks/trainer_throughput.py [--data_dir DIR] [--sizes tiny,xs]
      [--attention flax] [--cpu_devices 1]

Writes benchmarks/results/trainer_throughput.json. Without --data_dir it writes a
synthetic data directory (schemas.record windows in ArrayRecord shards, the same
writer the trainer's tests use). The defaults are the product's: the trainer's
CPU device split (cli.use_cpu_cores) and attention; --attention flax and
--cpu_devices 1 measure the reference step instead.

Honesty: the dense-matmul peak is measured right before each model's timing, in the
same process; the compute-only rate runs with no loader thread alive (Grain's read-
ahead would compete for the cores); each measurement records how much CPU other
processes used meanwhile (results_file.Quietness) and the result file flags a run
that was not quiet.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from schemas.testing import write_data_dir  # pylint: disable=wrong-import-position
from trainer import cli, input_pipeline, models, train  # pylint: disable=wrong-import-position
from trainer.configs import mae  # pylint: disable=wrong-import-position

import results_file  # pylint: disable=wrong-import-position  (benchmarks/, next to this)


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
  """Best dense float32 matmul FLOP/s over a few runs on the default device (all cores:
  XLA's matmuls use every core of the host), the machine's practical peak."""
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 / best


def loader_rate(config, batches: int) -> float:
  it = input_pipeline.train_iterator(config)
  next(it)
  t = time.perf_counter()
  for _ in range(batches):
    next(it)
  rate = batches * config.batch_size / (time.perf_counter() - t)
  if hasattr(it, "close"):
    it.close()
  return rate


def first_batch(config) -> dict:
  """One batch, with the iterator closed so no read-ahead runs beside the timing."""
  it = input_pipeline.train_iterator(config)
  batch = next(it)
  if hasattr(it, "close"):
    it.close()
  return batch


def train_rate(config, steps: int) -> dict:
  """Compute-only and loader-fed training rates of one config, with the matmul peak
  measured just before."""
  trainer = train.Trainer(config)
  batch = trainer.device_batch(first_batch(config))
  t = time.perf_counter()
  flops = trainer.compile(batch)
  compile_s = time.perf_counter() - t
  trainer.state, m = trainer.train_step(trainer.state, batch)
  jax.block_until_ready(m)
  with results_file.Quietness() as quiet:
    peak = matmul_peak()
    t = time.perf_counter()  # compute only: the same device batch every step
    for _ in range(steps):
      trainer.state, m = trainer.train_step(trainer.state, batch)
    jax.block_until_ready(m)
    compute_s = (time.perf_counter() - t) / steps
  it = input_pipeline.train_iterator(config)
  stream = input_pipeline.prefetch_to_device(it, config.prefetch_batches,
                                             trainer.batch_sharding, config.batch_size)
  next(stream)
  t = time.perf_counter()  # end to end: the loader feeding the step through the prefetcher
  for _ in range(steps):
    b, _ = next(stream)
    trainer.state, m = trainer.train_step(trainer.state, b)
    float(m["loss"])
  e2e_s = (time.perf_counter() - t) / steps
  if hasattr(it, "close"):
    it.close()
  return {
      "size": config.size, "dtype": config.model.dtype, "attention": config.model.attention,
      "devices": trainer.mesh.devices.size,
      "parameters": models.count_params(trainer.model_config),
      "batch_size": config.batch_size, "compile_seconds": round(compile_s, 1),
      "flops_per_step": flops, "step_seconds": compute_s,
      "matmul_peak_flops_per_second": peak,
      "train_windows_per_second_compute": config.batch_size / compute_s,
      "train_windows_per_second_with_loader": config.batch_size / e2e_s,
      "achieved_flops_per_second": flops / compute_s,
      "fraction_of_matmul_peak": flops / compute_s / peak,
      **quiet.record(),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--data_dir", default="")
  parser.add_argument("--sizes", default="tiny,xs")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--dtype", default="float32", help="compute dtype, e.g. bfloat16")
  parser.add_argument("--attention", default="", help="models.ATTENTION name; default: the config's")
  parser.add_argument("--cpu_devices", type=int, default=0,
                      help="CPU devices to split the batch over; 0 = the trainer's default")
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--loader_batches", type=int, default=20)
  parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results",
                                                       "trainer_throughput.json"))
  args = parser.parse_args()
  cli.use_cpu_cores(args.cpu_devices)
  flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags
  data_dir = args.data_dir or write_data_dir(tempfile.mkdtemp(prefix="lsm-bench-"),
                                             {"train": 1024, "valid": 64}, shards=4)
  results = {"devices": [str(d) for d in jax.devices()], "loader": {}, "train": []}
  base = mae.get_config("tiny")
  base.data_dir = data_dir
  base.batch_size = args.batch_size
  for workers in (0, 2):
    base.workers = workers
    rate = loader_rate(base, args.loader_batches)
    results["loader"][f"workers_{workers}"] = rate
    print(f"loader, {workers} workers: {rate:.0f} windows/s", flush=True)
  for size in args.sizes.split(","):
    config = mae.get_config(size)
    config.mask.strategy = "random"  # LSM's step: 36 encoder tokens (the figures' basis)
    config.data_dir = data_dir
    config.batch_size = args.batch_size
    config.model.dtype = args.dtype
    config.model.attention = args.attention or config.model.attention
    row = train_rate(config, args.steps)
    results["train"].append(row)
    print(f"{size}: {row['train_windows_per_second_compute']:.1f} windows/s, "
          f"{row['achieved_flops_per_second'] / 1e9:.1f} GFLOP/s = "
          f"{100 * row['fraction_of_matmul_peak']:.0f}% of the "
          f"{row['matmul_peak_flops_per_second'] / 1e9:.0f} GFLOP/s peak "
          f"(other processes {row['other_processes_cores']:.2f} cores)", flush=True)
  results["quiet"] = all(row["quiet"] for row in results["train"])
  results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  results_file.write(results, args.output)


if __name__ == "__main__":
  main()
