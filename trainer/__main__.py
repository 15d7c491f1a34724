"""`python -m trainer` is lsm-train."""

from trainer.main import main

if __name__ == "__main__":
  main()
