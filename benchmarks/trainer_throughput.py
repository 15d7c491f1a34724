"""Trainer throughput: loader windows/s, training windows/s and FLOP/s vs matmul peak.

  PYTHONPATH=. python benchmarks/trainer_throughput.py [--data_dir DIR] [--sizes tiny,xs]

Writes benchmarks/results/trainer_throughput.json. Without --data_dir it writes a
small synthetic data directory (schemas.record windows in ArrayRecord shards, the
same writer the trainer's tests use). The dense matmul peak is measured in the same
run, so the achieved-FLOP/s ratio compares like with like on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from trainer import input_pipeline, models, train  # pylint: disable=wrong-import-position
from trainer.configs import mae  # pylint: disable=wrong-import-position


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
  """Best dense float32 matmul FLOP/s over a few runs (the machine's practical peak)."""
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


def train_rate(config, steps: int, peak: float) -> dict:
  trainer = train.Trainer(config)
  it = input_pipeline.train_iterator(config)
  batch = trainer.device_batch(next(it))
  t = time.perf_counter()
  flops = trainer.compile(batch)
  compile_s = time.perf_counter() - t
  trainer.state, m = trainer.train_step(trainer.state, batch)
  jax.block_until_ready(m)
  t = time.perf_counter()  # compute only: the same device batch every step
  for _ in range(steps):
    trainer.state, m = trainer.train_step(trainer.state, batch)
  jax.block_until_ready(m)
  compute_s = (time.perf_counter() - t) / steps
  stream = input_pipeline.prefetch_to_device(it, config.prefetch_batches,
                                             trainer.batch_sharding, config.batch_size)
  t = time.perf_counter()  # end to end: loader feeding the step through the prefetcher
  for _ in range(steps):
    b, _ = next(stream)
    trainer.state, m = trainer.train_step(trainer.state, b)
    float(m["loss"])
  e2e_s = (time.perf_counter() - t) / steps
  return {
      "size": config.size, "dtype": config.model.dtype, "parameters": models.count_params(trainer.model_config),
      "batch_size": config.batch_size, "compile_seconds": round(compile_s, 1),
      "flops_per_step": flops,
      "train_windows_per_second_compute": config.batch_size / compute_s,
      "train_windows_per_second_with_loader": config.batch_size / e2e_s,
      "achieved_flops_per_second": flops / compute_s,
      "fraction_of_matmul_peak": flops / compute_s / peak,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--data_dir", default="")
  parser.add_argument("--sizes", default="tiny,xs")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--dtype", default="float32", help="compute dtype, e.g. bfloat16")
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--loader_batches", type=int, default=20)
  parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results",
                                                       "trainer_throughput.json"))
  args = parser.parse_args()
  flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags
  data_dir = args.data_dir or write_data_dir(tempfile.mkdtemp(prefix="lsm-bench-"),
                                             {"train": 1024, "valid": 64}, shards=4)
  peak = matmul_peak()
  print(f"dense float32 matmul peak: {peak / 1e9:.1f} GFLOP/s", flush=True)
  results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "devices": [str(d) for d in jax.devices()],
                         "note": "2-core machine shared with other jobs while measured"},
             "matmul_peak_flops_per_second": peak, "loader": {}, "train": []}
  base = mae.get_config("tiny")
  base.data_dir = data_dir
  base.batch_size = args.batch_size
  for workers in (0, 2):
    base.workers = workers
    rate = loader_rate(base, args.loader_batches)
    results["loader"][f"workers_{workers}"] = rate
    print(f"loader, {workers} workers: {rate:.0f} windows/s", flush=True)
  base.workers = 0
  for size in args.sizes.split(","):
    config = mae.get_config(size)
    config.data_dir = data_dir
    config.batch_size = args.batch_size
    config.model.dtype = args.dtype
    row = train_rate(config, args.steps, peak)
    results["train"].append(row)
    print(json.dumps(row), flush=True)
  results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(results, f, indent=2)
  print(f"peak RSS {results['peak_rss_mib']:.0f} MiB; wrote {args.output}")


if __name__ == "__main__":
  main()
