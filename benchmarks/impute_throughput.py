"""lsm-impute throughput: minutes of a person's recording filled per second on this machine.

  PYTHONPATH=. python benchmarks/impute_throughput.py [--days 7] [--size tiny]
      [--train_steps 20] [--draws 4] [--work /tmp/impute_bench]

Builds a pre-training run (lsm-synth 8 subjects x 2 days -> lsm-pipeline -> lsm-train
SIZE for a few steps: throughput does not depend on how well the model is trained),
then one held-out synthetic subject of --days days, and times lsm-impute's two
steps: the pipeline step (`python -m pipeline.prepare`, a subprocess with its Beam
and TensorFlow start-up) and the model step (trainer.impute.impute, checkpoint
already loaded, compilation included, plots off), then the plots on their own.
Writes benchmarks/results/impute_throughput.json with the machine's load average:
the 2 CPU cores are shared, so read the numbers with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import results_file  # pylint: disable=wrong-import-position
from pipeline.synthetic import main as synth  # pylint: disable=wrong-import-position


def _run(argv: list[str], env: dict) -> float:
  """Runs a command from the repository; returns its wall seconds."""
  t = time.perf_counter()
  subprocess.run(argv, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
  return time.perf_counter() - t


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--days", type=int, default=7)
  parser.add_argument("--size", default="tiny")
  parser.add_argument("--train_steps", type=int, default=20)
  parser.add_argument("--draws", type=int, default=4)
  parser.add_argument("--work", default="/tmp/impute_bench")
  args = parser.parse_args()
  env = dict(os.environ, LSM_SUBJECT_HASH_KEY="bench-key",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  shutil.rmtree(args.work, ignore_errors=True)
  w = lambda *p: os.path.join(args.work, *p)
  synth.generate(8, 2, seed=0, output=w("synth"), fmt="parquet")
  synth.generate(1, args.days, seed=7, output=w("heldout"), fmt="parquet")
  py = sys.executable
  _run([py, "-m", "pipeline", f"--input={w('synth', 'raw', '*')}", f"--output={w('pre')}",
        "--split=0.75,0.125,0.125", "--stride_minutes=60"], env)
  _run([py, "-m", "trainer", f"--config=trainer/configs/mae.py:{args.size}",
        f"--workdir={w('run')}", f"--config.data_dir={w('pre')}", "--config.batch_size=16",
        f"--config.num_train_steps={args.train_steps}", "--config.progress_bar=False",
        f"--config.eval_every_steps={args.train_steps}",
        f"--config.checkpoint_every_steps={args.train_steps}"], env)
  prepare_s = _run([py, "-m", "pipeline.prepare", f"--pretrain_data={w('pre')}",
                    f"--input={w('heldout', 'raw', '*')}", f"--output={w('prepared')}"],
                   env)

  from schemas import prepared  # pylint: disable=g-import-not-at-top
  from trainer import impute, impute_plots, inference  # pylint: disable=g-import-not-at-top
  stats = json.load(open(w("pre", "manifest.json")))["train_statistics"]
  model = inference.load(w("run"))
  t = time.perf_counter()
  result = impute.impute(model, w("prepared"), w("out"), stats, horizon=120,
                         draws=args.draws, plots=False)
  model_s = time.perf_counter() - t
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  table = pq.read_table(w("out", "imputed.parquet"))
  t = time.perf_counter()
  pngs = impute_plots.subject_days(table, list(result["features"]), w("out", "plots"))
  plots_s = time.perf_counter() - t
  meta = prepared.load_meta(w("prepared"))
  minutes = result["rows"]
  cells = sum(f["imputed"] for f in result["features"].values())
  results_file.write({
      "benchmark": "impute_throughput",
      "model_size": args.size, "draws": args.draws, "days": args.days,
      "minutes": minutes, "windows": meta["counts"]["prepare/windows"],
      "features_present": len(result["features"]), "imputed_feature_minutes": cells,
      "pipeline_step_seconds": round(prepare_s, 1),
      "model_step_seconds": round(model_s, 1),
      "minutes_per_second_model_step": round(minutes / model_s, 1),
      "minutes_per_second_end_to_end": round(minutes / (prepare_s + model_s), 1),
      "plots": len(pngs), "plot_seconds": round(plots_s, 1),
  }, os.path.join(REPO, "benchmarks", "results", "impute_throughput.json"))


if __name__ == "__main__":
  main()
