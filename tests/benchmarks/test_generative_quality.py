"""benchmarks/generative_quality.py's summary: margins and the oracle ceiling."""

import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(name: str):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "benchmarks", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


gq = _script("generative_quality")


def _methods(**mae):
  return {m: {"mae": v, "mse": 2 * v, "count": 10} for m, v in mae.items()}


def test_the_oracle_is_never_the_best_baseline():
  m = gq.margins(_methods(model=0.45, mean_fill=0.6, linear_interpolation=0.5, oracle=0.2,
                          oracle_smooth=0.3))
  assert m["best_baseline"] == "linear_interpolation"
  assert m["vs_best_baseline"] == pytest.approx(0.1)
  assert "vs_oracle" not in m and "vs_oracle_smooth" not in m


def test_gap_closed_is_the_share_of_the_baseline_to_oracle_gap():
  c = gq.ceiling(_methods(model=0.45, mean_fill=0.6, linear_interpolation=0.5, oracle=0.3))
  assert c["best_baseline"] == "linear_interpolation" and c["best_baseline_mae"] == 0.5
  assert c["oracle_mae"] == 0.3 and c["oracle_mse"] == 0.6
  assert c["gap_closed"] == pytest.approx((0.5 - 0.45) / (0.5 - 0.3))        # 25%
  assert c["max_reachable_margin"] == pytest.approx((0.5 - 0.3) / 0.5)       # 40%
  worse = gq.ceiling(_methods(model=0.6, mean_fill=0.5, oracle=0.3))
  assert worse["gap_closed"] == pytest.approx(-0.5)
  assert gq.ceiling(_methods(model=0.6, mean_fill=0.5, oracle=0.5))["gap_closed"] is None


def test_without_a_model_the_ceiling_has_no_gap_closed():
  c = gq.ceiling(_methods(mean_fill=0.6, mice=0.7, oracle=0.3, oracle_smooth=0.45))
  assert "gap_closed" not in c and c["max_reachable_margin"] == pytest.approx(0.5)
  assert c["best_baseline"] == "mean_fill" and c["oracle_smooth_mae"] == 0.45
  assert c["smooth_reachable_margin"] == pytest.approx(0.25)
