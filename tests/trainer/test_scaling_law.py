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
  """A 4 x 4 sweep whose loss follows 0.1 + 20 N^-0.3 + 30 D^-0.4 exactly."""
  runs = []
  for params in (1e4, 3e4, 1e5, 3e5):
    for windows in (100, 300, 1000, 3000):
      runs.append({"name": f"p{params:g}-d{windows}", "params": params,
                   "train_windows": windows, "flops": 6 * params * windows * 10,
                   "val_loss": 0.1 + 20 * params ** -0.3 + 30 * windows ** -0.4})
  return runs


def test_fit_sweep_selects_runs_and_writes_plots(tmp_path):
  runs = grid()
  fits = scaling_law.fit_sweep(runs, out_dir=str(tmp_path))
  assert set(fits) == {"data", "params", "compute"}
  assert [p[0] for p in fits["data"]["points"]] == [100, 300, 1000, 3000]
  assert all(p[1] == r["val_loss"] for p, r in zip(fits["data"]["points"], runs[12:]))
  assert [p[0] for p in fits["params"]["points"]] == [1e4, 3e4, 1e5, 3e5]
  # At the largest model the data term dominates: its exponent is the data exponent.
  assert fits["data"]["c"] == pytest.approx(-0.4, abs=0.05)
  front = fits["compute"]["points"]
  assert all(b[0] > a[0] and b[1] < a[1] for a, b in zip(front, front[1:]))
  for axis in fits:
    with open(fits[axis]["figure"], "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_fit_sweep_reports_an_axis_it_cannot_fit():
  runs = [r for r in grid() if r["params"] == 1e4][:2] + [
      r for r in grid() if r["params"] == 3e5]
  fits = scaling_law.fit_sweep(runs)
  assert "distinct x" in fits["params"]["error"]
  assert "c" in fits["data"]
  with pytest.raises(ValueError, match=r"sweep run 0 \(broken\) lacks \['flops'\]"):
    scaling_law.fit_sweep([{"name": "broken", "params": 1, "val_loss": 1,
                            "train_windows": 1}])
