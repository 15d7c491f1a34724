"""Power-law fits L = a + b * X^c for data, parameters and compute (LSM's form).

Fitting: scipy.optimize.curve_fit (trust-region reflective, bounded) on
L = a + exp(log_b' + c * log(X / X0)), X0 the geometric mean of X. Working in log X
about its centre keeps b' and c weakly correlated, so the fit is well conditioned
over many decades; b = b' * X0^-c is recovered afterwards. Initial guesses come from
straight lines in log-log space of L - a0 against X for several candidate
asymptotes a0 below min(L); the best converged start wins. Bounds: 0 <= a <= min(L)
(a loss floor cannot be negative or above the data), -5 <= c <= 5.

Confidence intervals, 95%. The exponent's is a profile-likelihood interval (Bates and
Watts, Nonlinear Regression Analysis, 1988, ch. 6): every c whose best fit of a and b
(a least-squares problem for fixed c, solved exactly within the bounds) has a
residual sum of squares within SSE_min * (1 + F(0.95; 1, n - 3) / (n - 3)). It respects
the bounds and the curvature of the model; the Wald interval from curve_fit's
covariance does neither, and on a nearly straight log-log curve, where the asymptote
a trades off against c, it can span 0 even when no c near 0 fits the points at all
(the parameter arm of the default sweep, benchmarks/README.md). The Wald interval of c is kept beside it as "c_ci_wald". a's and b's
are Wald: Student-t (n - 3 degrees of freedom) from the residual-scaled covariance,
b's by the delta method on log b (asymmetric, positive). With exactly 3 points the
fit is exact and there is no interval (None). A parameter that ends on a bound is
listed in "at_bound"; an exponent interval that reaches c's bound is in "c_ci_open".
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from trainer import paths

CI_METHOD = ("95%: c by profile likelihood (F test), a and b Wald (Student-t from the "
             "residual-scaled curve_fit covariance, delta method on log b)")
C_BOUNDS = (-5.0, 5.0)
_C_GRID = np.linspace(*C_BOUNDS, 4001)
_A_FRACTIONS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)


def power_law(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
  return a + b * np.power(np.asarray(x, dtype=np.float64), c)


def _validate(x: Sequence[float], loss: Sequence[float], what: str
              ) -> tuple[np.ndarray, np.ndarray]:
  x = np.asarray(x, dtype=np.float64)
  loss = np.asarray(loss, dtype=np.float64)
  if x.shape != loss.shape or x.ndim != 1:
    raise ValueError(f"{what}: x and loss must be 1-D of equal length, got {x.shape}, "
                     f"{loss.shape}")
  bad = np.flatnonzero(~(np.isfinite(x) & (x > 0) & np.isfinite(loss) & (loss > 0)))
  if bad.size:
    raise ValueError(f"{what}: point {bad[0]} (x={x[bad[0]]}, loss={loss[bad[0]]}) is not "
                     "positive and finite")
  if x.size < 3 or np.unique(x).size < 3:
    raise ValueError(f"{what}: {np.unique(x).size} distinct x values; a fit of a, b, c "
                     "needs at least 3 (4 or more for confidence intervals)")
  return x, loss


def profile_sse(x: np.ndarray, loss: np.ndarray, c: np.ndarray) -> np.ndarray:
  """The least residual sum of squares of L = a + b X^c at each fixed c, over
  0 <= a <= min(L) and b >= 0 (exact: a convex problem in (a, b), so its minimum is
  the unconstrained one or lies on an edge of the box). x, loss [n]; c [G] -> [G]."""
  c = np.atleast_1d(np.asarray(c, dtype=np.float64))
  u = np.exp(np.outer(c, np.log(x / np.exp(np.log(x).mean()))))   # [G, n], centred
  floor = loss.min()

  def sse(a, b):
    return np.sum((a[:, None] + b[:, None] * u - loss) ** 2, axis=1)

  def b_given(a):   # best b >= 0 for a fixed a
    return np.maximum(0.0, np.sum((loss - a[:, None]) * u, axis=1) / np.sum(u * u, axis=1))

  um, lm = u.mean(axis=1), loss.mean()
  var = np.sum((u - um[:, None]) ** 2, axis=1)
  with np.errstate(divide="ignore", invalid="ignore"):
    b_free = np.sum((u - um[:, None]) * (loss - lm), axis=1) / var
  a_free = lm - b_free * um
  inside = (a_free >= 0) & (a_free <= floor) & (b_free >= 0) & np.isfinite(b_free)
  zeros, floors = np.zeros_like(c), np.full_like(c, floor)
  candidates = [sse(zeros, b_given(zeros)), sse(floors, b_given(floors)),
                sse(np.full_like(c, min(max(lm, 0.0), floor)), zeros),
                np.where(inside, sse(np.where(inside, a_free, 0.0),
                                     np.where(inside, b_free, 0.0)), np.inf)]
  return np.min(candidates, axis=0)


def profile_interval(x: np.ndarray, loss: np.ndarray, c_hat: float, sse_min: float
                     ) -> tuple[list[float], bool]:
  """The exponent's 95% profile-likelihood interval (module docstring) and whether it
  reaches c's bound. Needs n >= 4."""
  from scipy import optimize, stats
  dof = x.size - 3
  sse_min = min(sse_min, float(profile_sse(x, loss, [c_hat])[0]))
  threshold = sse_min * (1.0 + float(stats.f.ppf(0.95, 1, dof)) / dof)
  excess = lambda c: float(profile_sse(x, loss, [c])[0]) - threshold
  outside = profile_sse(x, loss, _C_GRID) > threshold
  centre = int(np.clip(np.searchsorted(_C_GRID, c_hat), 1, _C_GRID.size - 1))
  edges, open_ = [], False
  for step, stop in ((-1, -1), (1, _C_GRID.size)):
    i = centre if step > 0 else centre - 1
    while i != stop and not outside[i]:
      i += step
    if i == stop:
      edges.append(C_BOUNDS[0] if step < 0 else C_BOUNDS[1])
      open_ = True
      continue
    inner = _C_GRID[i - step]
    inner = c_hat if (inner - c_hat) * step < 0 else inner
    edges.append(float(optimize.brentq(excess, *sorted((inner, float(_C_GRID[i]))))))
  return edges, open_


def fit_power_law(x: Sequence[float], loss: Sequence[float],
                  what: str = "power law") -> dict[str, Any]:
  """Fits L = a + b * X^c; returns a, b, c, their 95% intervals, R^2 and diagnostics."""
  from scipy import optimize, stats

  x, loss = _validate(x, loss, what)
  x0 = float(np.exp(np.log(x).mean()))
  log_x = np.log(x / x0)

  def model(lx, a, log_b, c):
    return a + np.exp(log_b + c * lx)

  floor = float(loss.min())
  lower, upper = [0.0, -np.inf, C_BOUNDS[0]], [floor, np.inf, C_BOUNDS[1]]
  best = None
  for fraction in _A_FRACTIONS:
    a0 = fraction * floor
    slope, intercept = np.polyfit(log_x, np.log(np.maximum(loss - a0, 1e-12)), 1)
    p0 = [a0, intercept, float(np.clip(slope, *C_BOUNDS))]
    try:
      with warnings.catch_warnings():  # an exact 3-point fit has no covariance: expected
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        params, cov = optimize.curve_fit(model, log_x, loss, p0=p0,
                                         bounds=(lower, upper), maxfev=20000)
    except (RuntimeError, ValueError):
      continue
    sse = float(np.sum((model(log_x, *params) - loss) ** 2))
    if best is None or sse < best[0]:
      best = (sse, params, cov)
  if best is None:
    raise ValueError(f"{what}: curve_fit did not converge from any starting point")
  sse, (a, log_b_centred, c), cov = best
  log_b = log_b_centred - c * math.log(x0)
  # (a, log b', c) -> (a, log b, c) is linear, so the covariance maps exactly.
  jacobian = np.array([[1, 0, 0], [0, 1, -math.log(x0)], [0, 0, 1]], dtype=np.float64)
  dof = x.size - 3
  sst = float(np.sum((loss - loss.mean()) ** 2))
  result: dict[str, Any] = {
      "a": float(a), "b": float(math.exp(log_b)), "c": float(c),
      "a_ci": None, "b_ci": None, "c_ci": None,
      "r2": 1.0 - sse / sst if sst > 0 else None,
      "rmse": math.sqrt(sse / x.size), "n": int(x.size), "ci_method": CI_METHOD,
      "at_bound": [name for name, value, lo, hi in
                   (("a", a, lower[0], upper[0]), ("c", c, *C_BOUNDS))
                   if min(abs(value - lo), abs(value - hi)) <= 1e-6 * max(1.0, abs(value))],
  }
  if dof > 0 and np.all(np.isfinite(cov)):
    se = np.sqrt(np.diag(jacobian @ cov @ jacobian.T))
    t = float(stats.t.ppf(0.975, dof))
    result["a_ci"] = [float(a - t * se[0]), float(a + t * se[0])]
    with np.errstate(over="ignore"):  # a flat sweep can give an unbounded interval on b
      result["b_ci"] = [float(np.exp(log_b - t * se[1])), float(np.exp(log_b + t * se[1]))]
    result["c_ci_wald"] = [float(c - t * se[2]), float(c + t * se[2])]
  if dof > 0:
    result["c_ci"], result["c_ci_open"] = profile_interval(x, loss, float(c), sse)
  return result


def plot_power_law(path: str, x: Sequence[float], loss: Sequence[float],
                   fit: Mapping[str, Any] | None, xlabel: str, title: str = "",
                   other_x: Sequence[float] = (), other_loss: Sequence[float] = ()) -> str:
  """Log-log PNG of the fitted points, the fitted curve and (faint) the other runs."""
  from trainer import plots

  figure = plots.new_figure((5, 3.6))
  axes = figure.add_subplot()
  if len(other_x):
    axes.scatter(other_x, other_loss, s=14, color="0.75", label="other runs")
  axes.scatter(x, loss, s=22, color="C0", zorder=3, label="fitted runs")
  if fit is not None:
    grid = np.geomspace(min(x), max(x), 100)
    axes.plot(grid, power_law(grid, fit["a"], fit["b"], fit["c"]), color="C1",
              label=f"{fit['a']:.3g} + {fit['b']:.3g} X^{fit['c']:.3f}")
  axes.set_xscale("log")
  axes.set_yscale("log")
  axes.set_xlabel(xlabel)
  axes.set_ylabel("validation loss")
  axes.set_title(title)
  axes.legend(fontsize=8)
  figure.tight_layout()
  return paths.save_figure(figure, path)


AXES = {"train_windows": "training windows", "params": "parameters",
        "flops": "training FLOPs"}
# Which runs each fit reads: a run's "arms" name the fits it belongs to.
ARM_KEYS = {"data": "train_windows", "params": "params"}


def _pareto_front(flops: np.ndarray, loss: np.ndarray) -> np.ndarray:
  """Points whose loss is lower than that of every point with less compute."""
  order = np.lexsort((loss, flops))
  keep, best = [], np.inf
  for i in order:
    if loss[i] < best:
      keep.append(i)
      best = loss[i]
  return np.array(keep, dtype=int)


def fit_sweep(runs: Sequence[Mapping[str, Any]], out_dir: str | None = None
              ) -> dict[str, dict[str, Any]]:
  """Fits data, parameter and compute scaling from a sweep's runs.

  runs: one dict per trained run with "arms" (the fits it belongs to: "data",
    "params"), "val_loss" (its validation loss: the best one when it trained to
    convergence), "train_windows", "params" and "curve": its validation curve as
    [[training FLOPs so far, validation loss], ...].
  Which points each fit uses (Kaplan et al., Hoffmann et al.):
    data: the runs of the data arm (one model size over nested data sizes);
    params: the runs of the parameter arm (model sizes on the same data);
    compute: the compute-efficient frontier over every point of every run's
      validation curve (points no cheaper point beats).
  An axis with too few points gets {"error": reason} instead of a fit, so the other
  fits still come back. With out_dir, writes scaling_{axis}.png there. Raises
  ValueError naming a run that lacks a field.
  """
  for i, run in enumerate(runs):
    missing = [k for k in ("arms", "val_loss", "curve", *ARM_KEYS.values()) if k not in run]
    if missing:
      raise ValueError(f"sweep run {i} ({run.get('name', 'unnamed')}) lacks {missing}")
  selections = {}
  for axis, key in ARM_KEYS.items():
    chosen = [run for run in runs if axis in run["arms"]]
    others = [run for run in runs if axis not in run["arms"] and key in run]
    selections[axis] = (key, np.array([float(r[key]) for r in chosen]),
                        np.array([float(r["val_loss"]) for r in chosen]),
                        np.array([float(r[key]) for r in others]),
                        np.array([float(r["val_loss"]) for r in others]))
  curve = np.array([point for run in runs for point in run["curve"]],
                   dtype=np.float64).reshape(-1, 2)
  front = _pareto_front(curve[:, 0], curve[:, 1]) if len(curve) else np.array([], int)
  rest = np.setdiff1d(np.arange(len(curve)), front)
  selections["compute"] = ("flops", curve[front, 0], curve[front, 1],
                           curve[rest, 0], curve[rest, 1])
  fits = {}
  for axis, (key, x, loss, other_x, other_loss) in selections.items():
    entry: dict[str, Any] = {"x_key": key, "points": [[float(a), float(b)]
                                                      for a, b in zip(x, loss)]}
    try:
      entry.update(fit_power_law(x, loss, what=f"{axis} scaling"))
    except ValueError as error:
      entry["error"] = str(error)
    if out_dir is not None:
      entry["figure"] = plot_power_law(
          os.path.join(out_dir, f"scaling_{axis}.png"), x, loss,
          None if "error" in entry else entry, AXES[key], f"{axis} scaling",
          other_x, other_loss)
    fits[axis] = entry
  return fits
