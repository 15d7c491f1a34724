"""Google Takeout Fitbit reading speed: day-file records per second per core.

Writes a synthetic export (tests/pipeline/sources/conftest.py write_takeout_export:
heart_rate every 5 s, steps and altitude per minute, in America/New_York local time
across the fall-back change, each day file running 10 minutes into the next) and
reads it whole with takeout_fitbit.read_takeout_fitbit on one core, as lsm-pipeline
does for one export: json.load of every day file, the dateTime parse, the DST rule,
the export-wide repeat rule and the per-minute HR means.
Writes benchmarks/results/takeout_fitbit.json.
Run: .venv/bin/python benchmarks/takeout_fitbit_throughput.py [--days 14] [--repeats 3]
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "pipeline" / "sources"))

from conftest import write_takeout_export  # noqa: E402  (the tests' generator)
from pipeline.sources import takeout_fitbit  # noqa: E402

import results_file  # noqa: E402  benchmarks/results_file.py, next to this script


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--days", type=int, default=14)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" /
                                              "takeout_fitbit.json"))
  args = parser.parse_args()
  os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
  with tempfile.TemporaryDirectory() as tmp:
    folder = pathlib.Path(tmp) / "u01" / "Takeout" / "Fitbit" / "Global Export Data"
    write_takeout_export(folder, first_day="2026-10-25", days=args.days)
    paths = sorted(str(p) for p in folder.glob("*.json"))
    megabytes = sum(os.path.getsize(p) for p in paths) / 1e6
    best, result = np.inf, None
    for _ in range(args.repeats):
      start = time.perf_counter()
      result = takeout_fitbit.read_takeout_fitbit(paths, tz="America/New_York")
      best = min(best, time.perf_counter() - start)
  result.check_accounting()
  results_file.write({
      "days": args.days, "files": len(paths), "megabytes": round(megabytes, 1),
      "records": result.entries_read, "readings": len(result.readings),
      "seconds": round(best, 3),
      "records_per_s_per_core": round(result.entries_read / best),
      "megabytes_per_s_per_core": round(megabytes / best, 1),
      "counts": result.counts(),
      "note": "shared 2-core machine (other jobs running); best of repeats",
  }, args.output)


if __name__ == "__main__":
  main()
