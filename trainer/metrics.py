"""Evaluation metrics: masked reconstruction errors and classification scores.

Generative errors are computed only where the task hid a value that the raw data
actually had (hidden & observed): a missing minute has no ground truth. They are
reported in normalised units (what LSM reports) and per feature in physical units,
inverted with the manifest's train_statistics (x = z * std + mean), which needs no
TensorFlow. Values the pipeline clipped to +-NORMALISED_CLIP stay clipped, so a
physical error on a clipped outlier is a lower bound.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from schemas.features import FEATURE_NAMES
from trainer.baselines import Method


def scored_positions(observed: np.ndarray, hidden: np.ndarray) -> np.ndarray:
  return np.asarray(hidden, dtype=bool) & np.asarray(observed, dtype=bool)


def masked_errors(predictions: np.ndarray, targets: np.ndarray,
                  scored: np.ndarray) -> dict[str, float]:
  """MAE and MSE over the scored positions, pooled over windows and features."""
  predictions, targets = np.asarray(predictions), np.asarray(targets)
  if predictions.shape != targets.shape or scored.shape != targets.shape:
    raise ValueError(f"shapes differ: predictions {predictions.shape}, targets "
                     f"{targets.shape}, scored {scored.shape}")
  count = int(scored.sum())
  if count == 0:
    raise ValueError("no scored positions: the task hid nothing that was observed")
  error = (predictions.astype(np.float64) - targets)[scored]
  if not np.isfinite(error).all():
    raise ValueError(f"{int((~np.isfinite(error)).sum())} non-finite predictions at "
                     "scored positions")
  return {"mae": float(np.abs(error).mean()), "mse": float(np.square(error).mean()),
          "count": count}


def physical_scale(train_statistics: Mapping[str, Mapping[str, float]],
                   feature_names: Sequence[str] = FEATURE_NAMES
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Per-feature (mean, std) arrays from the manifest's train_statistics.

  A feature the training split never observed has no usable std (0, NaN or null);
  its std comes back NaN so its physical errors read None rather than a number
  inverted with a made-up scale. A feature absent from train_statistics is an error.
  """
  missing = [name for name in feature_names if name not in train_statistics]
  if missing:
    raise ValueError(f"train_statistics lacks features {missing}")

  def number(name: str, key: str) -> float:
    value = train_statistics[name].get(key)
    return float("nan") if value is None else float(value)

  mean = np.array([number(n, "mean") for n in feature_names])
  std = np.array([number(n, "std") for n in feature_names])
  return mean, np.where(np.isfinite(std) & (std > 0) & np.isfinite(mean), std, np.nan)


def per_feature_errors(predictions: np.ndarray, targets: np.ndarray, scored: np.ndarray,
                       train_statistics: Mapping[str, Mapping[str, float]],
                       feature_names: Sequence[str] = FEATURE_NAMES
                       ) -> dict[str, dict[str, Any]]:
  """MAE / MSE of each feature in its physical unit.

  None where nothing was scored, or where the feature has no training statistics
  (then "unscaled" says why and only the normalised numbers are meaningful).
  """
  if targets.shape[-1] != len(feature_names):
    raise ValueError(f"{targets.shape[-1]} features in the data, "
                     f"{len(feature_names)} names")
  mean, std = physical_scale(train_statistics, feature_names)
  error = ((predictions.astype(np.float64) * std + mean)
           - (targets.astype(np.float64) * std + mean))
  error = np.where(scored, error, 0.0).reshape(-1, len(feature_names))
  counts = scored.reshape(-1, len(feature_names)).sum(axis=0)
  mae = np.abs(error).sum(axis=0) / np.maximum(counts, 1)
  mse = np.square(error).sum(axis=0) / np.maximum(counts, 1)
  result = {}
  for i, name in enumerate(feature_names):
    usable = counts[i] > 0 and np.isfinite(std[i])
    result[name] = {"mae": float(mae[i]) if usable else None,
                    "mse": float(mse[i]) if usable else None, "count": int(counts[i])}
    if not np.isfinite(std[i]):
      result[name]["unscaled"] = "no positive, finite training std for this feature"
  return result


def generative_metrics(predictions: np.ndarray, values: np.ndarray, observed: np.ndarray,
                       hidden: np.ndarray,
                       train_statistics: Mapping[str, Mapping[str, float]] | None = None,
                       feature_names: Sequence[str] = FEATURE_NAMES) -> dict[str, Any]:
  """The results.json entry of one method on one task."""
  scored = scored_positions(observed, hidden)
  result: dict[str, Any] = masked_errors(predictions, values, scored)
  if train_statistics is not None:
    result["per_feature"] = per_feature_errors(predictions, values, scored,
                                               train_statistics, feature_names)
  return result


def _read_only(array: np.ndarray) -> np.ndarray:
  array = np.array(array, copy=True)
  array.flags.writeable = False
  return array


def score_methods(methods: Mapping[str, Method], values: np.ndarray, observed: np.ndarray,
                  hidden: np.ndarray,
                  train_statistics: Mapping[str, Mapping[str, float]] | None = None,
                  feature_names: Sequence[str] = FEATURE_NAMES
                  ) -> dict[str, dict[str, Any]]:
  """Runs every method on one task's masks and scores it.

  All methods get the very same read-only arrays, with hidden values already zeroed
  (values as the model would see them), so no method can read the answer or alter
  the masks the next method receives.
  """
  observed = _read_only(np.asarray(observed, dtype=bool))
  hidden = _read_only(np.asarray(hidden, dtype=bool))
  inputs = _read_only(np.where(observed & ~hidden, values, 0).astype(np.float32))
  results = {}
  for name, method in methods.items():
    predictions = np.asarray(method(inputs, observed, hidden))
    if predictions.shape != inputs.shape:
      raise ValueError(f"method {name!r} returned shape {predictions.shape}, "
                       f"expected {inputs.shape}")
    results[name] = generative_metrics(predictions, values, observed, hidden,
                                       train_statistics, feature_names)
  return results


def score_tasks(methods: Mapping[str, Method], values: np.ndarray, observed: np.ndarray,
                hidden_by_task: Mapping[str, np.ndarray],
                train_statistics: Mapping[str, Mapping[str, float]] | None = None,
                feature_names: Sequence[str] = FEATURE_NAMES
                ) -> dict[str, dict[str, dict[str, Any]]]:
  """results.json's generative section: {task: {method: metrics}}.

  hidden_by_task holds one bool [N, T, F] mask per task, drawn once from the task's
  fixed seed by the caller (trainer/masking.py), so every method is scored on it.
  """
  return {task: score_methods(methods, values, observed, hidden, train_statistics,
                              feature_names)
          for task, hidden in hidden_by_task.items()}


def relative_improvement(model_value: float, baseline_values: Mapping[str, float | None],
                         higher_is_better: bool = False) -> dict[str, Any]:
  """How much better the model is than the best baseline, as a fraction of it.

  Lower-is-better metrics (MAE): (best - model) / best, so 0.2 means 20% lower error.
  Higher-is-better metrics (accuracy): (model - best) / best.
  """
  candidates = {k: float(v) for k, v in baseline_values.items()
                if v is not None and math.isfinite(float(v))}
  if not candidates:
    raise ValueError("no baseline value to compare with")
  pick = max if higher_is_better else min
  best = pick(candidates, key=candidates.get)
  best_value = candidates[best]
  if best_value == 0:
    relative = None  # undefined: the best baseline is already perfect
  elif higher_is_better:
    relative = (model_value - best_value) / abs(best_value)
  else:
    relative = (best_value - model_value) / abs(best_value)
  return {"best_baseline": best, "best_value": best_value, "model_value": float(model_value),
          "relative_improvement": relative}


def classification_metrics(labels: np.ndarray, scores: np.ndarray,
                           num_classes: int) -> dict[str, float]:
  """Accuracy, macro-F1 and mean average precision from per-class scores.

  scores: [N, C] class probabilities or decision scores (argmax is the prediction);
  for a binary task [N] positive-class scores are accepted too. mAP is the one-vs-rest
  average precision averaged over the classes present in `labels`; for a binary task
  it is the average precision of the positive class (class 1).
  """
  from sklearn.metrics import accuracy_score, average_precision_score, f1_score

  labels = np.asarray(labels)
  scores = np.asarray(scores, dtype=np.float64)
  if num_classes == 2 and scores.ndim == 1:
    scores = np.stack([-scores, scores], axis=1)
  if scores.shape != (len(labels), num_classes):
    raise ValueError(f"scores shape {scores.shape}, expected ({len(labels)}, {num_classes})")
  outside = (labels < 0) | (labels >= num_classes)
  if outside.any():
    raise ValueError(f"{int(outside.sum())} labels outside 0..{num_classes - 1} (first at "
                     f"index {int(np.argmax(outside))}: {labels[outside][0]})")
  if len(labels) == 0:
    raise ValueError("no examples to score")
  predicted = scores.argmax(axis=1)
  if num_classes == 2:
    average_precision = (average_precision_score(labels == 1, scores[:, 1])
                         if (labels == 1).any() else float("nan"))
  else:
    present = np.unique(labels)
    average_precision = float(np.mean([average_precision_score(labels == c, scores[:, c])
                                       for c in present]))
  return {"accuracy": float(accuracy_score(labels, predicted)),
          "macro_f1": float(f1_score(labels, predicted, average="macro")),
          "map": float(average_precision)}


def mean_and_spread(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
  """Mean of each metric over seeds plus its spread, `NAME_std` (sample std, ddof=1;
  0 for a single run), and `runs`, the number of seeds."""
  if not runs:
    raise ValueError("no runs to summarise")
  keys = list(runs[0])
  summary: dict[str, float] = {}
  for key in keys:
    column = np.array([float(run[key]) for run in runs])
    summary[key] = float(column.mean())
    summary[f"{key}_std"] = float(column.std(ddof=1)) if len(column) > 1 else 0.0
  summary["runs"] = len(runs)
  return summary
