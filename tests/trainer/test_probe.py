import numpy as np
import pytest

from schemas.constants import ACTIVITY_CLASSES
from trainer import probe


def blobs(per_class, num_classes=3, dim=8, seed=0, spread=0.3):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim)) * 3
  labels = np.repeat(np.arange(num_classes), per_class)
  return centres[labels] + rng.normal(size=(len(labels), dim)) * spread, labels


def test_few_shot_sampling_is_stratified_and_deterministic():
  labels = np.array([0] * 30 + [1] * 12 + [2] * 25)
  picked = probe.few_shot_indices(labels, 10, seed=3, num_classes=3)
  assert np.bincount(labels[picked], minlength=3).tolist() == [10, 10, 10]
  assert np.unique(picked).size == 30 and np.all(np.diff(picked) > 0)
  np.testing.assert_array_equal(picked, probe.few_shot_indices(labels, 10, 3, 3))
  assert not np.array_equal(picked, probe.few_shot_indices(labels, 10, 4, 3))


def test_too_few_examples_names_the_class():
  labels = np.array([0] * 30 + [1] * 30 + [2] * 4)
  with pytest.raises(ValueError, match=r"class 2 \(elliptical\) has 4 .* 5-shot"):
    probe.few_shot_indices(labels, 5, 0, 3, class_names=ACTIVITY_CLASSES)
  with pytest.raises(ValueError, match="class 3 has 0"):
    probe.few_shot_indices(labels, 1, 0, 4)
  with pytest.raises(ValueError, match="unknown"):
    probe.few_shot_indices(np.array([0, -1]), 1, 0, 2)


def test_linear_probe_separates_separable_embeddings():
  train_x, train_y = blobs(30)
  test_x, test_y = blobs(20, seed=0)
  result = probe.linear_probe(train_x, train_y, test_x, test_y, 3)
  assert result == pytest.approx({"accuracy": 1.0, "macro_f1": 1.0, "map": 1.0})


def test_probe_scores_classes_missing_from_training():
  train_x, train_y = blobs(10, num_classes=2)
  test_x, test_y = blobs(5, num_classes=3)
  result = probe.linear_probe(train_x, train_y, test_x, test_y, 3)
  assert 0 <= result["accuracy"] <= 2 / 3 + 1e-9  # class 2 is never predicted


def test_few_shot_probe_reports_spread_over_seeds():
  train_x, train_y = blobs(40, spread=2.5)
  test_x, test_y = blobs(30, seed=0, spread=2.5)
  results = probe.few_shot_probe(train_x, train_y, test_x, test_y, 3, shots=(5, 20),
                                 seeds=(0, 1, 2))
  assert list(results) == ["5_shot", "20_shot"]
  for entry in results.values():
    assert entry["runs"] == 3
    assert set(entry) == {"accuracy", "macro_f1", "map", "accuracy_std", "macro_f1_std",
                          "map_std", "runs"}
  assert results["5_shot"]["accuracy_std"] > 0  # different picks, different probes
  assert results == probe.few_shot_probe(train_x, train_y, test_x, test_y, 3,
                                         shots=(5, 20), seeds=(0, 1, 2))
  full = probe.probe_over_seeds(train_x, train_y, test_x, test_y, 3, seeds=(0, 1))
  assert full["runs"] == 2 and full["accuracy_std"] == pytest.approx(0, abs=1e-12)
