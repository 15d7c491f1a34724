"""lsm-eval: generative and discriminative evaluation against baselines."""

from schemas.not_built import exit_not_built


def main() -> None:
  exit_not_built("lsm-eval", 6, "evaluate a trained model against baselines")
