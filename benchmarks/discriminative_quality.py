"""Discriminative quality: does pre-training help classify activity with few labels?

  python benchmarks/discriminative_quality.py [--quick] [--out runs/bench_discriminative]

LSM's second claim (LSM_FACTS.md): a pre-trained encoder transfers to exercise
detection and activity recognition, and beats the same network trained from scratch
when labels are few. One command, end to end through the console scripts' modules:
lsm-synth writes a synthetic cohort with exercise sessions, lsm-pipeline cuts
pre-training windows and session-centred labelled windows split by subject, lsm-train
pre-trains with trainer/configs/mae.py's default recipe (the benchmark sets the data,
work directory, seed and a step budget), and lsm-eval's discriminative evaluator
scores, on the held-out test subjects:

  linear_probe   logistic regression on the frozen encoder's mean-pooled embeddings
  fine_tune      the pre-trained encoder and a linear head, all weights trained
  supervised     the same network from a random initialisation, same steps
  random_forest  scikit-learn's forest on per-feature window summary statistics

with all training labels and with 5, 10 and 20 examples per class, each seed drawing
one k-per-class set that every method trains on (a shot count a class cannot fill is
skipped, and the result says so). Writes benchmarks/results/discriminative_quality.json:
per task and method the accuracy, macro-F1 and mAP (mean and std over seeds), and the
two verdicts the issue asks for: pre-trained (the better of probe and fine-tune) vs
from scratch at every shot count, and vs the forest with all labels.

Default: about an hour on 2 quiet CPU cores (tiny; 1,000 pre-training steps of batch
32 took 16 minutes, the evaluation's fine-tune budgets below 40 on 2026-12-01).
--quick checks the plumbing in a few minutes; its numbers say little. Each data stage is skipped when its output
exists; --fresh starts over.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generative_quality  # noqa: E402  pylint: disable=g-import-not-at-top
import results_file  # noqa: E402  pylint: disable=g-import-not-at-top

REPO = generative_quality.REPO
RESULT = os.path.join(REPO, "benchmarks", "results", "discriminative_quality.json")
TASKS = ("exercise_detection", "activity_recognition")
PRETRAINED = ("linear_probe", "fine_tune")
PROFILES = {
    # 96 subjects x 9 days: ~0.6 exercise sessions a person-day give the 8 activity
    # classes about 20 training windows each, enough for most 20-shot draws.
    "default": dict(subjects=96, days=9, size="tiny", steps=1000, batch=32, stride=60,
                    seeds="0,1,2", shots="5,10,20", finetune_steps=100,
                    few_shot_finetune_steps=30),
    "quick": dict(subjects=24, days=6, size="nano", steps=100, batch=16, stride=150,
                  seeds="0,1", shots="5", finetune_steps=10, few_shot_finetune_steps=5),
}


def shot_tasks(results: dict, task: str) -> dict[str, dict]:
  """{"all": the task's entry, "5": its 5-shot entry, ...} for the shots that ran."""
  out = {"all": results[task]} if task in results else {}
  prefix = f"{task}_"
  for name, entry in results.items():
    if name.startswith(prefix) and name.endswith("_shot"):
      out[name[len(prefix):-len("_shot")]] = entry
  return out


def verdicts(results: dict, metric: str = "accuracy") -> dict:
  """Per task and label budget that ran ("all", "5", ...): the better pre-trained
  method (probe or fine-tune, the issue's "best of probe/fine-tune") and its margins
  over the from-scratch network and the random forest, as differences of the metric's
  means. The issue's two targets: pre-trained beats from scratch at every budget that
  ran (the paper's claim; `budgets` lists them) and beats the forest with all labels."""
  out = {}
  for task in TASKS:
    per_shot = shot_tasks(results, task)
    if not per_shot:
      continue
    rows = {}
    for shots, entry in per_shot.items():
      best = max(PRETRAINED, key=lambda m: entry[m][metric])
      rows[shots] = {"pretrained_method": best, "pretrained": entry[best][metric],
                     "supervised": entry["supervised"][metric],
                     "random_forest": entry["random_forest"][metric],
                     "vs_supervised": entry[best][metric] - entry["supervised"][metric],
                     "vs_random_forest": (entry[best][metric]
                                          - entry["random_forest"][metric])}
    out[task] = {
        "budgets": list(rows),
        "by_labels": rows,
        "beats_supervised_at_every_budget": all(r["vs_supervised"] > 0
                                                for r in rows.values()),
        "beats_forest_with_all_labels": ("all" in rows
                                         and rows["all"]["vs_random_forest"] > 0),
        "beats_forest_at_budgets": [k for k, r in rows.items() if r["vs_random_forest"] > 0],
    }
  return out


def evaluate(profile: dict, out: str, work: str, seed: int,
             timings: dict[str, float]) -> None:
  """The stages: data (skipped when there), pre-training (resumed), evaluation."""
  data = generative_quality.make_data(profile, out, seed, timings)
  generative_quality.pretrain(profile, work, data, seed, timings)
  generative_quality.run("eval", [
      "-m", "trainer.evaluate", f"--workdir={work}", f"--data={data}",
      f"--tasks={','.join(TASKS)}", f"--seeds={profile['seeds']}",
      f"--shots={profile['shots']}", f"--finetune_steps={profile['finetune_steps']}",
      f"--few_shot_finetune_steps={profile['few_shot_finetune_steps']}",
      f"--seed={seed}", "--step=latest"], timings)


def summarise(args, profile: dict, work: str, timings: dict[str, float]) -> None:
  """Writes the result file from WORK/eval/results.json and prints the verdicts."""
  with open(os.path.join(work, "eval", "results.json")) as f:
    results = json.load(f)
  notes = results["meta"]["notes"]
  summary = {
      "benchmark": "discriminative_quality",
      "profile": "quick" if args.quick else "default",
      "settings": {**profile, "seed": args.seed},
      "data": notes.get("discriminative_tasks"),   # windows, subjects, class counts
      "split_scored": notes.get("discriminative_split"),
      "discriminative": results["discriminative"],
      "verdicts": verdicts(results["discriminative"]),
      "seconds": timings,
  }
  results_file.write(summary, args.result)
  for task, verdict in summary["verdicts"].items():
    for shots, row in verdict["by_labels"].items():
      print(f"{task} {shots}: {row['pretrained_method']} {row['pretrained']:.3f}, "
            f"from scratch {row['supervised']:.3f}, forest {row['random_forest']:.3f}")
  print(args.result)


def main() -> None:
  parser = generative_quality.end_to_end_arguments(__doc__, "minutes, not most of an hour",
                                                   "bench_discriminative")
  parser.add_argument("--result", default=RESULT)
  parser.add_argument("--summarise", action="store_true",
                      help="only rebuild the result file from --out's finished evaluation")
  args = parser.parse_args()
  profile = dict(PROFILES["quick" if args.quick else "default"])
  out = generative_quality.out_dir(args)
  work = os.path.join(out, "train")
  timings: dict[str, float] = {}
  if args.summarise:
    with open(args.result) as f:
      timings = json.load(f)["seconds"]   # the run that evaluated
  else:
    evaluate(profile, out, work, args.seed, timings)
  summarise(args, profile, work, timings)


if __name__ == "__main__":
  main()
