"""Generative quality: does a pre-trained model beat classical imputation on held-out subjects?

  python benchmarks/generative_quality.py [--quick] [--out runs/bench_generative]

One command, end to end through the console scripts' modules: lsm-synth writes a
synthetic cohort with session labels, lsm-pipeline turns it into normalised windows
split by subject, lsm-train pre-trains once with the default config of
trainer/configs/mae.py (its masking mixture, per-strategy encoder budgets, learning
rate and schedule: the product's recipe, nothing set here beyond the data, the work
directory, the seed and, for --quick, the size and budget), and lsm-eval scores the
model and every baseline on the same masks of the held-out test subjects, beside the
oracle: the generator's noise-free signal of the same windows (python -m
pipeline.synthetic.oracle after the pipeline stage; lsm-eval --oracle), the lowest
error any method could reach. Writes benchmarks/results/generative_quality.json: per
task the MAE/MSE of every method, the model's margin over linear interpolation, MICE
and the best baseline, and the ceiling: the oracle's MAE, the largest margin any method
could reach over the best baseline and the share of the baseline-to-oracle gap the
model closes.

Default: about 55 minutes on 2 quiet CPU cores (tiny model, the config's 3,500 steps of
batch 32: training 50.5 minutes, evaluation 4, on 2026-12-01); 100 minutes on a host
1.6-1.7x slower per step (benchmarks/README.md, "Generative quality").
--quick is a few minutes (nano, 150 steps of batch 16, 64 test windows): it checks the
plumbing, its numbers say little. Each stage is skipped when its output exists
(re-running resumes); --fresh starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import results_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = os.path.join(REPO, "benchmarks", "results", "generative_quality.json")
TASKS = ("interpolation_10m", "interpolation_30m", "extrapolation_60m",
         "random_imputation_80", "sensor_imputation_6", "sensor_imputation_6_60m")
PROFILES = {
    # subjects, days, size, steps (0 = the config's default), batch, max eval windows,
    # MICE iterations, pretrain window stride
    "default": dict(subjects=160, days=3, size="tiny", steps=0, batch=32, max_windows=300,
                    mice_max_iter=5, stride=60),
    "quick": dict(subjects=8, days=3, size="nano", steps=150, batch=16, max_windows=64,
                  mice_max_iter=2, stride=150),
}


def run(stage: str, args: list[str], timings: dict[str, float]) -> None:
  """Runs one stage as `python -m MODULE ...` with this checkout first on the path."""
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  print(f"== {stage}: {' '.join(args)}", flush=True)
  started = time.perf_counter()
  subprocess.run([sys.executable, *args], check=True, env=env, cwd=REPO)
  timings[stage] = round(time.perf_counter() - started, 1)


def end_to_end_arguments(doc: str, quick_help: str, out_name: str
                         ) -> argparse.ArgumentParser:
  """The flags every end-to-end benchmark takes: --quick, --out (runs/OUT_NAME),
  --fresh and --seed; `doc` is the benchmark's module docstring."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help=quick_help)
  parser.add_argument("--out", default=os.path.join(REPO, "runs", out_name))
  parser.add_argument("--fresh", action="store_true", help="delete --out first")
  parser.add_argument("--seed", type=int, default=0)
  return parser


def out_dir(args: argparse.Namespace) -> str:
  """--out as an absolute path, emptied first with --fresh."""
  out = os.path.abspath(args.out)
  if args.fresh and os.path.exists(out):
    shutil.rmtree(out)
  return out


def make_data(profile: dict, out: str, seed: int, timings: dict[str, float],
              pipeline_args: list[str] | None = None) -> str:
  """lsm-synth's cohort and lsm-pipeline's windows of the profile under out (each
  stage skipped when its output exists); returns the pipeline output directory.
  pipeline_args: lsm-pipeline's flags beyond input, output and key (default: the
  cohort's session labels and the profile's window stride)."""
  synth, data = os.path.join(out, "synth"), os.path.join(out, "pipeline")
  if not os.path.exists(os.path.join(synth, "truth.json")):
    run("synth", ["-m", "pipeline.synthetic.main", "--output", synth, "--subjects",
                  str(profile["subjects"]), "--days", str(profile["days"]), "--seed",
                  str(seed), "--format", "parquet", "--workers", "2"], timings)
  if not os.path.exists(os.path.join(data, "manifest.json")):
    key = os.path.join(out, "subject.key")
    with open(key, "w") as f:
      f.write(f"benchmark-key-{seed}\n")
    if pipeline_args is None:
      pipeline_args = ["--labels", os.path.join(synth, "labels", "sessions.csv"),
                       "--stride_minutes", str(profile["stride"])]
    run("pipeline", ["-m", "pipeline", "--input", os.path.join(synth, "raw", "*"),
                     "--output", data, "--subject_hash_key_file", key, *pipeline_args],
        timings)
  return data


def pretrain(profile: dict, work: str, data: str, seed: int,
             timings: dict[str, float]) -> None:
  """lsm-train with trainer/configs/mae.py's default recipe of the profile's size; the
  benchmark sets only the data, work directory, seed, batch and (profile steps > 0)
  the step count. Resumes from work's checkpoints."""
  steps = [f"--config.num_train_steps={profile['steps']}"] if profile["steps"] else []
  run("train", ["-m", "trainer", "--config", f"trainer/configs/mae.py:{profile['size']}",
                "--workdir", work, f"--config.data_dir={data}", *steps,
                f"--config.batch_size={profile['batch']}", "--config.progress_bar=False",
                f"--config.seed={seed}"], timings)


ORACLE, SMOOTH = "oracle", "oracle_smooth"   # lsm-eval --oracle's: ceilings, not baselines


def margins(methods: dict) -> dict:
  """The model's MAE reduction over each baseline, as a fraction of the baseline's MAE."""
  model = methods["model"]["mae"]
  baselines = [m for m in methods if m not in ("model", ORACLE, SMOOTH)]
  out = {f"vs_{m}": (methods[m]["mae"] - model) / methods[m]["mae"] for m in baselines
         if methods[m]["mae"]}
  best = min(baselines, key=lambda m: methods[m]["mae"])
  out["best_baseline"] = best
  out["vs_best_baseline"] = out[f"vs_{best}"]
  return out


def ceiling(methods: dict) -> dict:
  """How far the best baseline is from the oracle, and how much of that the model made.

  max_reachable_margin = (best baseline MAE - oracle MAE) / best baseline MAE: the
  margin a perfect imputer would have; gap_closed = (best baseline MAE - model MAE) /
  (best baseline MAE - oracle MAE): 1 is the oracle, 0 the best baseline, negative
  worse than it (absent without a model; None when the gap is 0). With the smooth
  oracle (the approximate best where whole minutes are hidden): oracle_smooth_mae and
  smooth_reachable_margin, the same margin against it.
  """
  best = min((m for m in methods if m not in ("model", ORACLE, SMOOTH)),
             key=lambda m: methods[m]["mae"])
  best_mae, oracle_mae = methods[best]["mae"], methods[ORACLE]["mae"]
  gap = best_mae - oracle_mae
  out = {"best_baseline": best, "best_baseline_mae": best_mae, "oracle_mae": oracle_mae,
         "oracle_mse": methods[ORACLE]["mse"], "max_reachable_margin": gap / best_mae}
  if SMOOTH in methods:
    out["oracle_smooth_mae"] = methods[SMOOTH]["mae"]
    out["smooth_reachable_margin"] = (best_mae - methods[SMOOTH]["mae"]) / best_mae
  if "model" in methods:
    out["gap_closed"] = (best_mae - methods["model"]["mae"]) / gap if gap else None
  return out


def oracle_stage(out: str, data: str, profile: dict, seed: int,
                 timings: dict[str, float]) -> str:
  """Writes OUT/oracle.npz (the test and valid windows' noise-free values) once."""
  path = os.path.join(out, "oracle.npz")
  if not os.path.exists(path):
    run("oracle", ["-m", "pipeline.synthetic.oracle", "--data", data, "--seed", str(seed),
                   "--subjects", str(profile["subjects"]), "--days", str(profile["days"]),
                   "--subject_hash_key_file", os.path.join(out, "subject.key"),
                   "--output", path], timings)
  return path


def main() -> None:
  parser = end_to_end_arguments(__doc__, "minutes, not an hour", "bench_generative")
  parser.add_argument("--result", default=RESULT)
  for key, value in PROFILES["default"].items():
    parser.add_argument(f"--{key}", type=type(value), default=None,
                        help=f"override the profile's {key} (default {value})")
  args = parser.parse_args()
  profile = dict(PROFILES["quick" if args.quick else "default"])
  profile.update({k: getattr(args, k) for k in profile if getattr(args, k) is not None})
  out = out_dir(args)
  work = os.path.join(out, "train")
  timings: dict[str, float] = {}
  data = make_data(profile, out, args.seed, timings)
  oracle = oracle_stage(out, data, profile, args.seed, timings)

  pretrain(profile, work, data, args.seed, timings)
  run("eval", ["-m", "trainer.evaluate", f"--workdir={work}", f"--data={data}",
               f"--tasks={','.join(TASKS)}", f"--max_windows={profile['max_windows']}",
               f"--mice_max_iter={profile['mice_max_iter']}", f"--seed={args.seed}",
               "--step=latest", f"--oracle={oracle}"],
      timings)

  with open(os.path.join(work, "eval", "results.json")) as f:
    results = json.load(f)
  with open(os.path.join(data, "manifest.json")) as f:
    manifest = json.load(f)
  with open(os.path.join(work, "config.json")) as f:
    config = json.load(f)
  sys.path.insert(0, REPO)
  from trainer import summaries  # pylint: disable=g-import-not-at-top
  valid = summaries.read_jsonl(os.path.join(work, "metrics_valid.jsonl"))
  generative = {task: {m: {k: e[k] for k in ("mae", "mse", "count")}
                       for m, e in methods.items()}
                for task, methods in results["generative"].items()}
  summary = {
      "benchmark": "generative_quality",
      "profile": "quick" if args.quick else "default",
      "settings": {**profile, "seed": args.seed, "steps": config["num_train_steps"],
                   "learning_rate": config["learning_rate"], "mask": config["mask"]},
      "data": {"pretrain_windows": {s: sum(e["records"] for e in entries) for s, entries in
                                    manifest["datasets"]["pretrain"].items()}},
      "valid_loss": {step: round(m["loss"], 4) for step, m in sorted(valid.items())},
      "generative": generative,
      "margins": {task: margins(methods) for task, methods in generative.items()},
      "ceiling": {task: ceiling(methods) for task, methods in generative.items()},
      "budget_note": results["budget_note"],
      "seconds": timings,
  }
  results_file.write(summary, args.result)
  for task, m in summary["margins"].items():
    print(f"{task}: model MAE {generative[task]['model']['mae']:.4f}; vs linear "
          f"interpolation {100 * m['vs_linear_interpolation']:+.1f}%, vs MICE "
          f"{100 * m['vs_mice']:+.1f}%, vs best ({m['best_baseline']}) "
          f"{100 * m['vs_best_baseline']:+.1f}%")
    c = summary["ceiling"][task]
    closed = "n/a" if c["gap_closed"] is None else f"{100 * c['gap_closed']:.1f}%"
    print(f"  oracle MAE {c['oracle_mae']:.4f}: at most {100 * c['max_reachable_margin']:+.1f}% "
          f"over {c['best_baseline']} is reachable; the model closes {closed} of that gap "
          f"(smooth oracle MAE {c['oracle_smooth_mae']:.4f}, "
          f"{100 * c['smooth_reachable_margin']:+.1f}%)")
  print(args.result)


if __name__ == "__main__":
  main()
