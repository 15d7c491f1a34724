"""A TPU v5e slice (e.g. v5litepod-16: 4 hosts x 4 chips), as LSM was trained:
`--config=trainer/configs/tpu_v5e.py:SIZE` (deploy/tpu/launch.py runs it on each host).

trainer/configs/mae.py's defaults (SIZE defaults to b here) with the overrides a
multi-host TPU slice needs; each says why.
"""

from __future__ import annotations

import ml_collections

from trainer.configs import mae


def get_config(size: str = "b") -> ml_collections.ConfigDict:
  """mae.get_config(size) for a TPU v5e slice; raises ValueError on an unknown size."""
  config = mae.get_config(size or "b")
  # The MXU computes in bfloat16 natively (float32 matmuls take several passes);
  # parameters and optimiser state stay float32.
  config.model.dtype = "bfloat16"
  # LSM's recipe (LSM_FACTS.md): global batch 4096, 50k steps, lr 5e-3 at 4096
  # (learning_rate 0 keeps it).
  config.batch_size = 4096
  config.learning_rate = 0.0  # LSM's rule (mae.py's CPU default is 1e-3)
  config.num_train_steps = 50_000
  # A slice is several hosts: each runs the same command and jax.distributed joins
  # them (the TPU runtime supplies the coordinator); each host reads its own share.
  config.distributed = True
  # v5e has 16 GB of HBM per chip: b (110M parameters, ~1.8 GB with AdamW state)
  # stays replicated; l (328M, ~5.2 GB) is sharded (FSDP) to leave room for activations.
  config.shard_params = size == "l"
  # TPU VM hosts have many cores: Grain worker processes feed 4 chips per host.
  config.workers = 16
  config.worker_buffer = 4
  config.prefetch_batches = 4
  # Log, evaluate and checkpoint by the 50k-step schedule (every 2% of it).
  config.log_every_steps = 50
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 1000
  config.eval_batches = 4
  config.progress_bar = False  # each host logs to a file
  return config
