"""lsm-pipeline: raw per-minute streams to normalised 300-minute window shards."""

from schemas.not_built import exit_not_built


def main() -> None:
  exit_not_built("lsm-pipeline", 4, "raw wearable streams to ArrayRecord window shards")
