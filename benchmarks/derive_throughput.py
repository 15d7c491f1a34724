"""Per-minute feature derivation speed: raw accelerometer samples (and beats) per second
per core. Writes benchmarks/results/derive_throughput.json.

The input is a synthetic tri-axial recording (walking bouts, rest, sensor noise) at
the E4's 32 Hz and at 100 Hz, derived whole, as an adapter does for one subject.
Run: .venv/bin/python benchmarks/derive_throughput.py [--hours 6] [--repeats 3]
"""

import argparse
import os
import pathlib
import time

import numpy as np

from pipeline import derive

import results_file  # benchmarks/results_file.py, next to this script

T0 = 1_560_279_840.0


def _recording(hours: float, fs: float, rng) -> tuple[np.ndarray, np.ndarray]:
  n = int(hours * 3600 * fs)
  t = T0 + np.arange(n) / fs
  walking = (np.floor((t - T0) / 600) % 3 == 0)  # 10-minute walking bouts
  cadence = 1.8 + 0.1 * rng.standard_normal()
  z = 1.0 + np.where(walking, 0.35 * np.sin(2 * np.pi * cadence * (t - T0)), 0.0)
  xyz = np.stack([0.05 * np.sin(2 * np.pi * 0.3 * (t - T0)), np.zeros(n), z], axis=1)
  return t, xyz + 0.02 * rng.standard_normal(xyz.shape)


def _best(fn, repeats: int) -> float:
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--hours", type=float, default=6.0)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--output", default=str(pathlib.Path(__file__).parent / "results" /
                                              "derive_throughput.json"))
  args = parser.parse_args()
  os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
  rng = np.random.default_rng(0)
  result = {"hours_per_recording": args.hours}
  for fs in (32.0, 100.0):
    t, xyz = _recording(args.hours, fs, rng)
    for steps in (True, False):
      seconds = _best(lambda: derive.accel_per_minute(t, xyz, fs, steps=steps),
                      args.repeats)
      key = f"accel_{int(fs)}hz_{'with' if steps else 'without'}_steps"
      result[f"{key}_samples_per_s_per_core"] = round(len(t) / seconds)
      result[f"{key}_minutes_per_s_per_core"] = round(args.hours * 60 / seconds)
  rr = np.clip(rng.normal(800, 50, int(args.hours * 3600 * 1.25)), 400, 1500)
  beat_t = T0 + np.cumsum(rr) / 1000.0
  seconds = _best(lambda: derive.hrv_per_minute(beat_t, rr), args.repeats)
  result["hrv_beats_per_s_per_core"] = round(len(rr) / seconds)
  result.update({"note": "shared 2-core machine (other jobs running); best of repeats",
                 "numpy": np.__version__})
  results_file.write(result, args.output)


if __name__ == "__main__":
  main()
