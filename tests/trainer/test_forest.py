"""trainer.forest: the summary statistics and the random-forest baseline."""

import numpy as np
import pytest

from trainer import forest


def test_statistics_use_only_observed_minutes():
  values = np.zeros((1, 10, 2), np.float32)
  values[0, :, 0] = np.arange(10)
  values[0, :, 1] = 99.0                      # never observed: must not leak
  observed = np.zeros_like(values, bool)
  observed[0, :5, 0] = True                   # feature 0: minutes 0..4 observed
  values[0, 5:, 0] = 1000.0                   # unobserved values are ignored
  stats = forest.window_summary_statistics(values, observed).reshape(
      len(forest.STATISTICS), 2)
  by_name = dict(zip(forest.STATISTICS, stats))
  np.testing.assert_allclose(by_name["mean"], [2.0, 0.0])
  np.testing.assert_allclose(by_name["std"], [np.std(np.arange(5)), 0.0], rtol=1e-6)
  np.testing.assert_allclose(by_name["p10"], [np.percentile(np.arange(5), 10), 0.0])
  np.testing.assert_allclose(by_name["p90"], [np.percentile(np.arange(5), 90), 0.0])
  np.testing.assert_allclose(by_name["max"], [4.0, 0.0])
  np.testing.assert_allclose(by_name["missing_share"], [0.5, 1.0])


def test_statistics_refuse_mismatched_shapes():
  with pytest.raises(ValueError, match="equal"):
    forest.window_summary_statistics(np.zeros((2, 10, 3)), np.ones((2, 10, 2), bool))


def test_forest_learns_a_separable_task_and_keeps_every_class_column():
  rng = np.random.default_rng(0)
  y = np.repeat([0, 1], 40)
  x = rng.normal(size=(80, 4)) + 3.0 * y[:, None]
  result = forest.random_forest(x[::2], y[::2], x[1::2], y[1::2], num_classes=3, seed=0)
  assert result["accuracy"] > 0.9
  assert 0 <= result["map"] <= 1


def test_forest_refuses_one_class():
  with pytest.raises(ValueError, match="single class"):
    forest.random_forest(np.zeros((4, 2)), np.zeros(4, int), np.zeros((2, 2)),
                         np.zeros(2, int), num_classes=2)
