"""The classical bar for the discriminative tasks: a random forest on window summaries.

A pre-trained encoder earns its place only if its embeddings (probe) or its weights
(fine-tune) classify better than what a practitioner would try first without one:
hand-made statistics of each feature over the window fed to a random forest. The
statistics are those of benchmarks/synthetic_realism.py's activity check (per feature:
mean, standard deviation, 10th and 90th percentiles, maximum over the observed minutes,
and the share of minutes missing), computed from the normalised windows the model
reads, so both see the same data.
"""

from __future__ import annotations

import warnings

import numpy as np

from trainer.metrics import classification_metrics

STATISTICS = ("mean", "std", "p10", "p90", "max", "missing_share")
# scikit-learn's forest, sized as in benchmarks/synthetic_realism.py (76.5% on its
# 8-class activity windows): enough trees that the seed barely moves the score.
TREES = 300
MIN_SAMPLES_LEAF = 2


def window_summary_statistics(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
  """Per window and feature, the STATISTICS over its observed minutes.

  values: float [N, T, F] (normalised; unobserved entries are ignored), observed: bool
  [N, T, F]. Returns float32 [N, F * len(STATISTICS)], statistic-major (all features'
  means, then all standard deviations, ...). A feature never observed in a window has
  0 (the training mean in normalised units) for its value statistics and 1 for its
  missing share, so the forest can tell "absent" from "at the mean".

  Raises ValueError when the shapes differ or are not 3-D.
  """
  values, observed = np.asarray(values, np.float32), np.asarray(observed, bool)
  if values.ndim != 3 or values.shape != observed.shape:
    raise ValueError(f"values and observed must be equal [N, T, F] arrays, got "
                     f"{values.shape} and {observed.shape}")
  masked = np.where(observed, values, np.nan)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled below
    parts = [np.nanmean(masked, axis=1), np.nanstd(masked, axis=1),
             np.nanpercentile(masked, 10, axis=1), np.nanpercentile(masked, 90, axis=1),
             np.nanmax(masked, axis=1)]
  parts = [np.nan_to_num(p, nan=0.0) for p in parts]
  parts.append(1.0 - observed.mean(axis=1))
  return np.concatenate(parts, axis=1).astype(np.float32)


def random_forest(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                  test_y: np.ndarray, num_classes: int, *, seed: int = 0) -> dict[str, float]:
  """Fits a random forest on summary statistics, scores it like the probe.

  train_x/test_x: [N, D] (window_summary_statistics), labels int [N] in 0..num_classes-1.
  Returns metrics.classification_metrics (accuracy, F1, mAP); probabilities go back to
  all num_classes columns even when the training set lacks a class, as the probe's do.
  Raises ValueError on mismatched lengths or a single-class training set.
  """
  from sklearn.ensemble import RandomForestClassifier

  train_x, test_x = np.asarray(train_x), np.asarray(test_x)
  train_y, test_y = np.asarray(train_y), np.asarray(test_y)
  if len(train_x) != len(train_y) or len(test_x) != len(test_y):
    raise ValueError("summary statistics and labels differ in length")
  if np.unique(train_y).size < 2:
    raise ValueError("the forest's training set holds a single class")
  model = RandomForestClassifier(n_estimators=TREES, min_samples_leaf=MIN_SAMPLES_LEAF,
                                 random_state=seed, n_jobs=1)
  model.fit(train_x, train_y)
  probabilities = np.zeros((len(test_x), num_classes))
  probabilities[:, model.classes_] = model.predict_proba(test_x)
  return classification_metrics(test_y, probabilities, num_classes)
