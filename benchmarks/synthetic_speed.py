"""lsm-synth speed: 1,000 subjects x 7 days (10M subject-minutes x 26) as wide Parquet.

Target (issue #3): under one minute on 2 cores. Writes benchmarks/results/synthetic_speed.json.
Run: .venv/bin/python benchmarks/synthetic_speed.py [--subjects 1000 --days 7 --workers 2]
The load average at the start is recorded: on a shared machine the wall time is an
upper bound, and the CPU seconds (parent + workers) say what the work itself costs.
"""

import argparse
import json
import os
import pathlib
import platform
import resource
import shutil
import tempfile
import time

from pipeline.synthetic import main as synth_main


def _cpu_seconds() -> float:
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--subjects", type=int, default=1000)
  parser.add_argument("--days", type=int, default=7)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--layout", default="wide")
  parser.add_argument("--format", default="parquet", dest="fmt")
  parser.add_argument("--output", default=str(pathlib.Path(__file__).parent / "results" /
                                              "synthetic_speed.json"))
  args = parser.parse_args()
  load = os.getloadavg()
  out = tempfile.mkdtemp(prefix="lsm_synth_speed_")
  try:
    cpu, start = _cpu_seconds(), time.perf_counter()
    truth = synth_main.generate(args.subjects, args.days, 0, out, args.layout, args.fmt,
                                workers=args.workers)
    wall = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu
    size = sum(p.stat().st_size for p in pathlib.Path(out).rglob("*") if p.is_file())
  finally:
    shutil.rmtree(out)
  minutes = args.subjects * args.days * 1440
  result = {
      "subjects": args.subjects, "days": args.days, "layout": args.layout,
      "format": args.fmt, "workers": args.workers, "subject_minutes": minutes,
      "rows_written": truth["rows_written"], "readings_written": truth["readings_written"],
      "files": truth["files"], "bytes_written": size,
      "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
      "cpu_seconds_per_subject_week": round(cpu / args.subjects * 7 / args.days, 4),
      "subject_minutes_per_wall_second": round(minutes / wall),
      "target_wall_seconds": 60, "meets_target": wall < 60,
      # The work is CPU bound and splits evenly over workers: on otherwise idle cores the
      # wall time is about cpu / workers (plus a second of start-up).
      "wall_seconds_on_idle_cores_estimate": round(cpu / args.workers, 1),
      "meets_target_on_idle_cores_estimate": cpu / args.workers < 60,
      "load_average_at_start": [round(x, 2) for x in load],
      "cpus": os.cpu_count(), "machine": platform.machine(),
      "python": platform.python_version(),
      "note": "machine shared with other jobs; see load_average_at_start",
  }
  pathlib.Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
