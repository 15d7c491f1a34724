"""python -m pipeline: the same as lsm-pipeline."""

from pipeline.main import cli

if __name__ == "__main__":
  cli()
