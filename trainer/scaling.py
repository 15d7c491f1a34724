"""lsm-scaling: train a grid of model and data sizes and fit scaling laws."""

from schemas.not_built import exit_not_built


def main() -> None:
  exit_not_built("lsm-scaling", 6, "scaling-law sweeps and power-law fits")
