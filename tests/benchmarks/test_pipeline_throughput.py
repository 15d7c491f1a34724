"""benchmarks/pipeline_throughput.py: the I/O-floor headroom arithmetic (no pipeline)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import pipeline_throughput  # noqa: E402  pylint: disable=g-import-not-at-top


def test_headroom_is_negative_when_fixed_cost_and_floor_exceed_the_target():
  run = {"io_floor_seconds": 2.0, "seconds": 32.0}
  out = pipeline_throughput.headroom(run, 8, fixed_seconds=15.0)
  assert out["seconds_allowed"] == 16.0
  assert out["seconds_left_for_per_row_work"] == -1.0   # 16 - 15 - 2
  assert out["per_row_work_seconds_now"] == 15.0        # 32 - 15 - 2


def test_headroom_targets_match_the_issue():
  assert pipeline_throughput.IO_FLOOR_TARGETS == {10: 8, 20: 5}
  assert pipeline_throughput.worker_flags(1) == []
  assert "--direct_num_workers=2" in pipeline_throughput.worker_flags(2)
