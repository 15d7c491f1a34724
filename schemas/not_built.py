"""Entry point for console scripts whose issue has not landed yet: says so, exits 2."""

import sys


def exit_not_built(command: str, issue: int, what: str) -> None:
  """Prints an honest 'not built yet' for `command` (also for --help) and exits 2."""
  print(f"{command}: {what}\n\nNot built yet: this command arrives with issue #{issue}.",
        file=sys.stderr)
  sys.exit(2)
