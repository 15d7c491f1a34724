"""Scaling sweep: does the loss follow power laws in data, parameters and compute?

  python benchmarks/scaling_sweep.py [--quick] [--out runs/bench_scaling]

LSM's core claim (LSM_FACTS.md). One command, end to end through the console
scripts' modules: lsm-synth writes a cohort of 100 people x 12 days, lsm-pipeline
splits it by subject (75/15/10%: about 75 train subjects with ~50 windows each, 15
validation subjects whose first 512 windows score every run), and lsm-scaling runs
trainer/configs/scaling.py's default grid unchanged: the data arm (micro on 2..64
subjects, 12 windows each), the parameter arm (pico..tiny on 64 subjects for a fixed
number of tokens per parameter), the compute frontier over every run's validation
curve, and the same-hours-fewer-subjects run. Copies SWEEP/scaling.{json,md} and the
three plots to benchmarks/results/scaling/ (the json with the machine fields and
the seconds of each stage).

Default: about 65 minutes on 2 CPU cores (64.1 on 2026-12-01). --quick checks the
plumbing in a few minutes (a smaller grid; its numbers say little) and writes under
--out only.
Each stage is skipped when its output exists (an interrupted sweep resumes);
--fresh starts over.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generative_quality  # noqa: E402  pylint: disable=g-import-not-at-top
import results_file  # noqa: E402  pylint: disable=g-import-not-at-top

REPO = generative_quality.REPO
RESULTS = os.path.join(REPO, "benchmarks", "results", "scaling")
FILES = ("scaling.md", "scaling_data.png", "scaling_params.png", "scaling_compute.png")
PROFILES = {
    "default": dict(subjects=100, days=12, split="0.75,0.15,0.1", overrides=[]),
    # A grid small enough for minutes: the plumbing, not the exponents.
    "quick": dict(subjects=24, days=4, split="0.6,0.2,0.2", overrides=[
        "--config.subjects=2,4,8", "--config.model_sizes=pico,nano,micro",
        "--config.param_subjects=8", "--config.data_steps=20", "--config.min_steps=20",
        "--config.tokens_per_parameter=0.05", "--config.windows_per_subject=4",
        "--config.evals_per_run=4", "--config.train.eval_batches=2"]),
}


def main() -> None:
  parser = generative_quality.end_to_end_arguments(__doc__, "minutes, not an hour",
                                                   "bench_scaling")
  args = parser.parse_args()
  profile = PROFILES["quick" if args.quick else "default"]
  out = generative_quality.out_dir(args)
  timings: dict[str, float] = {}
  data = generative_quality.make_data(profile, out, args.seed, timings,
                                     pipeline_args=["--split", profile["split"]])
  sweep_dir = os.path.join(out, "sweep")
  generative_quality.run("sweep", [
      "-m", "trainer.scaling", "--config", "trainer/configs/scaling.py",
      "--workdir", sweep_dir, f"--config.data_dir={data}", *profile["overrides"]], timings)
  with open(os.path.join(sweep_dir, "scaling.json")) as f:
    result = json.load(f)
  cohort = "synthetic cohort: " + ", ".join(
      f"{k} {profile[k]}" for k in ("subjects", "days", "split"))
  result["meta"]["data"] = cohort   # no local paths in what is committed
  result["seconds"] = timings   # this invocation's stages (a rerun only refits)
  result["training_seconds"] = round(sum(run["seconds"] for run in result["runs"]), 1)
  target = os.path.join(out, "result") if args.quick else RESULTS
  os.makedirs(target, exist_ok=True)
  for name in FILES:
    shutil.copyfile(os.path.join(sweep_dir, name), os.path.join(target, name))
  with open(os.path.join(target, "scaling.md"), "r+") as f:
    text = f.read().replace(os.path.abspath(data), cohort)
    f.seek(0)
    f.write(text)
    f.truncate()
  results_file.write(result, os.path.join(target, "scaling.json"))


if __name__ == "__main__":
  main()
