"""Shared start-up for the trainer's absl commands (lsm-train, lsm-eval, lsm-scaling)."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Callable

from absl import app, flags
from absl import logging as absl_logging
import jax

from schemas import manifest as manifest_lib
from schemas import record as record_lib
from trainer import masking, models

# Libraries whose INFO lines drown the trainer's own: Orbax logs a dozen lines per
# checkpoint save or restore (handlers, paths, throughput).
QUIET_LIBRARIES = (f"{os.sep}orbax{os.sep}",)


class CommandError(Exception):
  """An error whose message says all the user needs: printed alone, no traceback."""


# Bad data directories, records and checkpoints: the message names the file and what
# is wrong, so the commands print it as one line and exit 1.
USER_ERRORS = (manifest_lib.ManifestError, record_lib.RecordError, CommandError,
               masking.MaskConfigError, models.ModelConfigError)


class QuietLibraries(logging.Filter):
  """Drops INFO and DEBUG records logged from QUIET_LIBRARIES' source files unless
  --verbosity is raised above 0 (absl's INFO); their warnings and errors always pass."""

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.WARNING or absl_logging.get_verbosity() > 0
            or not any(part in record.pathname for part in QUIET_LIBRARIES))


def use_cpu_cores(devices: int = 0) -> None:
  """One JAX CPU device per core, so that a CPU step runs data parallel.

  XLA's CPU backend runs one op at a time and many of a small model's ops (fusions
  of elementwise work, softmax) on one thread, so a single device keeps two cores
  about half busy; two devices each running half the batch on its own thread train
  tiny ~1.2x faster on 2 cores (benchmarks/README.md, "Trainer"). Call before JAX
  starts a backend (`run` does, for every command); a no-op when XLA_FLAGS
  already sets a host device count, for multi-process runs (LSM_DISTRIBUTED=1), or
  once a backend has started. Accelerators are unaffected: they stay the default
  backend and the CPU devices are not used for training. `devices` > 0 asks for
  that many CPU devices instead (the benchmarks' reference step uses 1).
  """
  preset = ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
            or os.environ.get("LSM_DISTRIBUTED") == "1")
  if preset and not devices:
    return
  try:
    jax.config.update("jax_num_cpu_devices", devices or len(os.sched_getaffinity(0)))
  except RuntimeError as e:  # a backend has started: keep its devices
    absl_logging.info("CPU device count unchanged: %s", e)


def parse_flags(command: str) -> Callable[[list[str]], list[str]]:
  """absl's flag parser, with a `--config.KEY=VALUE` override of a field the config
  does not have printed as one line "COMMAND: --config.KEY: ..." (exit status 1),
  with ml_collections' "did you mean" suggestion when it has one:
  ml_collections raises AttributeError or KeyError there, which absl does not catch,
  so the user got a traceback that never names the flag."""

  def parse(argv: list[str]) -> list[str]:
    try:
      return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError) as e:
      # The message is the field's repr, nested in quotes, then maybe a suggestion.
      field = (re.findall(r"\w+", str(e)) or ["?"])[0]
      suggestion = re.search(r'Did you mean "(\w+)"', str(e))
      names = [name for name in (arg.split("=", 1)[0] for arg in argv[1:])
               if re.match(r"--?(no)?config\.", name) and field in name.split(".")]
      sys.exit(f"{command}: {', '.join(names) or 'a --config override'}: the config has no "
               f"field {field!r}"
               + (f"; did you mean {suggestion.group(1)!r}?" if suggestion else ""))

  return parse


def run(main: Callable[[list[str]], None], module_name: str, command: str) -> None:
  """app.run, with one JAX CPU device per core (use_cpu_cores), a --help that
  prints the command's own doc and flags, then exits 0, the QuietLibraries filter on
  absl's log handler, and USER_ERRORS and overrides of fields the config lacks
  (parse_flags) printed as one line "COMMAND: message" (exit status 1).

  absl's own --help exits 1 and, under a console-script wrapper, lists no flags.
  """
  if any(arg in ("-h", "--help", "--helpshort") for arg in sys.argv[1:]):
    module = sys.modules[module_name]
    print(module.__doc__)
    print(flags.FLAGS.module_help(module))
    sys.exit(0)
  use_cpu_cores()
  handler = absl_logging.get_absl_handler()
  if not any(isinstance(f, QuietLibraries) for f in handler.filters):
    handler.addFilter(QuietLibraries())

  def main_or_message(argv: list[str]) -> None:
    try:
      main(argv)
    except USER_ERRORS as e:
      sys.exit(f"{command}: {e}")

  app.run(main_or_message, flags_parser=parse_flags(command))
