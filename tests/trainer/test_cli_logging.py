"""The trainer commands' log filter: Orbax's INFO chatter goes, its warnings stay."""

import logging
import os

from absl import logging as absl_logging

from trainer import cli


def record(path: str, level: int) -> logging.LogRecord:
  return logging.LogRecord("absl", level, path, 1, "message", None, None)


def test_orbax_info_is_dropped_and_its_warnings_kept():
  quiet = cli.QuietLibraries()
  orbax_file = os.path.join("site-packages", "orbax", "checkpoint", "checkpoint_manager.py")
  assert not quiet.filter(record(orbax_file, logging.INFO))
  assert not quiet.filter(record(orbax_file, logging.DEBUG))
  assert quiet.filter(record(orbax_file, logging.WARNING))
  assert quiet.filter(record(orbax_file, logging.ERROR))
  assert quiet.filter(record(os.path.join("trainer", "train.py"), logging.INFO))


def test_raised_verbosity_shows_orbax_info():
  before = absl_logging.get_verbosity()
  try:
    absl_logging.set_verbosity(1)
    assert cli.QuietLibraries().filter(
        record(os.path.join("orbax", "checkpoint", "x.py"), logging.INFO))
  finally:
    absl_logging.set_verbosity(before)
