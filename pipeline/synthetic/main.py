"""lsm-synth: generate a synthetic per-minute wearable cohort in LSM's raw formats.

  lsm-synth --subjects 24 --days 4 --seed 0 --output runs/synth [--layout long|wide]
            [--format csv|csv.gz|parquet] [--dirty] [--plot] [--workers K]

Writes DIR/raw/part-NNNNN.<fmt> (blocks of subjects, each split in time), DIR/labels/
sessions.csv, DIR/subjects.csv and DIR/truth.json (what was written and the exact
accounting the pipeline must report; with --dirty, the faults injected). Output is a
pure function of the arguments: the same seed gives byte-identical files, whatever
--workers is.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from typing import Sequence

import numpy as np

from pipeline.synthetic import physiology, writers
from schemas.raw import LABEL_COLUMNS

SUBJECTS_PER_FILE = 8


def part_spans(days: int) -> list[slice]:
  """Each block of subjects is written in two time halves (when there are 2+ days)."""
  total = days * physiology.MINUTES_PER_DAY
  if days < 2:
    return [slice(0, total)]
  half = days // 2 * physiology.MINUTES_PER_DAY
  return [slice(0, half), slice(half, total)]


def part_name(part: int, fmt: str) -> str:
  return f"part-{part:05d}.{fmt}"


def dirty_rng(seed: int, part: int) -> np.random.Generator:
  """Fault sites of one part file: a function of (seed, part) alone."""
  return np.random.default_rng([seed, part, 0xD127])


def write_block(subjects: Sequence[physiology.Subject], block: int, days: int, layout: str,
                fmt: str, seed: int, dirty: bool, last_block: bool, write) -> dict:
  """Writes a block's part files through write(name, bytes); returns its metadata.

  Shared by the CLI and the Beam transform so both produce the same bytes.
  """
  spans = part_spans(days)
  stats = []
  for j, span in enumerate(spans):
    part = block * len(spans) + j
    data, part_stats = writers.write_part(
        subjects, span, layout, fmt, dirty_rng(seed, part) if dirty else None,
        truncate_last=dirty and last_block and j == len(spans) - 1)
    write(part_name(part, fmt), data)
    stats.append(part_stats)
  return {"block": block, "stats": stats,
          # CSV text, not lists of strings: a 165k-subject cohort gathers all of it.
          "labels": writers.csv_lines([r for s in subjects for r in writers.label_rows(s)]),
          "subjects": writers.csv_lines([writers.subject_row(s) for s in subjects])}


def _block_job(args) -> dict:
  seed, block, indices, days, layout, fmt, dirty, last_block, raw_dir = args
  subjects = [physiology.generate_subject(seed, k, days) for k in indices]

  def write(name: str, data: bytes) -> None:
    with open(os.path.join(raw_dir, name), "wb") as f:
      f.write(data)

  return write_block(subjects, block, days, layout, fmt, seed, dirty, last_block, write)


def _open_binary(path: str):
  return open(path, "wb")


def write_metadata(blocks: Sequence[dict], output: str, layout: str, fmt: str, dirty: bool,
                   opener=_open_binary) -> dict:
  """labels/sessions.csv, subjects.csv and truth.json from the blocks, in block order."""
  blocks = sorted(blocks, key=lambda b: b["block"])
  labels = writers.csv_header(LABEL_COLUMNS) + "".join(b["labels"] for b in blocks)
  subjects = (writers.csv_header(writers.SUBJECT_COLUMNS)
              + "".join(b["subjects"] for b in blocks))
  truth = writers.truth_json([s for b in blocks for s in b["stats"]], fmt, layout, dirty)
  for path, text in ((f"{output}/labels/sessions.csv", labels),
                     (f"{output}/subjects.csv", subjects),
                     (f"{output}/truth.json", json.dumps(truth, indent=2, sort_keys=True) + "\n")):
    with opener(path) as f:
      f.write(text.encode())
  return truth


def generate(subjects: int, days: int, seed: int, output: str, layout: str = "wide",
             fmt: str = "csv", dirty: bool = False, workers: int = 1,
             subjects_per_file: int = SUBJECTS_PER_FILE) -> dict:
  """Generates the cohort into `output`; returns truth.json's content."""
  if subjects < 1 or days < 1 or workers < 1:
    raise ValueError(f"need at least 1 subject, 1 day and 1 worker, got {subjects}, {days} "
                     f"and {workers}")
  if layout not in writers.LAYOUTS or fmt not in writers.FORMATS:
    raise ValueError(f"layout must be one of {writers.LAYOUTS}, format one of {writers.FORMATS}")
  raw_dir = os.path.join(output, "raw")
  os.makedirs(raw_dir, exist_ok=True)
  os.makedirs(os.path.join(output, "labels"), exist_ok=True)
  stale = [f for f in os.listdir(raw_dir) if f.startswith("part-")]
  if stale:
    raise FileExistsError(f"{raw_dir} already holds part files ({stale[0]}, ...); "
                          "choose an empty --output")
  starts = range(0, subjects, subjects_per_file)
  jobs = [(seed, b, range(s, min(s + subjects_per_file, subjects)), days, layout, fmt,
           dirty, b == len(starts) - 1, raw_dir) for b, s in enumerate(starts)]
  if workers > 1:
    with multiprocessing.get_context("fork").Pool(workers) as pool:
      blocks = pool.map(_block_job, jobs, chunksize=1)
  else:
    blocks = [_block_job(j) for j in jobs]
  return write_metadata(blocks, output, layout, fmt, dirty)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="lsm-synth", description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
  parser.add_argument("--subjects", type=int, default=8, help="number of subjects (8)")
  parser.add_argument("--days", type=int, default=3, help="days per subject (3)")
  parser.add_argument("--seed", type=int, default=0, help="cohort seed (0)")
  parser.add_argument("--output", required=True, help="output directory")
  parser.add_argument("--layout", choices=writers.LAYOUTS, default="wide")
  parser.add_argument("--format", choices=writers.FORMATS, default="csv", dest="fmt")
  parser.add_argument("--dirty", action="store_true",
                      help="inject realistic faults; truth.json counts them exactly")
  parser.add_argument("--plot", action="store_true",
                      help="write plot.png: subject 0's busiest day, all 26 features")
  parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                      help="processes (output does not depend on it)")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
  args = parse_args(argv)
  began = time.perf_counter()
  try:
    truth = generate(args.subjects, args.days, args.seed, args.output, args.layout,
                     args.fmt, args.dirty, args.workers)
  except (ValueError, FileExistsError) as e:
    sys.exit(f"lsm-synth: {e}")
  print(f"lsm-synth: {args.subjects} subjects x {args.days} days, seed {args.seed}, "
        f"{args.layout} {args.fmt}{' (dirty)' if args.dirty else ''}, "
        f"{time.perf_counter() - began:.1f} s")
  print(f"  raw:      {args.output}/raw/ ({truth['files']} files, "
        f"{truth['rows_written']:,} rows, {truth['readings_written']:,} readings)")
  print(f"  labels:   {args.output}/labels/sessions.csv")
  print(f"  subjects: {args.output}/subjects.csv")
  print(f"  truth:    {args.output}/truth.json")
  if args.dirty:
    injected = ", ".join(f"{k} {v}" for k, v in truth["injected"].items() if v)
    print(f"  injected: {injected}")
  if args.plot:
    from pipeline.synthetic import plot
    subject = physiology.generate_subject(args.seed, 0, args.days)
    path = os.path.join(args.output, "plot.png")
    plot.plot_day(subject, plot.busiest_day(subject), path)
    print(f"  plot:     {path}")


if __name__ == "__main__":
  main()
