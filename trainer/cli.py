"""Shared start-up for the trainer's absl commands (lsm-train, lsm-eval, lsm-scaling)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from absl import app, flags
from absl import logging as absl_logging

# Libraries whose INFO lines drown the trainer's own: Orbax logs a dozen lines per
# checkpoint save or restore (handlers, paths, throughput).
QUIET_LIBRARIES = (f"{os.sep}orbax{os.sep}",)


class QuietLibraries(logging.Filter):
  """Drops INFO and DEBUG records logged from QUIET_LIBRARIES' source files unless
  --verbosity is raised above 0 (absl's INFO); their warnings and errors always pass."""

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.WARNING or absl_logging.get_verbosity() > 0
            or not any(part in record.pathname for part in QUIET_LIBRARIES))


def run(main: Callable[[list[str]], None], module_name: str) -> None:
  """app.run, with a --help that prints the command's own doc and flags, then exits 0,
  and the QuietLibraries filter on absl's log handler.

  absl's own --help exits 1 and, under a console-script wrapper, lists no flags.
  """
  if any(arg in ("-h", "--help", "--helpshort") for arg in sys.argv[1:]):
    module = sys.modules[module_name]
    print(module.__doc__)
    print(flags.FLAGS.module_help(module))
    sys.exit(0)
  handler = absl_logging.get_absl_handler()
  if not any(isinstance(f, QuietLibraries) for f in handler.filters):
    handler.addFilter(QuietLibraries())
  app.run(main)
