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
import time


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


def _busy_cpu_seconds() -> float:
  """CPU seconds every process on the machine has used since boot (/proc/stat)."""
  with open("/proc/stat") as f:
    fields = [int(x) for x in f.readline().split()[1:]]
  idle = fields[3] + fields[4]  # idle, iowait
  return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


class Quietness:
  """How much other work ran beside a measurement: a context manager.

  `other_cores` is the CPU time other processes used while the block ran (the
  machine's busy time from /proc/stat less this process's and its waited-for
  children's), in cores; the load averages are recorded before and after. A 2-core
  benchmark is `quiet` when other work used under 0.2 of a core on average (the
  threshold is ours: the noise of a few idle daemons, not a competing job).
  """

  QUIET_OTHER_CORES = 0.2

  def __enter__(self) -> "Quietness":
    self.load_before = [round(x, 2) for x in os.getloadavg()]
    self._start = (time.perf_counter(), _busy_cpu_seconds(), _own_cpu_seconds())
    return self

  def __exit__(self, *exc) -> None:
    wall, busy, own = (end - start for end, start in zip(
        (time.perf_counter(), _busy_cpu_seconds(), _own_cpu_seconds()), self._start))
    self.load_after = [round(x, 2) for x in os.getloadavg()]
    self.other_cores = max(busy - own, 0.0) / max(wall, 1e-9)

  def record(self) -> dict:
    """The fields a result file carries."""
    return {"load_average_before": self.load_before, "load_average_after": self.load_after,
            "other_processes_cores": round(self.other_cores, 3),
            "quiet": self.other_cores < self.QUIET_OTHER_CORES}
