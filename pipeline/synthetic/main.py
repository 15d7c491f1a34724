"""lsm-synth: synthetic wearable cohort generator."""

from schemas.not_built import exit_not_built


def main() -> None:
  exit_not_built("lsm-synth", 3, "generate a synthetic per-minute wearable cohort")
