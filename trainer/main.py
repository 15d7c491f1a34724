"""lsm-train: pretrain the LSM masked autoencoder.

usage: lsm-train --config=trainer/configs/mae.py:SIZE --workdir=DIR
           --config.data_dir=PIPELINE_OUTPUT [--config.KEY=VALUE ...]

SIZE: tiny, xs, s, b, l (LSM's sizes) or pico, nano, micro, mini (smaller, for CPU sweeps).
Keys include batch_size, num_train_steps, learning_rate, seed, mask.strategy,
mask.ratio, checkpoint_every_steps, eval_every_steps (trainer/configs/mae.py lists all).
Re-running the same command resumes from the workdir's last intact checkpoint.
"""

from __future__ import annotations


from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from trainer import cli, train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and plots.")
config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. trainer/configs/mae.py:tiny.",
    lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def _main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  result = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  logging.info("finished at step %d: %s", result["step"], result)


def main() -> None:
  cli.run(_main, __name__, "lsm-train")


if __name__ == "__main__":
  main()
