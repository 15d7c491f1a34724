"""Scaling sweep config: `lsm-scaling --config=trainer/configs/scaling.py --workdir=SWEEP
--config.data_dir=PIPELINE_OUTPUT`.

Three sets of runs, each fitted with L = a + b X^c (trainer/scaling_law.py):

  data arm        one model size (data_size) over nested subsets of the train split's
                  subjects (subjects), each subject's first windows_per_subject windows;
                  every run trains until validation stops improving (early stopping)
                  or data_steps steps. Fit: best validation loss vs training windows.
  parameter arm   every size in model_sizes on the first param_subjects subjects, all
                  their windows, each trained for a fixed number of data tokens per
                  parameter (tokens_per_parameter x parameters / (batch x 180 patches)
                  steps, at least min_steps; Hoffmann et al.'s compute-optimal sizing:
                  each size is trained to a comparable point), early stopping as above.
                  Fit: best validation loss vs parameters.
  compute         the frontier over every evaluation of every run (FLOPs so far,
                  validation loss). Fit: frontier loss vs training FLOPs.

plus LSM's "same hours, fewer subjects" comparison: the data arm's size trained on
as many windows as its largest run, from 1/fewer_subjects as many subjects.

The default grid takes about 65 minutes on 2 CPU cores (benchmarks/scaling_sweep.py
makes a cohort and runs it; benchmarks/README.md has the result) and needs a train
split of at least 64 subjects with about 50 windows each: the data arm spans 2 to 64
subjects (32x in windows and hours), the parameter arm pico..tiny (45k to 2.2M
parameters, 48x). Every run is validated on the same windows (the first
eval_batches x batch_size of the valid split, fixed masks). On accelerators the same
command takes LSM's sizes and a bigger budget, e.g.
  --config.model_sizes=tiny,xs,s,b --config.subjects=16,64,256,1024,4096
  --config.train.batch_size=1024 --config.data_steps=50000
"""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.data_dir = ""
  # Data arm.
  config.data_size = "micro"            # trainer/configs/mae.py size
  config.subjects = "2,4,8,16,32,64"    # training subjects per run (nested subsets)
  config.windows_per_subject = 12       # each subject's first windows (0 = all)
  config.data_steps = 1500              # at most; early stopping ends most runs sooner
  # Parameter arm.
  config.model_sizes = "pico,nano,micro,mini,tiny"
  config.param_subjects = 64            # its training subjects, all their windows
  config.tokens_per_parameter = 6.0     # data tokens (windows x patches) per parameter
  config.min_steps = 100                # floor of the tokens-per-parameter rule
  # "Same hours, fewer subjects": the data arm's largest window count from
  # 1/fewer_subjects of its subjects (0 = no comparison run).
  config.fewer_subjects = 4
  # Every run: evaluations per run (the validation curve the compute frontier reads)
  # and early stopping after this many evaluations without a lower validation loss.
  config.evals_per_run = 15
  config.early_stopping_evals = 3
  config.mask_strategy = "random"       # the pre-training masking of every run (LSM's)
  # Overrides of trainer/configs/mae.py applied to every run (flattened keys allowed).
  config.train = ml_collections.ConfigDict(dict(
      batch_size=32,
      learning_rate=1e-3,
      warmup_fraction=0.05,
      log_every_steps=25,
      eval_batches=16,           # 512 fixed validation windows, the same for every run
      keep_checkpoints=1,
      plot_windows=0,
      progress_bar=False,
      seed=0,
  ))
  return config
