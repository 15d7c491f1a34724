"""One GPU host (e.g. 8 x A100/H100), bfloat16: `--config=trainer/configs/gpu_bf16.py:SIZE`.

trainer/configs/mae.py's defaults (SIZE defaults to b here) with the overrides a GPU
host needs; each says why. Anything can still be overridden on the command line
(--config.batch_size=...).
"""

from __future__ import annotations

import ml_collections

from trainer.configs import mae


def get_config(size: str = "b") -> ml_collections.ConfigDict:
  """mae.get_config(size) for a GPU host; raises ValueError on an unknown size."""
  config = mae.get_config(size or "b")
  # Tensor cores run bf16 matmuls at several times their float32 rate; parameters and
  # optimiser state stay float32 (mixed precision).
  config.model.dtype = "bfloat16"
  # LSM's global batch (LSM_FACTS.md); learning_rate 0 keeps LSM's 5e-3 at 4096.
  config.batch_size = 4096
  config.learning_rate = 0.0  # LSM's rule (mae.py's CPU default is 1e-3)
  config.num_train_steps = 50_000  # LSM's schedule
  # Decoding and augmenting 4096 windows a step outruns one host thread: Grain worker
  # processes (two per GPU of an 8-GPU host) keep the GPUs fed.
  config.workers = 16
  config.worker_buffer = 4
  config.prefetch_batches = 4  # more batches staged on the GPUs hide host jitter
  # Steps of batch 4096 are long: log, evaluate and checkpoint by the 50k-step
  # schedule (every 2% of it) rather than the CPU defaults' short runs.
  config.log_every_steps = 50
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 1000
  config.eval_batches = 4
  config.progress_bar = False  # logs go to a file, not a terminal
  return config
