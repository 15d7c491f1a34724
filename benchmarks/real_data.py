"""lsm-pipeline on the full real device recordings, with LSM's default 300-minute windows.

Runs pipeline.main.run once per folder of the shared real-data set (README there:
Fitbit minute and heartrate_seconds exports, an Empatica E4 session, a Garmin
export, NHANES activity counts), each with --format auto and every other option
at its default except what the export needs (--tz for Fitbit local times). It
records, per folder, what the manifest says: entries read, dead letters and extras
by reason, subjects, windows written per split and dropped by reason, the features
present, and the wall time, in benchmarks/results/real_data.json. Unlike the tests
(excerpts in tests/data/), this shows what the default settings make of whole
recordings.

Run: PYTHONPATH=. python benchmarks/real_data.py [../shared/data/real] [--only garmin]
Without the folder (it is not part of the repository) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import tempfile
import time

import results_file  # benchmarks/results_file.py, next to this script

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "real"
KEY = "real-data-benchmark"  # fixed so that reruns hash alike; no real secret

# folder -> (input globs relative to it, extra flags). Fitabase exports are local
# time: the ActiWearCheck export is US Eastern, the 2016 survey set US Central
# (as in tests/pipeline/sources/test_fitbit.py).
RUNS = {
    "fitbit_minute": (["*.csv"], ["--tz=America/New_York"]),
    "fitbit_heartrate_seconds": (["*.csv.gz"], ["--tz=America/Chicago"]),
    "empatica_e4": ([""], []),  # the session folder itself
    "garmin": (["data.csv", "acc.csv"], []),
    "nhanes_minute_counts": (["*.csv"], []),
}


def _summary(out: str, wall: float) -> dict:
  """The manifest's counts, flattened to what the README's table reports."""
  with open(os.path.join(out, "manifest.json")) as f:
    m = json.load(f)
  c = m["counts"]
  (fmt, source), = c["sources"].items()
  windows = c["windows"]["pretrain"]
  return {
      "format": fmt,
      "files": len(m["inputs"]),
      "rows_read": source["entries_read"],
      "rows_used": source["entries_used"],
      "extras": source["extras"],
      "dead_lettered": {"adapter": source["dead_letter"],
                        "readings": {k: v for k, v in c["readings"]["dead_lettered"].items()
                                     if v}},
      "subjects": source.get("subjects", 0),
      "subjects_without_features": source.get("subjects_without_features", 0),
      "subjects_shorter_than_window": c.get("subjects_shorter_than_window", 0),
      "readings": {"derived": c["readings"]["read"], "used": c["readings"]["used"]},
      "features_provided": source["features_provided"],
      "features_present": source["features_present"],
      "windows_cut": windows["cut"],
      "windows_written": windows["written"],
      "windows_dropped": windows["dropped"],
      "no_windows": source.get("no_windows"),
      "wall_seconds": round(wall, 1),
  }


def run_folder(folder: pathlib.Path, globs: list[str], flags: list[str]) -> dict:
  from pipeline import main as lsm_main
  out = tempfile.mkdtemp(prefix=f"lsm-real-{folder.name}-")
  try:
    inputs = [f"--input={folder / g}" if g else f"--input={folder}/" for g in globs]
    start = time.perf_counter()
    lsm_main.run(inputs + [f"--output={out}/run", f"--subject_hash_key={KEY}"] + flags)
    return _summary(f"{out}/run", time.perf_counter() - start)
  finally:
    shutil.rmtree(out, ignore_errors=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA),
                      help="the real-data folder (default: ../shared/data/real)")
  parser.add_argument("--only", action="append", choices=sorted(RUNS),
                      help="run only these folders (repeatable); the result file is "
                           "still rewritten with them only")
  parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" /
                                              "real_data.json"))
  args = parser.parse_args()
  data = pathlib.Path(args.data)
  if not data.is_dir():
    print(f"real_data: {data} not found; nothing to run (the real recordings are not "
          "part of the repository: pass their folder)")
    return
  import logging
  logging.getLogger().setLevel(logging.WARNING)
  results = {}
  for name in args.only or RUNS:
    if not (data / name).is_dir():
      print(f"real_data: {data / name} absent, skipped")
      continue
    globs, flags = RUNS[name]
    results[name] = run_folder(data / name, globs, flags)
    print(name, json.dumps(results[name]), flush=True)
  record = {
      "data": str(data),
      "options": "defaults (300-minute windows, stride 300, --max_missing 0.5, split "
                 "0.8/0.1/0.1) plus --tz for Fitbit; local FnApiRunner, one process",
      "note": "machine shared with other jobs (run under nice)",
      "folders": results,
  }
  results_file.write(record, args.output)


if __name__ == "__main__":
  main()
