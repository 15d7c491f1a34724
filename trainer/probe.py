"""Linear probes on frozen embeddings, with few-shot sampling.

The probe is LSM's: a linear classifier on mean-pooled encoder embeddings. Here it is
scikit-learn's multinomial LogisticRegression behind a StandardScaler, so embedding
scale does not decide the regularisation. Few-shot training sets take exactly k
examples of every class, drawn with a seeded generator, so a result is reproducible
and the spread over seeds measures how much the pick of k examples matters.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from trainer.metrics import classification_metrics, mean_and_spread

SHOTS = (5, 10, 20)
SEEDS = (0, 1, 2)


def _check_labels(labels: np.ndarray, num_classes: int, what: str) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{what} labels must be a 1-D integer array, got {labels.dtype} "
                     f"{labels.shape}")
  outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
  if outside.size:
    raise ValueError(f"{what} labels: {outside.size} outside 0..{num_classes - 1} (e.g. "
                     f"index {outside[0]} = {labels[outside[0]]}); drop unknown (-1) "
                     "windows before probing and count them")
  return labels


def _class_name(c: int, class_names: Sequence[str] | None) -> str:
  return f"{c} ({class_names[c]})" if class_names is not None else str(c)


def few_shot_indices(labels: np.ndarray, shots: int, seed: int, num_classes: int,
                     class_names: Sequence[str] | None = None) -> np.ndarray:
  """Sorted indices of exactly `shots` examples of every class 0..num_classes-1.

  Deterministic for a seed: classes are visited in order and each draws without
  replacement from its own examples. A class with fewer than `shots` examples is an
  error that names it, never a silently smaller set.
  """
  labels = _check_labels(labels, num_classes, "few-shot")
  rng = np.random.default_rng(seed)
  chosen = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if members.size < shots:
      raise ValueError(f"class {_class_name(c, class_names)} has {members.size} training "
                       f"examples, fewer than the {shots} a {shots}-shot probe needs")
    chosen.append(rng.choice(members, size=shots, replace=False))
  return np.sort(np.concatenate(chosen))


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, num_classes: int, *, seed: int = 0,
                 regularisation: float = 1.0, max_iter: int = 2000) -> dict[str, float]:
  """Fits a standardised logistic regression on train, scores accuracy/F1/mAP on test.

  Probabilities go back to all num_classes columns even when the training set lacks a
  class (that column scores 0), so mAP stays comparable between runs.
  """
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  train_x, test_x = np.asarray(train_x), np.asarray(test_x)
  train_y = _check_labels(train_y, num_classes, "train")
  test_y = _check_labels(test_y, num_classes, "test")
  if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
    raise ValueError(f"embeddings must be [N, D] with equal D, got {train_x.shape} and "
                     f"{test_x.shape}")
  if len(train_x) != len(train_y) or len(test_x) != len(test_y):
    raise ValueError("embeddings and labels differ in length")
  if np.unique(train_y).size < 2:
    raise ValueError("the probe's training set holds a single class")
  model = make_pipeline(StandardScaler(),
                        LogisticRegression(C=regularisation, max_iter=max_iter,
                                           random_state=seed))
  model.fit(train_x, train_y)
  probabilities = np.zeros((len(test_x), num_classes))
  probabilities[:, model.classes_] = model.predict_proba(test_x)
  return classification_metrics(test_y, probabilities, num_classes)


def probe_over_seeds(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                     test_y: np.ndarray, num_classes: int, *,
                     seeds: Sequence[int] = SEEDS, shots: int | None = None,
                     class_names: Sequence[str] | None = None) -> dict[str, Any]:
  """Probe metrics as mean and spread over seeds (metrics.mean_and_spread).

  shots=None trains on the whole training set (the seed then only seeds the solver,
  so the spread is ~0); shots=k draws a fresh k-per-class set for every seed.
  """
  train_x, train_y = np.asarray(train_x), np.asarray(train_y)
  runs = []
  for seed in seeds:
    pick = (slice(None) if shots is None
            else few_shot_indices(train_y, shots, seed, num_classes, class_names))
    runs.append(linear_probe(train_x[pick], train_y[pick], test_x, test_y, num_classes,
                             seed=seed))
  return mean_and_spread(runs)


def few_shot_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                   test_y: np.ndarray, num_classes: int, *,
                   shots: Sequence[int] = SHOTS, seeds: Sequence[int] = SEEDS,
                   class_names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
  """{"5_shot": metrics with spread over seeds, "10_shot": ..., ...}."""
  return {f"{k}_shot": probe_over_seeds(train_x, train_y, test_x, test_y, num_classes,
                                        seeds=seeds, shots=k, class_names=class_names)
          for k in shots}
