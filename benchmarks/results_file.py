"""Where every benchmark's numbers go: benchmarks/results/NAME.json plus the machine.

Benchmarks run as scripts (`python benchmarks/NAME.py`), so this sits next to them and
is imported by its bare name. The machine fields are written by one function so every
result can be compared with the others on what it ran on.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform


def machine() -> dict:
  """What a number depends on: CPU, core count, load when it was measured, Python."""
  return {
      "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
      "cpus": os.cpu_count(),
      "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
      "python": platform.python_version(),
  }


def write(result: dict, path: str | os.PathLike) -> None:
  """Adds the machine fields, writes `path` as indented JSON and prints it."""
  result = {**result, **machine()}
  out = pathlib.Path(path)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=2) + "\n")
  print(json.dumps(result, indent=2))
