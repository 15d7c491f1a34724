"""python -m pipeline: the same as lsm-pipeline."""

from pipeline.main import main

if __name__ == "__main__":
  main()
