"""Printing and running shell commands for the launch scripts.

Every launcher builds its commands as argument lists first, prints them in a form a
person can paste into a shell, and runs them only without --dry-run, so what a user
reviews is exactly what runs.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from typing import Sequence


def render(command: Sequence[str]) -> str:
  return " ".join(shlex.quote(part) for part in command)


def run_all(commands: Sequence[Sequence[str]], dry_run: bool) -> int:
  """Prints each command, then runs it unless dry_run; stops at the first failure."""
  for command in commands:
    print(("[dry-run] " if dry_run else "+ ") + render(command), flush=True)
    if dry_run:
      continue
    code = subprocess.call(list(command))
    if code:
      print(f"command failed with exit status {code}: {render(command)}", file=sys.stderr)
      return code
  return 0


def add_step_arguments(parser: argparse.ArgumentParser, steps: Sequence[str]) -> None:
  """The flags every step-by-step launcher shares: which steps, --dry-run, and lsm-train
  flags passed through after `--`."""
  parser.add_argument("--steps", default=",".join(steps))
  parser.add_argument("--dry-run", action="store_true", help="print, do not run")
  parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --, more lsm-train flags")


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None
               ) -> argparse.Namespace:
  """parser.parse_args without the `--` that separates pass-through flags."""
  args = parser.parse_args(argv)
  if getattr(args, "extra", None) and args.extra[0] == "--":
    args.extra = args.extra[1:]
  return args
