"""Masking strategies: which positions of a window are hidden from the model.

Every strategy returns a bool array [T, F] (True = hidden from the model, to be
reconstructed) drawn from a numpy Generator, so training (as a Grain transform)
and evaluation (baselines, imputation tasks) share one definition.

Inherited masking (after LSM-2's AIM): positions missing in the raw data
(`observed` False) are never shown to the model either, and the loss is the MSE
over positions that are hidden by the strategy AND observed in the raw data,
never over values that were missing (`loss_weights`).

How a [T, F] hidden mask becomes tokens (trainer/models.py): a token (patch) is
*visible* when at least one of its valid positions is observed and not hidden;
it is dropped from the encoder otherwise. In a visible token the hidden and the
missing positions are zeroed and a second input channel tells the model which
positions it sees, so the model never sees a hidden value, yet a partly hidden
patch (sensor imputation, a gap not aligned to patches) still contributes its
visible values.

The encoder's token budget in training follows each example's strategy (after LSM-2's
AIM, which drops a share of the masked tokens before the encoder and hides the rest
with attention masks; `encoder_budget`): a random-masking example keeps its (1 -
ratio) share of the tokens (LSM's 36 of 180), extra visible tokens being hidden at
random, MAE style (`limit_visible_tokens`), and reconstructed and scored like any
other hidden position; an interpolation, extrapolation or sensor-imputation example
keeps every visible token (or a cap), so the encoder trains with the near-complete
context those tasks give at evaluation. One batch can then hold examples of several
budgets: the trainer encodes K = the batch's largest count rounded up to one of a few
buckets (`bucket`) and masks the empty slots out of attention (models.MAE.encode).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from schemas.constants import NUM_FEATURES, PATCH_FEATURES, PATCH_MINUTES, WINDOW_MINUTES
from trainer import patching

SHAPE = (WINDOW_MINUTES, NUM_FEATURES)
PATCH = (PATCH_MINUTES, PATCH_FEATURES)


class MaskConfigError(ValueError):
  """A masking setting no mask can be drawn with: a config error, reported by the
  commands as one line (trainer/cli.py)."""


def random_patches(rng: np.random.Generator, ratio: float = 0.8,
                   patch: Sequence[int] = PATCH,
                   shape: Sequence[int] = SHAPE) -> np.ndarray:
  """Hides round(ratio * tokens) whole patches of the padded token grid (LSM's 80%).

  patch: (minutes, features) of a token; shape: (T minutes, F features) of the window.
  Returns bool [T, F], True = hidden. Raises ValueError when ratio is outside [0, 1].
  """
  if not 0.0 <= ratio <= 1.0:
    raise MaskConfigError(f"mask ratio must be in [0, 1], got {ratio}")
  nt, nf = patching.grid(shape, patch)
  n = nt * nf
  hidden_tokens = np.zeros(n, dtype=bool)
  hidden_tokens[rng.permutation(n)[:int(round(ratio * n))]] = True
  return patching.expand_tokens(hidden_tokens, patch, shape)


def draw_length(rng: np.random.Generator, length: int, min_length: int | None) -> int:
  """`length`, or (when min_length is given) a length drawn uniformly from
  [min_length, length] minutes: one strategy then trains on short and long gaps alike.
  Raises MaskConfigError when min_length is below 1 or above length."""
  if min_length is not None and min_length > length:
    raise MaskConfigError(f"minimum length {min_length} minutes exceeds the longest, "
                          f"{length} minutes (config.mask.min_gap_minutes / "
                          "min_span_minutes must not exceed gap_minutes / span_minutes)")
  if min_length is None or min_length == length:
    return int(length)
  if min_length < 1:
    raise MaskConfigError(f"minimum length {min_length} minutes needs to be at least 1")
  return int(rng.integers(min_length, length + 1))


def interpolation(rng: np.random.Generator, gap_minutes: int = 60,
                  shape: Sequence[int] = SHAPE,
                  min_gap_minutes: int | None = None) -> np.ndarray:
  """Hides every feature over a contiguous block strictly inside the window.

  The block never touches the first or the last minute, so there is context on
  both sides (that is what makes it interpolation rather than extrapolation).
  min_gap_minutes: when given, the gap is drawn in [min_gap_minutes, gap_minutes].
  Returns bool [T, F] (shape = (T minutes, F features)), True = hidden. Raises
  ValueError unless 1 <= gap <= T - 2.
  """
  t, f = shape
  gap_minutes = draw_length(rng, gap_minutes, min_gap_minutes)
  if not 1 <= gap_minutes <= t - 2:
    raise MaskConfigError(f"interpolation gap of {gap_minutes} minutes does not fit "
                          f"strictly inside a {t}-minute window")
  start = int(rng.integers(1, t - gap_minutes))  # start in [1, t - gap - 1]
  hidden = np.zeros((t, f), dtype=bool)
  hidden[start:start + gap_minutes] = True
  return hidden


def extrapolation(gap_minutes: int = 60, shape: Sequence[int] = SHAPE,
                  rng: np.random.Generator | None = None,
                  min_gap_minutes: int | None = None) -> np.ndarray:
  """Hides every feature over the last `gap_minutes` minutes (forecasting).

  Deterministic unless min_gap_minutes is given (then the gap is drawn from `rng` in
  [min_gap_minutes, gap_minutes]). Returns bool [T, F], True = hidden. Raises
  ValueError unless 1 <= gap <= T - 1.
  """
  t, f = shape
  if min_gap_minutes is not None:
    gap_minutes = draw_length(rng, gap_minutes, min_gap_minutes)
  if not 1 <= gap_minutes <= t - 1:
    raise MaskConfigError(f"extrapolation gap of {gap_minutes} minutes needs 1..{t - 1}")
  hidden = np.zeros((t, f), dtype=bool)
  hidden[t - gap_minutes:] = True
  return hidden


def sensor_imputation(rng: np.random.Generator, num_features: int = 6,
                      shape: Sequence[int] = SHAPE,
                      span_minutes: int | None = None,
                      features: Sequence[int] | None = None,
                      min_span_minutes: int | None = None) -> np.ndarray:
  """Hides chosen features over a span (the whole window by default), LSM-2 style.

  `features` fixes which features (column indices, LSM order); otherwise
  `num_features` are drawn at random. span_minutes: None = the whole window;
  min_span_minutes: when given, the span is drawn in [min_span_minutes, span].
  Returns bool [T, F], True = hidden. Raises ValueError when num_features is not in
  1..F or the span not in 1..T minutes.
  """
  t, f = shape
  if features is None:
    if not 1 <= num_features <= f:
      raise MaskConfigError(f"sensor imputation of {num_features} features needs 1..{f}")
    features = rng.choice(f, size=num_features, replace=False)
  span = draw_length(rng, t if span_minutes is None else int(span_minutes), min_span_minutes)
  if not 1 <= span <= t:
    raise MaskConfigError(f"sensor imputation span {span} minutes needs 1..{t}")
  start = int(rng.integers(0, t - span + 1))
  hidden = np.zeros((t, f), dtype=bool)
  hidden[start:start + span, np.asarray(features, dtype=int)] = True
  return hidden


def mixture(rng: np.random.Generator, weights: Mapping[str, float] | str,
            **kwargs: Any) -> np.ndarray:
  """Draws one strategy per window with the given weights (pre-training mixture).

  `weights` maps strategy names to weights, or is a string "random:0.6,extrapolation:0.4"
  (handy on the command line). kwargs go to whichever strategy accepts them.
  Returns the drawn strategy's bool [T, F] mask. Raises ValueError on bad weights
  (parse_weights).
  """
  return make(choose(rng, weights), rng, **kwargs)


def choose(rng: np.random.Generator, weights: Mapping[str, float] | str) -> str:
  """One strategy name drawn with the mixture's weights (parse_weights' forms)."""
  weights = parse_weights(weights)
  names = sorted(weights)
  p = np.array([weights[n] for n in names], dtype=np.float64)
  return names[int(rng.choice(len(names), p=p / p.sum()))]


def parse_weights(weights: Mapping[str, float] | str) -> dict[str, float]:
  """{strategy: weight} from a mapping or "name:weight,..." (weights need not sum to 1).

  Raises ValueError on a malformed string, an unknown strategy or "mixture" itself, a
  negative weight, or weights that sum to 0.
  """
  if isinstance(weights, str):
    items = [item.split(":") for item in weights.split(",") if item.strip()]
    try:
      weights = {name.strip(): float(w) for name, w in items}
    except ValueError:
      raise MaskConfigError(
          f"mixture weights {weights!r}: expected 'name:weight,...'") from None
  weights = dict(weights)
  names = sorted(set(STRATEGIES) - {"mixture"})
  unknown = sorted(set(weights) - set(names))
  if unknown:
    raise MaskConfigError(f"mixture weights {weights}: unknown strategy {unknown}; "
                          f"expected names from {names}")
  if not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
    raise MaskConfigError(f"mixture weights {weights}: need non-negative weights with a "
                          f"positive sum over {names}")
  return weights


STRATEGIES: dict[str, Callable[..., np.ndarray]] = {
    "random": random_patches,
    "interpolation": interpolation,
    "extrapolation": extrapolation,
    "sensor_imputation": sensor_imputation,
    "mixture": mixture,
}


def make(strategy: str, rng: np.random.Generator, **kwargs: Any) -> np.ndarray:
  """Hidden mask bool [T, F] of the named strategy; passes each strategy only its kwargs
  (None values dropped, so a config's unset fields keep the strategy's defaults).

  Raises ValueError on an unknown strategy (and whatever the strategy raises).
  """
  try:
    fn = STRATEGIES[strategy]
  except KeyError:
    raise MaskConfigError(f"unknown masking strategy {strategy!r}; "
                          f"expected one of {sorted(STRATEGIES)}") from None
  params = inspect.signature(fn).parameters
  if "kwargs" in params:
    return fn(rng=rng, **kwargs)
  return fn(rng=rng, **{k: v for k, v in kwargs.items() if k in params and v is not None})


def visible(hidden: np.ndarray, observed: np.ndarray) -> np.ndarray:
  """Positions the model sees: observed in the raw data and not hidden (bool, the
  arrays' broadcast shape, e.g. [T, F] or [B, T, F])."""
  return observed & ~hidden


def loss_weights(hidden: np.ndarray, observed: np.ndarray) -> np.ndarray:
  """Positions scored by the loss: hidden by the strategy and observed in the raw data
  (bool numpy or JAX arrays, their broadcast shape)."""
  return hidden & observed


def limit_visible_tokens(rng: np.random.Generator, hidden: np.ndarray,
                         observed: np.ndarray, max_tokens: int,
                         patch: Sequence[int] = PATCH) -> np.ndarray:
  """Hides random extra visible tokens so at most `max_tokens` reach the encoder.

  This is the MAE-style drop: LSM's 80% random masking leaves exactly 36 of 180 tokens
  (`encoder_budget` says which budget each strategy gets); the surplus is
  reconstructed like any other hidden patch.
  hidden, observed: bool [T, F]; max_tokens: patches of `patch` (minutes, features).
  Returns bool [T, F] (hidden itself when within the budget).
  """
  token_visible = patching.token_any(visible(hidden, observed), patch)
  idx = np.flatnonzero(token_visible)
  if len(idx) <= max_tokens:
    return hidden
  drop = np.zeros_like(token_visible)
  drop[rng.choice(idx, size=len(idx) - max_tokens, replace=False)] = True
  return hidden | patching.expand_tokens(drop, patch, hidden.shape)


def encoder_budget(strategy: str, random_tokens: int, max_tokens: int | None = None,
                   adaptive: bool = True) -> int | None:
  """The encoder token budget of one example drawn with `strategy` (a name, not
  "mixture"), for limit_visible_tokens; None = every visible token.

  adaptive (after LSM-2's AIM): "random" keeps `random_tokens` (LSM's (1 - 0.8) x 180 =
  36), the block strategies (interpolation, extrapolation, sensor imputation) keep all
  their visible tokens, at most `max_tokens` when given, because evaluation shows them
  the whole visible context. adaptive False: every strategy gets `random_tokens` (the
  fixed budget of LSM-1's MAE).
  """
  if strategy == "random" or not adaptive:
    return random_tokens
  return max_tokens


def visible_tokens(hidden: np.ndarray, observed: np.ndarray,
                   patch: Sequence[int] = PATCH) -> int:
  """How many tokens of `patch` the encoder gets for one bool [T, F] window."""
  return int(patching.token_any(visible(hidden, observed), patch).sum())


def bucket(tokens: int, buckets: Sequence[int]) -> int:
  """The smallest bucket >= tokens (buckets ascending, the last = the most an encoder
  can take); the train step is compiled once per bucket, so a handful of buckets
  bounds the compilations. Raises ValueError when tokens exceeds the last bucket."""
  for b in buckets:
    if tokens <= b:
      return int(b)
  raise ValueError(f"{tokens} encoder tokens exceed the largest bucket {buckets[-1]}")
