"""Baseline quality and the ceiling: every imputation baseline and the oracle on every task.

  python benchmarks/baseline_quality.py [--out runs/bench_generative] [--quick]

No training: the generative benchmark's data (its profile's lsm-synth cohort through
lsm-pipeline, made by generative_quality.make_data into the same --out, so either
script reuses the other's data), then every baseline of lsm-eval, including the
cross-feature baseline fitted on a seeded sample of the pretrain train split, on the
same masks of up to 300 held-out test windows, for every generative task. It says
which baseline the model has to beat on each task and what each number rests on
(windows, subjects, scored features).

The synthetic generator knows each subject's noise-free signal, so the best error any
imputer could reach is known: the oracle's (pipeline/synthetic/oracle.py, run as the
benchmark's oracle stage; what counts as signal: physiology.generate_subject's
docstring). Each task also gets its ceiling (generative_quality.ceiling: the largest
margin any method could reach over the best baseline; the smooth oracle's, about the
largest where whole minutes are hidden). A target margin above max_reachable_margin
cannot be met by any model; on interpolation and extrapolation, one above
smooth_reachable_margin hardly. Writes benchmarks/results/baseline_quality.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.dirname(os.path.abspath(__file__))]

import generative_quality  # pylint: disable=g-import-not-at-top,wrong-import-position
import results_file  # pylint: disable=g-import-not-at-top,wrong-import-position

RESULT = os.path.join(REPO, "benchmarks", "results", "baseline_quality.json")
PER_WINDOW = ("mean_fill", "linear_interpolation", "nearest", "mice")


def main() -> None:
  from trainer.evaluators import data as data_lib, generative  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="the quick profile's data")
  parser.add_argument("--out", default=os.path.join(REPO, "runs", "bench_generative"))
  parser.add_argument("--result", default=RESULT)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--cross_feature_windows", type=int, default=1000)
  parser.add_argument("--tasks", default=",".join(generative.TASKS))
  parser.add_argument("--mice_tasks", default=None, help="tasks MICE runs on (default: "
                      "all; it costs about a second of CPU per window and task)")
  args = parser.parse_args()
  profile = generative_quality.PROFILES["quick" if args.quick else "default"]
  timings: dict[str, float] = {}
  out = os.path.abspath(args.out)
  data = generative_quality.make_data(profile, out, args.seed, timings)
  oracle = generative_quality.oracle_stage(out, data, profile, args.seed, timings)
  test = data_lib.read_windows(data, "pretrain", "test", profile["max_windows"], args.seed)
  train = data_lib.read_windows(data, "pretrain", "train", args.cross_feature_windows,
                                args.seed)
  from trainer import baselines, metrics  # pylint: disable=g-import-not-at-top
  started = time.perf_counter()
  regressors = baselines.fit_cross_feature(train["values"], train["observed"], seed=args.seed)
  timings["cross_feature_fit"] = round(time.perf_counter() - started, 1)
  every = generative.generative_methods(None, profile["mice_max_iter"], 2, args.seed,
                                       regressors)
  for name, known in generative.oracle_values(oracle, test).items():
    every[name] = lambda values, observed, hidden, known=known: known
  chosen = args.tasks.split(",")
  mice_tasks = chosen if args.mice_tasks is None else args.mice_tasks.split(",")
  masks = generative.task_masks(chosen, len(test["values"]), args.seed,
                                test["values"].shape[1:])
  tasks, ceilings = {}, {}
  for task, hidden in masks.items():
    methods = {m: f for m, f in every.items() if m != "mice" or task in mice_tasks}
    started = time.perf_counter()
    scored = metrics.score_methods(methods, test["values"], test["observed"], hidden)
    timings[task] = round(time.perf_counter() - started, 1)
    ceilings[task] = generative_quality.ceiling(scored)
    mae = {m: round(e["mae"], 4) for m, e in scored.items()}
    best_window = min((m for m in PER_WINDOW if m in mae), key=mae.get)
    tasks[task] = {"mae": mae, "mse": {m: round(e["mse"], 4) for m, e in scored.items()},
                   "best_baseline": ceilings[task]["best_baseline"],
                   "best_per_window_baseline": best_window,
                   "cross_feature_vs_best_per_window": round(
                       (mae[best_window] - mae["cross_feature"]) / mae[best_window], 4),
                   "rests_on": {k: v for k, v in generative.basis(test, hidden).items()
                                if k != "scored_positions_per_feature"}}
    print(f"{task:26s} " + "  ".join(f"{m} {v:.4f}" for m, v in mae.items()), flush=True)
  results_file.write({
      "benchmark": "baseline_quality",
      "profile": "quick" if args.quick else "default",
      "settings": {"subjects": profile["subjects"], "days": profile["days"],
                   "stride": profile["stride"], "max_windows": profile["max_windows"],
                   "mice_max_iter": profile["mice_max_iter"], "seed": args.seed,
                   "cross_feature_windows": len(train["values"]),
                   "mice_tasks": mice_tasks},
      "test_windows": len(test["values"]), "tasks": tasks, "ceiling": ceilings,
      "seconds": timings,
      "note": "MAE/MSE in normalised units over hidden-and-observed positions; "
              "cross_feature_vs_best_per_window > 0: the cross-feature baseline's MAE is "
              "that fraction below the best per-window baseline's; MICE only on "
              "settings.mice_tasks. oracle, oracle_smooth: the noise-free signal (ceilings, never "
              "the best baseline); ceiling: see generative_quality.ceiling. seconds: wall time per task (all its methods) on 2 "
              "shared CPU cores (load_average_at_end)."}, args.result)


if __name__ == "__main__":
  main()
