"""Generative ceiling: how far below the best baseline can any method get on synthetic data?

  python benchmarks/generative_ceiling.py [--quick] [--out runs/bench_generative]
                                          [--tasks interpolation_30m,...]

The synthetic generator knows each subject's noise-free signal, so the best error any
imputer could reach on a window is known: the oracle's (pipeline/synthetic/oracle.py;
what counts as signal: physiology.generate_subject's docstring). This runs the data
stages of benchmarks/generative_quality.py (the same cohort and pipeline flags for the
same profile, and the same --out, whose outputs it reuses) and its oracle stage, then
scores every baseline and the oracle on every generative task (default: all of
trainer/evaluators/generative.TASKS) on the windows and masks lsm-eval uses there
(--max_windows sample, --seed); no model is trained. Writes
benchmarks/results/generative_ceiling.json: per task every method's MAE/MSE and the
ceiling (generative_quality.ceiling: oracle MAE, best baseline, the largest margin
any method could reach over it; the smooth oracle's, about the largest where whole
minutes are hidden). A target margin above max_reachable_margin cannot be met by any
model; on interpolation and extrapolation, one above smooth_reachable_margin hardly.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import generative_quality  # pylint: disable=wrong-import-position  (benchmarks/, next to this)
import results_file  # pylint: disable=wrong-import-position

RESULT = os.path.join(REPO, "benchmarks", "results", "generative_ceiling.json")


def score(data: str, oracle: str, tasks: list[str], profile: dict, seed: int) -> dict:
  """{task: {method: {mae, mse, count}}} of every baseline and the oracle, on the
  windows lsm-eval --max_windows picks and the masks of --seed."""
  from schemas import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from trainer.evaluators import data as data_lib  # pylint: disable=g-import-not-at-top
  from trainer.evaluators import generative  # pylint: disable=g-import-not-at-top
  split, windows = data_lib.first_split(data, "pretrain", ("test", "valid"),
                                        profile["max_windows"], seed)
  if windows is None:
    raise ValueError(f"{data}: no pretrain test or valid windows")
  results, _ = generative.run_generative(
      None, windows, tasks, manifest_lib.load(data).get("train_statistics"), seed=seed,
      mice_max_iter=profile["mice_max_iter"], mice_jobs=2, oracle=oracle)
  scores = {task: {m: {k: e[k] for k in ("mae", "mse", "count")} for m, e in methods.items()}
            for task, methods in results.items()}
  return {"split": split, "windows": int(len(windows["values"])),
          "subjects": int(len(set(windows["subject"]))), "scores": scores}


def main() -> None:
  from trainer.evaluators import generative  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="the quick profile's cohort")
  parser.add_argument("--out", default=os.path.join(REPO, "runs", "bench_generative"))
  parser.add_argument("--result", default=RESULT)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tasks", default=",".join(generative.TASKS))
  args = parser.parse_args()
  name = "quick" if args.quick else "default"
  profile = generative_quality.PROFILES[name]
  out = os.path.abspath(args.out)
  timings: dict[str, float] = {}
  data = generative_quality.data_stages(out, profile, args.seed, timings)
  oracle = generative_quality.oracle_stage(out, data, profile, args.seed, timings)
  started = time.perf_counter()
  scored = score(data, oracle, [t.strip() for t in args.tasks.split(",")], profile, args.seed)
  timings["score"] = round(time.perf_counter() - started, 1)
  scores = scored.pop("scores")
  ceilings = {task: generative_quality.ceiling(methods) for task, methods in scores.items()}
  results_file.write({
      "benchmark": "generative_ceiling", "profile": name,
      "settings": {k: profile[k] for k in ("subjects", "days", "stride", "max_windows",
                                           "mice_max_iter")} | {"seed": args.seed},
      "data": scored, "generative": scores, "ceiling": ceilings, "seconds": timings},
      args.result)
  print(f"{'task':24} {'oracle MAE':>10} {'best baseline':>22} {'its MAE':>8} "
        f"{'max reachable margin':>21} {'smooth oracle MAE':>18} {'its margin':>11}")
  for task, c in ceilings.items():
    print(f"{task:24} {c['oracle_mae']:10.4f} {c['best_baseline']:>22} "
          f"{c['best_baseline_mae']:8.4f} {100 * c['max_reachable_margin']:20.1f}% "
          f"{c['oracle_smooth_mae']:18.4f} {100 * c['smooth_reachable_margin']:10.1f}%")


if __name__ == "__main__":
  main()
