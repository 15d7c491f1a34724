"""Window record codec speed: records decoded (and encoded) per second on one core.

Target (issue #2): 50,000 decodes/s per core. Writes benchmarks/results/record_codec.json.
Run: .venv/bin/python benchmarks/record_codec.py [--seconds 3]
"""

import argparse
import os
import pathlib
import time

import numpy as np

import schemas
from schemas import record

import results_file  # benchmarks/results_file.py, next to this script


def _rate(fn, items, seconds):
  """Calls fn over items repeatedly for about `seconds`; returns calls per second."""
  done, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    for item in items:
      fn(item)
    done += len(items)
  return done / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--seconds", type=float, default=3.0)
  parser.add_argument("--output", default=str(pathlib.Path(__file__).parent / "results" /
                                              "record_codec.json"))
  args = parser.parse_args()
  os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
  rng = np.random.default_rng(0)
  windows = []
  for i in range(256):
    mask = rng.random((schemas.WINDOW_MINUTES, schemas.NUM_FEATURES)) > 0.3
    windows.append({
        "values": np.where(mask, rng.standard_normal(mask.shape), 0).astype(np.float32),
        "mask": mask, "subject": record.subject_hash(str(i), b"bench"), "split": "train",
        "start": 27_000_000 + 300 * i, "missing_ratio": float(1 - mask.mean()),
        "minute_labels": rng.integers(-1, 8, schemas.WINDOW_MINUTES)})
  encoded = [record.encode(w) for w in windows]
  result = {
      "decode_per_s_per_core": round(_rate(record.decode, encoded, args.seconds)),
      "encode_per_s_per_core": round(_rate(record.encode, windows, args.seconds)),
      "bytes_per_record": len(encoded[0]),
      "raw_float32_bytes": 4 * schemas.WINDOW_MINUTES * schemas.NUM_FEATURES,
      "target_decode_per_s": 50_000,
      "numpy": np.__version__,
  }
  result["meets_target"] = result["decode_per_s_per_core"] >= result["target_decode_per_s"]
  results_file.write(result, args.output)


if __name__ == "__main__":
  main()
