"""Apple Health export.xml: peak memory and speed of the adapter on a ~1 GB export.

Writes a synthetic export.xml of --size_gb (streaming, days of a watch and a phone
from tests/pipeline/sources/apple_health_export.py, the tests' generator, about a
real watch export's record mix, grouped by type as Health writes them) under
--workdir, then reads it with pipeline.sources.apple_health in a fresh process and
records that process's peak RSS (getrusage ru_maxrss, which includes the ~150 MB
of numpy/pandas/absl imports, also recorded as `rss_after_imports_mb`), its
wall and CPU seconds, and entries (Record/Workout/... elements) per second per
core (one process, one core). Target (issue 15): peak RSS < 500 MB for 1 GB.
Writes benchmarks/results/apple_health.json.

  PYTHONPATH=$PWD python benchmarks/apple_health_memory.py [--size_gb 1.0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import resource
import subprocess
import sys
import time
from typing import IO

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "pipeline" / "sources"))

import results_file  # benchmarks/results_file.py, next to this script  # noqa: E402


def generate(path: pathlib.Path, size_bytes: int) -> dict:
  """Writes whole days to `path` until it holds about size_bytes, grouped by record
  type as the Health app writes them (all heart rates, then all step counts, ...):
  each type is streamed to its own part file first, then the parts are joined."""
  from apple_health_export import Rec, day, write_export

  start = time.time()
  first = dt.datetime(2016, 1, 1, 8, tzinfo=dt.timezone.utc)
  parts_dir = path.parent / "parts"
  parts_dir.mkdir(parents=True, exist_ok=True)
  parts: dict[str, IO[str]] = {}
  written, n_days = 0, 0
  while written < size_bytes:
    for entry in day(first + dt.timedelta(days=n_days)):
      kind = entry.type if isinstance(entry, Rec) else entry.split()[0]
      if kind not in parts:
        parts[kind] = open(parts_dir / f"{len(parts)}.xml", "w+", encoding="utf-8")
      text = entry.xml() if isinstance(entry, Rec) else entry
      parts[kind].write(text)
      written += len(text)
    n_days += 1

  def joined():
    for part in parts.values():
      part.seek(0)
      yield from part
      part.close()
      os.unlink(part.name)

  with open(path, "w", encoding="utf-8") as f:
    write_export(f, joined())
  parts_dir.rmdir()
  return {"bytes": path.stat().st_size, "days": n_days, "record_types": len(parts),
          "generate_s": round(time.time() - start, 1)}


def parse(path: str) -> dict:
  """Reads the export in this process; peak RSS and times (run in a fresh process)."""
  from pipeline.sources import apple_health
  after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  wall, cpu = time.time(), time.process_time()
  result = apple_health.read_apple_health([path], subject_id="bench")
  result.check_accounting()
  wall, cpu = time.time() - wall, time.process_time() - cpu
  peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return {"entries_read": result.entries_read, "entries_used": result.entries_used,
          "readings": len(result.readings),
          "rss_after_imports_mb": round(after_imports / 1024, 1),
          "peak_rss_mb": round(peak_kb / 1024, 1),
          "parse_wall_s": round(wall, 1), "parse_cpu_s": round(cpu, 1),
          "entries_per_s_per_core": round(result.entries_read / cpu),
          "entries_per_s_wall": round(result.entries_read / wall)}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--size_gb", type=float, default=1.0)
  ap.add_argument("--workdir", default="/tmp/apple_health_bench")
  ap.add_argument("--keep", action="store_true", help="keep the generated export")
  ap.add_argument("--parse_only", help=argparse.SUPPRESS)
  ap.add_argument("--output", default=str(REPO / "benchmarks" / "results" /
                                          "apple_health.json"))
  args = ap.parse_args()
  if args.parse_only:
    print(json.dumps(parse(args.parse_only)))
    return
  load_at_start = [round(x, 2) for x in os.getloadavg()]
  path = pathlib.Path(args.workdir) / "export.xml"
  made = generate(path, int(args.size_gb * 1e9))
  try:
    child = subprocess.run([sys.executable, __file__, "--parse_only", str(path)],
                           check=True, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
  finally:
    if not args.keep:
      path.unlink()
  parsed = json.loads(child.stdout.strip().splitlines()[-1])
  results_file.write({"benchmark": "apple_health_memory", "export": made, **parsed,
                      "target_peak_rss_mb": 500,
                      "load_average_at_start": load_at_start},
                     args.output)


if __name__ == "__main__":
  main()
