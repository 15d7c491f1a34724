"""lsm-train: pretrain the LSM masked autoencoder."""

from schemas.not_built import exit_not_built


def main() -> None:
  exit_not_built("lsm-train", 5, "pretrain the LSM masked autoencoder on window shards")
