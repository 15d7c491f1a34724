"""Classical imputation baselines for the generative tasks.

Every baseline has the signature of a generative method:

  predict(values, observed, hidden) -> predictions

  values:   float32 [N, T, F], normalised, 0 where missing
  observed: bool [N, T, F], True where the raw data had a value
  hidden:   bool [N, T, F], True where the task hides the value and asks for it back

A baseline sees only the visible values (observed & ~hidden): hidden values are
zeroed before anything else runs, so no baseline can read the answer. It returns a
full imputed window, float32 [N, T, F]: visible values unchanged, every other
position predicted. Where a window has nothing to go on for a feature, the
prediction is 0, the training mean in normalised units.

The model is evaluated through the same signature (see metrics.score_methods), so
all methods are scored on exactly the same masks.

BASELINES holds the per-window baselines, which need nothing but the window. The
cross-feature baseline (cross_feature) first learns from training windows
(fit_cross_feature); lsm-eval binds its regressors (functools.partial) and scores it
beside the others.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np

Method = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def visible_inputs(values: np.ndarray, observed: np.ndarray,
                   hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(values with everything not visible set to 0, visible mask), after shape checks.

  The one place that decides what a method may see; baselines never touch `values`
  except through it. Returns (float32 [N, T, F], bool [N, T, F]). Raises ValueError
  unless values is [N, T, F] and observed and hidden are bool masks of its shape.
  """
  values = np.asarray(values)
  observed = np.asarray(observed)
  hidden = np.asarray(hidden)
  if values.ndim != 3:
    raise ValueError(f"values must be [N, T, F], got shape {values.shape}")
  for name, mask in (("observed", observed), ("hidden", hidden)):
    if mask.shape != values.shape:
      raise ValueError(f"{name} shape {mask.shape} does not match values {values.shape}")
    if mask.dtype != bool:
      raise ValueError(f"{name} must be a bool mask, got dtype {mask.dtype}")
  visible = observed & ~hidden
  return np.where(visible, values, 0).astype(np.float32), visible


def mean_fill(values: np.ndarray, observed: np.ndarray, hidden: np.ndarray) -> np.ndarray:
  """Per window and feature, the mean of the visible values fills every other minute.

  Shapes, dtypes and errors as every baseline (module docstring, visible_inputs).
  """
  x, visible = visible_inputs(values, observed, hidden)
  counts = visible.sum(axis=1, keepdims=True)
  means = x.sum(axis=1, keepdims=True, dtype=np.float64) / np.maximum(counts, 1)
  return np.where(visible, x, means.astype(np.float32))


def _neighbours(visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Index of the last visible minute at or before t (-1: none) and of the first at
  or after t (T: none), per window and feature; vectorised with running max/min."""
  t = visible.shape[1]
  minutes = np.arange(t)[None, :, None]
  previous = np.maximum.accumulate(np.where(visible, minutes, -1), axis=1)
  following = np.minimum.accumulate(np.where(visible, minutes, t)[:, ::-1], axis=1)[:, ::-1]
  return previous, following


def _gather(x: np.ndarray, index: np.ndarray) -> np.ndarray:
  return np.take_along_axis(x, np.clip(index, 0, x.shape[1] - 1), axis=1)


def linear_interpolation(values: np.ndarray, observed: np.ndarray,
                         hidden: np.ndarray) -> np.ndarray:
  """Straight line in time between the visible values either side of a gap, per
  feature; before the first and after the last visible value the nearest one is held
  (so extrapolation is a hold of the last value). Shapes, dtypes and errors as every
  baseline (module docstring, visible_inputs)."""
  x, visible = visible_inputs(values, observed, hidden)
  previous, following = _neighbours(visible)
  t = x.shape[1]
  has_previous, has_following = previous >= 0, following < t
  before, after = _gather(x, previous), _gather(x, following)
  minutes = np.arange(t)[None, :, None]
  span = np.maximum(following - previous, 1)
  line = before + (after - before) * ((minutes - previous) / span).astype(np.float32)
  held = np.where(has_previous, before, np.where(has_following, after, 0))
  return np.where(has_previous & has_following, line, held).astype(np.float32)


def nearest(values: np.ndarray, observed: np.ndarray, hidden: np.ndarray) -> np.ndarray:
  """The closest visible value in time (previous or next); ties go to the previous
  value, so the answer never depends on floating point or ordering. Shapes, dtypes
  and errors as every baseline (module docstring, visible_inputs)."""
  x, visible = visible_inputs(values, observed, hidden)
  previous, following = _neighbours(visible)
  t = x.shape[1]
  has_previous, has_following = previous >= 0, following < t
  minutes = np.arange(t)[None, :, None]
  use_previous = has_previous & (~has_following | (minutes - previous <= following - minutes))
  return np.where(use_previous, _gather(x, previous),
                  np.where(has_following, _gather(x, following), 0)).astype(np.float32)


def mice(values: np.ndarray, observed: np.ndarray, hidden: np.ndarray, *,
         seed: int = 0, pooled: bool = False, max_iter: int = 5,
         n_jobs: int = 1) -> np.ndarray:
  """MICE: scikit-learn's IterativeImputer (BayesianRidge chained equations).

  How samples are formed:
    pooled=False (default, the registry's "mice"): one imputer per window, fitted on
      that window alone; minutes are samples and the F features are columns. It
      learns how features co-vary within the window, so a minute with some features
      visible is imputed from them; a minute with none visible converges to about
      that window's feature mean; a feature with no visible value in the window is 0.
    pooled=True: one imputer fitted on the minutes of all N windows stacked
      (N*T samples x F columns), so cross-feature relations are learnt from every
      window's visible values (useful when whole features are hidden), at the cost
      of each window's own level (a fully hidden minute gets about the global mean).
  Not-visible positions are NaN to the imputer; seeded through random_state.

  Cost: per window it is F features x max_iter tiny regressions, dominated by
  scikit-learn's per-fit overhead (timings per window: benchmarks/README.md).
  max_iter=5 is the default because MAE moved by under 2% between 3, 5 and 10
  iterations on synthetic windows (30-minute gaps and 80% random patches); n_jobs
  spreads windows over processes (joblib).

  values float32 [N, T, F] (normalised), observed and hidden bool [N, T, F]; returns
  float32 [N, T, F]. Raises ValueError on mismatched shapes or non-bool masks.
  """
  from sklearn.experimental import enable_iterative_imputer  # noqa: F401
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.impute import IterativeImputer
  import threadpoolctl

  x, visible = visible_inputs(values, observed, hidden)
  n, t, f = x.shape
  gaps = np.where(visible, x, np.nan).astype(np.float64)

  def impute(rows: np.ndarray) -> np.ndarray:
    if np.isnan(rows).all():  # nothing to fit on: training mean everywhere
      return np.zeros_like(rows)
    imputer = IterativeImputer(max_iter=max_iter, random_state=seed,
                               keep_empty_features=True)
    # Many small regressions: multi-threaded BLAS only adds contention (much slower
    # per fit on a shared machine), so each imputer gets one thread.
    with threadpoolctl.threadpool_limits(1), warnings.catch_warnings():
      warnings.simplefilter("ignore", ConvergenceWarning)  # expected at max_iter
      return imputer.fit_transform(rows)

  if pooled:
    filled = impute(gaps.reshape(n * t, f)).reshape(n, t, f)
  elif n_jobs == 1 or n < 2:
    filled = np.stack([impute(window) for window in gaps]) if n else gaps
  else:
    import joblib
    filled = np.stack(joblib.Parallel(n_jobs=n_jobs)(
        joblib.delayed(impute)(window) for window in gaps))
  return np.where(visible, x, filled).astype(np.float32)


def fit_cross_feature(values: np.ndarray, observed: np.ndarray, *, max_rows: int = 20_000,
                      max_iter: int = 100, seed: int = 0) -> list[Any]:
  """One regressor per feature on the other features at the same minute, fitted on
  training windows (never the windows it will be scored on).

  Samples are minutes: feature f's regressor learns its value at a minute from the
  other features' values at that minute (NaN where not observed; scikit-learn's
  HistGradientBoostingRegressor routes NaN natively). At evaluation a task hides
  features the training data had, so each training row also hides every other feature
  with a probability drawn per row from U(0, 1): the regressor learns to predict from
  any subset of visible features, down to none (then it gives about the training
  mean); without it MAE was 0.627 instead of 0.569 on random_imputation_80 and 0.499
  instead of 0.459 on sensor_imputation_12 (the generative benchmark's earlier 24 x 6
  cohort). Per feature, max_rows minutes where it was observed are drawn (seeded); a
  feature never observed gets no regressor (None: its prediction is 0, the training
  mean in normalised units), and one with no other feature observed beside it (e.g. a
  heart-rate-only export) gets (empty indices, None): cross_feature leaves it to the
  window's own linear interpolation in time. One thread per fit: OpenMP threads on
  shared cores made a fit up to 40x slower (1.2 s with one thread, 44 s with two, on
  2 loaded cores).

  values float32 [N, T, F] (normalised), observed bool [N, T, F]; returns a list of F
  entries, (input feature indices, fitted regressor) or None. Raises ValueError on
  mismatched shapes.
  """
  from sklearn.ensemble import HistGradientBoostingRegressor
  import threadpoolctl
  x, visible = visible_inputs(values, observed, np.zeros_like(observed, dtype=bool))
  f = x.shape[-1]
  rows = np.where(visible, x, np.nan).reshape(-1, f)
  seen = visible.reshape(-1, f)
  rng = np.random.default_rng([seed, 11])
  regressors: list[Any] = []
  for k in range(f):
    where = np.flatnonzero(seen[:, k])
    if not where.size:
      regressors.append(None)
      continue
    where = np.sort(rng.choice(where, min(max_rows, where.size), replace=False))
    inputs = rows[where].copy()
    inputs[rng.random(inputs.shape) < rng.random((len(inputs), 1))] = np.nan
    # Inputs: the other features with any value here (scikit-learn cannot bin a column
    # that is NaN throughout); the target never predicts itself.
    columns = np.array([c for c in range(f) if c != k and np.isfinite(inputs[:, c]).any()],
                       dtype=int)
    if not columns.size:
      regressors.append((columns, None))
      continue
    regressor = HistGradientBoostingRegressor(max_iter=max_iter, random_state=seed)
    with threadpoolctl.threadpool_limits(1):
      regressors.append((columns, regressor.fit(inputs[:, columns], rows[where, k])))
  return regressors


def cross_feature(values: np.ndarray, observed: np.ndarray, hidden: np.ndarray, *,
                  regressors: Sequence[Any]) -> np.ndarray:
  """Each position that is not visible, predicted from the same minute's visible
  features by fit_cross_feature's regressors (0 for a feature never observed in
  training; linear interpolation in time for one with no other feature to regress on).

  At a minute where no feature is visible (an interpolation or extrapolation gap) the
  regressor could only give about the training mean, so the window's own linear
  interpolation in time fills it instead. Measured on the generative benchmark's earlier
  24 x 6 cohort (one-off runs): MAE 0.569 instead of 0.606 with the regressors'
  all-missing value on random_imputation_80, and linear interpolation's 0.544 instead
  of 0.722 on interpolation_30m. Shapes, dtypes and errors as every baseline (module docstring,
  visible_inputs); also ValueError when there is not one regressor per feature.
  """
  import threadpoolctl
  x, visible = visible_inputs(values, observed, hidden)
  n, t, f = x.shape
  if len(regressors) != f:
    raise ValueError(f"{len(regressors)} regressors for {f} features")
  filled = linear_interpolation(x, visible, np.zeros_like(visible)).reshape(-1, f)
  rows = np.where(visible, x, np.nan).reshape(-1, f)
  anything = visible.reshape(-1, f).any(axis=1)
  for k, fitted in enumerate(regressors):
    wanted = anything & ~visible.reshape(-1, f)[:, k]
    if wanted.any():
      if fitted is None:
        filled[wanted, k] = 0
        continue
      columns, regressor = fitted
      if regressor is None:
        continue
      with threadpoolctl.threadpool_limits(1):  # see fit_cross_feature
        filled[wanted, k] = regressor.predict(rows[np.ix_(wanted, columns)])
  return np.where(visible, x, filled.reshape(n, t, f)).astype(np.float32)


BASELINES: Mapping[str, Method] = {
    "mean_fill": mean_fill,
    "linear_interpolation": linear_interpolation,
    "nearest": nearest,
    "mice": functools.partial(mice, seed=0),
}
