import numpy as np
import pytest

from trainer import scaling_law


@pytest.mark.parametrize("a, b, c", [(0.2, 3.0, -0.3), (0.05, 40.0, -0.5),
                                     (0.4, 1.0, -0.1)])
def test_fit_recovers_known_parameters_from_noisy_points(a, b, c):
  rng = np.random.default_rng(0)
  x = np.geomspace(1e3, 1e7, 9)
  loss = scaling_law.power_law(x, a, b, c) * (1 + 0.003 * rng.normal(size=x.size))
  fit = scaling_law.fit_power_law(x, loss)
  assert fit["c"] == pytest.approx(c, abs=0.03)
  assert fit["a"] == pytest.approx(a, abs=0.03)
  assert fit["b"] == pytest.approx(b, rel=0.15)
  for name, truth in (("a", a), ("b", b), ("c", c)):
    low, high = fit[name + "_ci"]
    assert low <= truth <= high, (name, fit[name + "_ci"])
  assert fit["r2"] > 0.999 and fit["n"] == 9 and fit["at_bound"] == []


def test_three_points_fit_exactly_without_intervals():
  x = np.array([10.0, 100.0, 1000.0])
  fit = scaling_law.fit_power_law(x, scaling_law.power_law(x, 0.1, 2.0, -0.5))
  assert fit["c"] == pytest.approx(-0.5, abs=1e-4)
  assert fit["a_ci"] is None and fit["c_ci"] is None


def test_bad_points_are_refused():
  with pytest.raises(ValueError, match="data: point 1"):
    scaling_law.fit_power_law([1, -2, 3, 4], [1, 1, 1, 1], what="data")
  with pytest.raises(ValueError, match="2 distinct x"):
    scaling_law.fit_power_law([1, 1, 2, 2], [3, 2, 1, 1])


def grid():
  """A 4 x 4 sweep whose loss follows 0.1 + 20 N^-0.3 + 30 D^-0.4 exactly: the data arm
  is the largest model over data sizes, the parameter arm the largest data over sizes,
  each run's curve the loss at a quarter, half and all of its steps."""
  runs = []
  for params in (1e4, 3e4, 1e5, 3e5):
    for windows in (100, 300, 1000, 3000):
      loss = 0.1 + 20 * params ** -0.3 + 30 * windows ** -0.4
      flops = 6 * params * windows * 10
      arms = (["data"] if params == 3e5 else []) + (["params"] if windows == 3000 else [])
      runs.append({"name": f"p{params:g}-d{windows}", "params": params, "arms": arms,
                   "train_windows": windows, "val_loss": loss,
                   "curve": [[flops * f, loss * (1 + (1 - f))] for f in (0.25, 0.5, 1.0)]})
  return runs


def test_fit_sweep_fits_each_arm_and_the_frontier_of_every_curve(tmp_path):
  runs = grid()
  fits = scaling_law.fit_sweep(runs, out_dir=str(tmp_path))
  assert set(fits) == {"data", "params", "compute"}
  assert [p[0] for p in fits["data"]["points"]] == [100, 300, 1000, 3000]
  assert [p[1] for p in fits["data"]["points"]] == [r["val_loss"] for r in runs[12:]]
  assert [p[0] for p in fits["params"]["points"]] == [1e4, 3e4, 1e5, 3e5]
  # At the largest model the data term dominates: its exponent is the data exponent.
  assert fits["data"]["c"] == pytest.approx(-0.4, abs=0.05)
  # The frontier reads every curve point, not only final ones: it has points from
  # partway through runs, each cheaper and worse than the next.
  front = fits["compute"]["points"]
  finals = {(r["curve"][-1][0], r["val_loss"]) for r in runs}
  assert any(tuple(p) not in finals for p in front)
  assert all(b[0] > a[0] and b[1] < a[1] for a, b in zip(front, front[1:]))
  for axis in fits:
    with open(fits[axis]["figure"], "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_fit_sweep_reports_an_axis_it_cannot_fit():
  runs = grid()
  for run in runs:
    if run["params"] > 3e4:
      run["arms"] = [a for a in run["arms"] if a != "params"]
  fits = scaling_law.fit_sweep(runs)
  assert "distinct x" in fits["params"]["error"]
  assert "c" in fits["data"]
  with pytest.raises(ValueError, match=r"sweep run 0 \(broken\) lacks \['curve'\]"):
    scaling_law.fit_sweep([{"name": "broken", "params": 1, "val_loss": 1, "arms": [],
                            "train_windows": 1}])


@pytest.mark.parametrize("seed", range(5))
def test_the_default_grids_point_counts_recover_known_exponents(seed):
  """With as many points as trainer/configs/scaling.py's arms give, at their spans, and
  0.5% noise on each loss (about the spread of a 512-window validation loss), the fit
  finds a known exponent, and its 95% interval holds the truth and excludes 0."""
  from trainer import models
  from trainer.configs import mae
  from trainer.configs import scaling as scaling_config
  config = scaling_config.get_config()
  windows = np.array([n * config.windows_per_subject
                      for n in map(int, config.subjects.split(","))], dtype=float)
  params = np.array([models.count_params(models.ModelConfig.from_config(
      mae.get_config(size).model)) for size in config.model_sizes.split(",")], dtype=float)
  assert windows.size >= 5 and windows.max() / windows.min() >= 30
  assert params.size >= 5 and params.max() / params.min() >= 10
  rng = np.random.default_rng(seed)
  for x, (a, b, c) in ((windows, (0.5, 2.0, -0.35)), (params, (0.55, 20.0, -0.3))):
    loss = scaling_law.power_law(x, a, b, c) * (1 + 0.005 * rng.normal(size=x.size))
    fit = scaling_law.fit_power_law(x, loss)
    low, high = fit["c_ci"]
    assert low <= c <= high and high < 0, fit
    assert fit["r2"] >= 0.9


def test_profile_sse_is_the_bounded_least_squares_minimum():
  from scipy import optimize
  rng = np.random.default_rng(1)
  x = np.geomspace(50, 5000, 6)
  loss = scaling_law.power_law(x, 0.3, 2.0, -0.4) * (1 + 0.02 * rng.normal(size=6))
  centred = np.log(x / np.exp(np.log(x).mean()))
  for c in (-3.0, -0.4, -0.01, 0.5, 2.0):
    design = np.stack([np.ones_like(x), np.exp(c * centred)], axis=1)
    best = optimize.lsq_linear(design, loss, bounds=([0, 0], [loss.min(), np.inf]),
                               tol=1e-12)
    assert scaling_law.profile_sse(x, loss, [c])[0] == pytest.approx(2 * best.cost,
                                                                     rel=1e-6, abs=1e-12)


def test_exponent_interval_excludes_zero_on_a_straight_log_log_line():
  """Five sizes over 48x of a slow power law with no visible floor: the asymptote is
  not identified, yet no exponent near 0 fits; the profile interval says so."""
  rng = np.random.default_rng(0)
  x = np.array([45842, 167410, 364754, 854098, 2233842], dtype=float)
  loss = 1.2 * x ** -0.065 * (1 + 0.003 * rng.normal(size=x.size))
  fit = scaling_law.fit_power_law(x, loss)
  low, high = fit["c_ci"]
  assert low <= -0.065 <= high and high < 0 and not fit["c_ci_open"]
  assert fit["c_ci_wald"][0] <= fit["c"] <= fit["c_ci_wald"][1]
