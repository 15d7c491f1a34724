"""Real-data quality: does the default recipe beat classical imputation on real people?

  PYTHONPATH=. python benchmarks/real_quality.py [--quick] [--data ../shared/data/real]
      [--out runs/bench_real] [--only hr]

The generative benchmark (benchmarks/generative_quality.py) on real Fitbit recordings
(../shared/data/real, not part of the repository): per cohort, lsm-pipeline makes
subject-disjoint train/valid/test windows, lsm-train pre-trains the default config
(trainer/configs/mae.py:tiny; only data_dir, workdir, steps, batch and seed are set
here, so whatever the default recipe is, that is what runs) on the train subjects,
and lsm-eval scores the model and every baseline on identical masks of the test
subjects' windows: 10/30/60-minute interpolation and 60-minute extrapolation.

Two cohorts, not one. The heart-rate export (8 people, Fitbit heartrate_seconds,
US Central local time) and the minute-steps export (4 people with step files, US
Eastern) share no subject and no feature, and the pipeline takes one --tz per run.
One model over both would see every window with a single feature either way, so
there is nothing to learn across them; two runs keep each cohort's split and
numbers its own.

The split: the subject hash is keyed with KEY (fixed, no secret) and each cohort's
salt was picked so that test holds 2 people with data (HR: 5 train, one of them
with 2 windows, 1 valid, 2 test; steps: 2 train, 2 test; the trainer runs without
validation). check_split reads every split's windows and fails unless no subject
is in two splits and test holds at least MIN_TEST_SUBJECTS people who observe the
cohort's feature in MIN_SUBJECT_WINDOWS windows or more. Windows overlap (stride 60
minutes, the generative benchmark's) so the train split has ~5x more windows than
its non-overlapping days; the evaluation samples max_windows of the test windows.

Writes benchmarks/results/real_quality.json (quick: real_quality_quick.json; with
--out, the file goes inside that folder, so a trial never overwrites the committed one): per
cohort and task, each method's MAE in normalised units and in the feature's physical
unit (bpm, steps/min), de-normalised here from the manifest's train_statistics
(x = z * std + mean; the checks compare it with lsm-eval's own physical numbers),
with the scored positions, windows and subjects each number rests on and the model's
margin over linear interpolation and the best baseline. Values the pipeline clipped
(z beyond +-5, e.g. steps above ~112/min) stay clipped in truth and prediction alike,
so the physical errors of a clipped feature are lower bounds (benchmarks/
heavy_tail_transform.py measures what the clip costs).

Default: tiny model, HR 1,000 steps and steps 400 of batch 32, 300 test windows,
MICE max_iter 5: about 15 minutes on 2 otherwise idle CPU cores (2026-12-01, default
recipe: HR training 7.4 minutes, steps training 3.1, each evaluation about a minute).
--quick: about 6 minutes, plumbing only. A stage is skipped when its output exists (the pipeline's manifest; lsm-eval's
results for the trained step skip training and evaluation) and stage wall times
persist in OUT/seconds.json, so a rerun, e.g. without --only to gather both
cohorts in one file, repeats no work; --fresh starts over.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Any, Mapping

import numpy as np

import results_file  # benchmarks/results_file.py, next to this script

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "real"
KEY = "real-quality-benchmark"  # fixed so that the splits below are reproducible
TASKS = ("interpolation_10m", "interpolation_30m", "interpolation_60m", "extrapolation_60m")
MIN_TEST_SUBJECTS = 2
# A subject counts towards MIN_TEST_SUBJECTS with at least this many windows that
# observe the feature (one HR subject has 2 windows: a test split of it and one
# other person is one person's numbers).
MIN_SUBJECT_WINDOWS = 20
UNITS = {"HR": "bpm", "steps": "steps/min"}


@dataclasses.dataclass(frozen=True)
class Cohort:
  """One real export: where it is, how the pipeline reads it, how it is split."""
  folder: str
  inputs: tuple[str, ...]  # globs relative to the folder
  tz: str                   # Fitabase exports are local time (as benchmarks/real_data.py)
  feature: str              # the one LSM feature the export provides
  split: str                # --split train,valid,test fractions of subjects
  salt: str                 # --split_salt: picked for >= 2 test subjects under KEY


COHORTS = {
    "hr": Cohort("fitbit_heartrate_seconds", ("*.csv.gz",), "America/Chicago", "HR",
                 "0.6,0.15,0.25", "real-quality-11"),
    # The step files and the wear-time files (which dead-letter off-wrist minutes);
    # the METs, intensity and calorie files would only be counted as extras.
    "steps": Cohort("fitbit_minute", ("*minuteStepsNarrow*.csv",
                                      "*fitbitWearTimeViaHR*.csv"),
                    "America/New_York", "steps", "0.5,0,0.5", "real-quality-0"),
}
PROFILES = {
    # model size, training steps per cohort, batch, max test windows scored, MICE
    # iterations, window stride of the pipeline
    "default": dict(size="tiny", steps={"hr": 1000, "steps": 400}, batch=32,
                    max_windows=300, mice_max_iter=5, stride=60),
    "quick": dict(size="tiny", steps={"hr": 40, "steps": 20}, batch=16, max_windows=48,
                  mice_max_iter=2, stride=150),
}


class SplitError(ValueError):
  """The pipeline's split is not subject-disjoint or its test split is too thin."""


def check_split(subjects: Mapping[str, np.ndarray], has_feature: Mapping[str, np.ndarray],
                min_test: int = MIN_TEST_SUBJECTS,
                min_windows: int = MIN_SUBJECT_WINDOWS) -> dict[str, dict[str, int]]:
  """Per split, windows, subjects and subjects with the feature observed in at least
  min_windows windows.

  subjects: split -> str [n] subject hash of each window; has_feature: split -> bool
  [n], whether the window observes the cohort's feature at all. Raises SplitError
  naming the hashes found in two splits, or when test holds fewer than min_test
  such subjects (the issue's one-subject validation made its loss meaningless; a
  test split of one person says nothing about people).
  """
  seen: dict[str, str] = {}
  shared = []
  for split, hashes in subjects.items():
    for h in np.unique(hashes):
      if h in seen:
        shared.append(f"{h[:12]}... ({seen[h]} and {split})")
      seen[h] = split
  if shared:
    raise SplitError(f"subjects in more than one split: {', '.join(shared)}")
  summary = {}
  for split, hashes in subjects.items():
    with_feature, counts = np.unique(np.asarray(hashes)[np.asarray(has_feature[split], bool)],
                                     return_counts=True)
    summary[split] = {"windows": int(len(hashes)), "subjects": int(len(np.unique(hashes))),
                      "subjects_with_feature": int((counts >= min_windows).sum()),
                      "windows_per_subject": sorted(int(n) for n in counts)}
  test = summary.get("test", {}).get("subjects_with_feature", 0)
  if test < min_test:
    raise SplitError(f"the test split holds {test} subject(s) with the feature in at "
                     f"least {min_windows} windows, {min_test} needed: pick another "
                     "--split_salt")
  return summary


def to_physical(z: np.ndarray, statistics: Mapping[str, Any]) -> np.ndarray:
  """Normalised values -> physical units: z * std + mean (the pipeline's z-score
  inverted with one feature's manifest train_statistics entry)."""
  return np.asarray(z, np.float64) * float(statistics["std"]) + float(statistics["mean"])


def physical_error(normalised: float, statistics: Mapping[str, Any]) -> float:
  """An absolute error in normalised units in the feature's unit: the z-score is
  affine, so errors scale by std alone (the mean cancels)."""
  return float(normalised) * float(statistics["std"])


def margin(model: float, baseline: float) -> float | None:
  """The model's error reduction over a baseline, as a fraction of the baseline's
  error (0.1: 10% lower; negative: the model is worse)."""
  return None if not baseline else (baseline - model) / baseline


def run(stage: str, args: list[str], timings: dict[str, float], out: str) -> None:
  """Runs one stage as `python -m MODULE ...` with this checkout first on the path,
  and records its wall time in OUT/seconds.json at once (a later stage that fails
  does not lose it)."""
  env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  print(f"== {stage}: {' '.join(args)}", flush=True)
  started = time.perf_counter()
  subprocess.run([sys.executable, *args], check=True, env=env, cwd=REPO)
  timings[stage] = round(time.perf_counter() - started, 1)
  with open(os.path.join(out, "seconds.json"), "w") as f:
    json.dump(timings, f, indent=1)


def pipeline_args(cohort: Cohort, folder: pathlib.Path, out: str, key_file: str,
                  stride: int) -> list[str]:
  inputs = [f"--input={folder / g}" for g in cohort.inputs]
  return ["-m", "pipeline", *inputs, f"--output={out}", f"--tz={cohort.tz}",
          f"--subject_hash_key_file={key_file}", f"--stride_minutes={stride}",
          f"--split={cohort.split}", f"--split_salt={cohort.salt}"]


def split_windows(data: str, feature: int) -> tuple[dict, dict]:
  """(split -> subject hashes [n], split -> bool [n] feature observed) of the
  pretrain windows of every non-empty split."""
  from trainer.evaluators import data as data_lib
  subjects, has_feature = {}, {}
  for split in ("train", "valid", "test"):
    windows = data_lib.read_windows(data, "pretrain", split)
    if windows is not None:
      subjects[split] = windows["subject"]
      has_feature[split] = windows["observed"][:, :, feature].any(axis=1)
  return subjects, has_feature


def task_counts(data: str, feature: int, max_windows: int, seed: int) -> dict[str, dict]:
  """What each task's numbers rest on, for the cohort's feature: scored positions
  (hidden and observed), hidden positions, windows and subjects with a scored
  position. Reads the same seeded sample of test windows as lsm-eval and draws the
  same masks (trainer/evaluators/generative.task_masks), so the positions equal
  lsm-eval's counts (summarise checks)."""
  from trainer.evaluators import data as data_lib
  from trainer.evaluators import generative
  windows = data_lib.read_windows(data, "pretrain", "test", max_windows, seed)
  masks = generative.task_masks(TASKS, len(windows["values"]), seed,
                                windows["values"].shape[1:])
  observed = windows["observed"][..., feature]
  out = {}
  for task, hidden in masks.items():
    scored = hidden[..., feature] & observed
    with_scored = scored.any(axis=1)
    out[task] = {"scored_positions": int(scored.sum()),
                 "hidden_positions": int(hidden[..., feature].sum()),
                 "windows": int(with_scored.sum()), "windows_sampled": int(len(scored)),
                 "subjects": int(len(np.unique(windows["subject"][with_scored])))}
  return out


def summarise(results: Mapping[str, Any], statistics: Mapping[str, Any], feature: str,
              counts: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
  """Per task: every method's MAE (normalised; physical from the manifest), the
  counts, and the model's margins. Raises ValueError when lsm-eval's scored count
  or its own physical MAE disagrees with this script's (another sample or masks, or
  another de-normalisation)."""
  out = {}
  for task, methods in results["generative"].items():
    rows = {}
    for name, entry in methods.items():
      own = entry["per_feature"][feature]
      if own["count"] != counts[task]["scored_positions"] or own["count"] != entry["count"]:
        raise ValueError(f"{task} {name}: lsm-eval scored {own['count']} {feature} "
                         f"positions ({entry['count']} in all), this script "
                         f"{counts[task]['scored_positions']}")
      physical = physical_error(entry["mae"], statistics)
      if not np.isclose(physical, own["mae"], rtol=1e-4):
        raise ValueError(f"{task} {name}: {physical} {UNITS[feature]} here, lsm-eval "
                         f"{own['mae']}")
      rows[name] = {"mae": entry["mae"], f"mae_{UNITS[feature]}": physical}
    baselines = {m: r["mae"] for m, r in rows.items() if m != "model"}
    best = min(baselines, key=baselines.get)
    out[task] = {"methods": rows, "counts": dict(counts[task]),
                 "margin_vs_linear_interpolation": margin(
                     rows["model"]["mae"], rows["linear_interpolation"]["mae"]),
                 "best_baseline": best,
                 "margin_vs_best_baseline": margin(rows["model"]["mae"], baselines[best])}
  return out


def clipped_share(data: str, feature: int, max_windows: int, seed: int,
                  statistics: Mapping[str, Any]) -> dict[str, Any]:
  """How many observed test minutes sit at the +-5 clip (their truth is capped), and
  the physical value of the upper cap."""
  from schemas.constants import NORMALISED_CLIP
  from trainer.evaluators import data as data_lib
  windows = data_lib.read_windows(data, "pretrain", "test", max_windows, seed)
  z = windows["values"][..., feature][windows["observed"][..., feature]]
  capped = np.abs(z) >= NORMALISED_CLIP - 1e-6
  return {"observed_minutes": int(z.size), "at_clip": int(capped.sum()),
          "upper_cap": float(to_physical(NORMALISED_CLIP, statistics))}


def _results(work: str) -> dict | None:
  """lsm-eval's results.json of a workdir, None before it ran."""
  path = os.path.join(work, "eval", "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def run_cohort(name: str, cohort: Cohort, data_root: pathlib.Path, out: str,
               profile: dict, seed: int, timings: dict) -> dict[str, Any]:
  """Pipeline, split check, pre-training and lsm-eval of one cohort; its summary."""
  from schemas.features import FEATURE_NAMES
  data, work = os.path.join(out, name, "pipeline"), os.path.join(out, name, "train")
  key = os.path.join(out, "subject.key")
  with open(key, "w") as f:
    f.write(KEY + "\n")
  if not os.path.exists(os.path.join(data, "manifest.json")):
    run(f"{name} pipeline", pipeline_args(cohort, data_root / cohort.folder, data, key,
                                          profile["stride"]), timings, out)
  feature = FEATURE_NAMES.index(cohort.feature)
  splits = check_split(*split_windows(data, feature))
  steps = profile["steps"][name]
  results = _results(work)
  if results is None or results["meta"]["checkpoint_step"] != steps:
    # A finished training stage (its last checkpoint written) is not rerun, so its
    # recorded time stays that of the run that trained.
    if not os.path.isdir(os.path.join(work, "checkpoints", str(steps))):
      run(f"{name} train", ["-m", "trainer", "--config",
                            f"trainer/configs/mae.py:{profile['size']}", "--workdir", work,
                            f"--config.data_dir={data}", f"--config.num_train_steps={steps}",
                            f"--config.batch_size={profile['batch']}",
                            f"--config.seed={seed}", "--config.progress_bar=False"],
          timings, out)
    run(f"{name} eval", ["-m", "trainer.evaluate", f"--workdir={work}", f"--data={data}",
                         f"--tasks={','.join(TASKS)}",
                         f"--max_windows={profile['max_windows']}",
                         f"--mice_max_iter={profile['mice_max_iter']}", f"--seed={seed}",
                         "--step=latest"], timings, out)
    results = _results(work)
  with open(os.path.join(data, "manifest.json")) as f:
    manifest = json.load(f)
  statistics = manifest["train_statistics"][cohort.feature]
  counts = task_counts(data, feature, profile["max_windows"], seed)
  return {
      "export": cohort.folder, "feature": cohort.feature, "unit": UNITS[cohort.feature],
      # what the pipeline ran with (its manifest), not what this script asks today
      "pipeline_options": {k: manifest["options"][k] for k in (
          "split", "split_salt", "stride_minutes", "max_missing", "tz", "window_minutes")},
      "splits": splits,
      "windows_dropped": manifest["counts"]["windows"]["pretrain"]["dropped"],
      "train_statistics": statistics, "train_steps": steps,
      "test_minutes_at_clip": clipped_share(data, feature, profile["max_windows"], seed,
                                            statistics),
      "tasks": summarise(results, statistics, cohort.feature, counts),
      "budget_note": results["budget_note"],
  }


def result_path(result: str | None, given_out: str | None, out: str, quick: bool) -> str:
  """Where the result goes: --result; else inside --out when the caller chose the folder
  (a trial never overwrites the committed results); else benchmarks/results/."""
  name = f"real_quality{'_quick' if quick else ''}.json"
  if result:
    return result
  return os.path.join(out, name) if given_out else str(REPO / "benchmarks" / "results" / name)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="minutes: plumbing only")
  parser.add_argument("--data", default=str(DEFAULT_DATA), help="the real-data folder")
  parser.add_argument("--out", default=None,
                      help="work folder (default runs/bench_real, --quick: bench_real_quick)")
  parser.add_argument("--fresh", action="store_true", help="delete --out first")
  parser.add_argument("--only", action="append", choices=sorted(COHORTS))
  parser.add_argument("--result", default=None,
                      help="result file (default: benchmarks/results/real_quality[_quick]"
                           ".json, or inside --out when --out is given)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  data_root = pathlib.Path(args.data)
  if not data_root.is_dir():
    print(f"real_quality: {data_root} not found; nothing to run (the real recordings "
          "are not part of the repository: pass their folder with --data)")
    return
  profile_name = "quick" if args.quick else "default"
  profile = PROFILES[profile_name]
  out = os.path.abspath(args.out or str(REPO / "runs" / (
      "bench_real_quick" if args.quick else "bench_real")))
  if args.fresh and os.path.exists(out):
    shutil.rmtree(out)
  os.makedirs(out, exist_ok=True)
  # Stage wall times persist in --out, so a rerun that skips finished stages still
  # reports what they took.
  timings_path = os.path.join(out, "seconds.json")
  timings: dict[str, float] = {}
  if os.path.exists(timings_path):
    with open(timings_path) as f:
      timings = json.load(f)
  cohorts = {}
  for name in args.only or COHORTS:
    cohorts[name] = run_cohort(name, COHORTS[name], data_root, out, profile, args.seed,
                               timings)
    for task, row in cohorts[name]["tasks"].items():
      m = row["methods"]
      unit = f"mae_{cohorts[name]['unit']}"
      print(f"{name} {task}: model {m['model']['mae']:.4f} ({m['model'][unit]:.2f} "
            f"{cohorts[name]['unit']}), linear {m['linear_interpolation']['mae']:.4f} "
            f"({m['linear_interpolation'][unit]:.2f}); margin vs linear "
            f"{100 * row['margin_vs_linear_interpolation']:+.1f}%, vs best "
            f"({row['best_baseline']}) {100 * row['margin_vs_best_baseline']:+.1f}%",
            flush=True)
  result = result_path(args.result, args.out, out, args.quick)
  results_file.write({
      "benchmark": "real_quality", "profile": profile_name, "data": str(data_root),
      "settings": {**profile, "seed": args.seed, "tasks": list(TASKS),
                   "config": f"trainer/configs/mae.py:{profile['size']} defaults"},
      "cohorts": cohorts, "seconds": timings,
      "note": "shared 2-core machine, every stage under the caller's nice"}, result)
  print(f"real_quality: wrote {result}")


if __name__ == "__main__":
  main()
