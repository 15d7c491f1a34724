"""Scaling sweep config: `lsm-scaling --config=trainer/configs/scaling.py --workdir=SWEEP
--config.data_dir=PIPELINE_OUTPUT`.

A grid of model sizes (trainer/configs/mae.py) x data sizes (numbers of training
subjects, nested subsets of the train split by subject hash), every run with the same
budget of steps x batch, so the data axis measures what more subjects buy at a fixed
budget (a small subset is seen many times over) and the parameter axis what a bigger
model buys on the same data.

The default grid is sized for 2 CPU cores (its wall time: README, Evaluation, and
benchmarks/README.md): nano, micro, mini, tiny (0.16M to 2.2M parameters, 13.6x) x 2, 5,
10, 20 subjects (10x), 500 steps of batch 16 each. On accelerators the same command
takes LSM's sizes and a bigger budget, e.g.
  --config.model_sizes=tiny,xs,s,b --config.subjects=10,30,100,300
  --config.train.num_train_steps=50000 --config.train.batch_size=1024
"""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.data_dir = ""
  config.model_sizes = "nano,micro,mini,tiny"   # trainer/configs/mae.py sizes
  config.subjects = "2,5,10,20"                 # training subjects per data size
  # Overrides of trainer/configs/mae.py applied to every run (flattened keys allowed).
  config.train = ml_collections.ConfigDict(dict(
      batch_size=16,
      num_train_steps=500,
      learning_rate=1e-3,
      warmup_fraction=0.05,
      log_every_steps=25,
      eval_every_steps=250,
      eval_batches=8,            # 128 fixed validation windows, the same for every run
      checkpoint_every_steps=250,
      keep_checkpoints=1,
      plot_windows=0,
      progress_bar=False,
      seed=0,
  ))
  config.mask_strategy = "random"  # the pre-training masking of every run
  return config
