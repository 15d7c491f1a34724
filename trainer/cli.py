"""Shared start-up for the trainer's absl commands (lsm-train, lsm-eval, lsm-scaling)."""

from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags


def run(main: Callable[[list[str]], None], module_name: str) -> None:
  """app.run, with a --help that prints the command's own doc and flags, then exits 0.

  absl's own --help exits 1 and, under a console-script wrapper, lists no flags.
  """
  if any(arg in ("-h", "--help", "--helpshort") for arg in sys.argv[1:]):
    module = sys.modules[module_name]
    print(module.__doc__)
    print(flags.FLAGS.module_help(module))
    sys.exit(0)
  app.run(main)
