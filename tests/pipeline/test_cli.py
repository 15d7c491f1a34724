"""python -m pipeline (lsm-pipeline's entry, main.cli): a finished run ends the process
without interpreter teardown, after its output and logs are complete."""

import json
import os
import subprocess
import sys

from schemas import manifest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_exits_zero_with_the_run_published_and_logs_flushed(tmp_path, raw):
  data = raw.write(raw.wide_frame(raw.make_cohort(2, 400, seed=3)), str(tmp_path / "in.csv"))
  out = tmp_path / "out"
  done = subprocess.run(
      [sys.executable, "-m", "pipeline",
       *raw.pipeline_args([data], str(out), "--window_minutes", "60")],
      capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
  assert done.returncode == 0, done.stderr[-2000:]
  body = json.loads((out / manifest.MANIFEST_NAME).read_text())
  manifest.check_listed(str(out), manifest.load(str(out)))
  # The summary is logged last, after run() returned: it reached stderr before the exit.
  assert body["summary"][-1] in done.stderr


def test_cli_failure_exits_nonzero_with_the_message(tmp_path, raw):
  done = subprocess.run(
      [sys.executable, "-m", "pipeline",
       *raw.pipeline_args([str(tmp_path / "missing-*.csv")], str(tmp_path / "out"))],
      capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
  assert done.returncode != 0
  assert "missing-*.csv" in done.stderr
