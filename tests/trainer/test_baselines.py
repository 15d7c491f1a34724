import numpy as np
import pytest

from trainer import baselines


def tiny_case():
  """One window, 6 minutes, 2 features, with hand-computed answers below.

  feature 0: visible at t=0 (1), t=3 (10), t=5 (7); hidden at t=1, 2, 4.
  feature 1: hidden at the edges t=0 and t=5; t=2 was never observed (value 0);
    visible at t=1 (-1), t=3 (3), t=4 (4).
  """
  values = np.array([[1, 0.5], [2, -1], [3, 0], [10, 3], [5, 4], [7, 8]],
                    dtype=np.float32)[None]
  observed = np.ones_like(values, dtype=bool)
  observed[0, 2, 1] = False
  hidden = np.zeros_like(observed)
  hidden[0, [1, 2, 4], 0] = True
  hidden[0, [0, 5], 1] = True
  return values, observed, hidden


# (method, expected f0 at t=1,2,4, expected f1 at t=0,5)
HAND = {
    "mean_fill": ([6, 6, 6], [2, 2]),                 # (1+10+7)/3, (-1+3+4)/3
    "linear_interpolation": ([4, 7, 8.5], [-1, 4]),   # 1+9/3, 1+18/3, (10+7)/2; edges held
    "nearest": ([1, 10, 10], [-1, 4]),                # t=4 is a tie: previous wins
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_computed_predictions(name):
  values, observed, hidden = tiny_case()
  predictions = baselines.BASELINES[name](values, observed, hidden)
  assert predictions.dtype == np.float32 and predictions.shape == values.shape
  f0, f1 = HAND[name]
  np.testing.assert_allclose(predictions[0, [1, 2, 4], 0], f0, rtol=1e-6)
  np.testing.assert_allclose(predictions[0, [0, 5], 1], f1, rtol=1e-6)
  visible = observed & ~hidden
  np.testing.assert_array_equal(predictions[visible], values[visible])


def test_unobserved_minutes_are_filled_from_visible_neighbours():
  values, observed, hidden = tiny_case()
  # t=2 of feature 1 was missing in the raw data: between -1 (t=1) and 3 (t=3).
  assert baselines.linear_interpolation(values, observed, hidden)[0, 2, 1] == 1
  assert baselines.nearest(values, observed, hidden)[0, 2, 1] == -1


@pytest.mark.parametrize("name", sorted(baselines.BASELINES))
def test_nothing_visible_predicts_the_training_mean(name):
  values, observed, hidden = tiny_case()
  hidden[0, :, 1] = True
  predictions = baselines.BASELINES[name](values, observed, hidden)
  np.testing.assert_array_equal(predictions[0, :, 1], 0)


@pytest.mark.parametrize("name", sorted(baselines.BASELINES))
def test_baselines_never_read_hidden_or_missing_values(name):
  rng = np.random.default_rng(0)
  values = rng.normal(size=(3, 40, 5)).astype(np.float32)
  observed = rng.random(values.shape) > 0.2
  hidden = np.zeros_like(observed)
  hidden[:, 10:20] = True
  hidden[:, :, 3] |= rng.random((3, 40)) > 0.5
  altered = np.where(observed & ~hidden, values, rng.normal(size=values.shape) * 100)
  np.testing.assert_array_equal(
      baselines.BASELINES[name](values, observed, hidden),
      baselines.BASELINES[name](altered.astype(np.float32), observed, hidden))


def test_mice_recovers_a_linear_relation_between_features():
  t = np.arange(50, dtype=np.float32)
  first = np.sin(t / 5)
  values = np.stack([first, 2 * first + 1, np.cos(t / 7)], axis=-1)[None]
  observed = np.ones_like(values, dtype=bool)
  hidden = np.zeros_like(observed)
  hidden[0, 20:30, 1] = True
  predictions = baselines.mice(values, observed, hidden)
  np.testing.assert_allclose(predictions[0, 20:30, 1], 2 * first[20:30] + 1, atol=1e-3)
  np.testing.assert_array_equal(predictions, baselines.mice(values, observed, hidden))


def test_pooled_mice_learns_a_feature_hidden_for_a_whole_window():
  rng = np.random.default_rng(1)
  first = rng.normal(size=(2, 30)).astype(np.float32)
  values = np.stack([first, 3 * first], axis=-1)
  observed = np.ones_like(values, dtype=bool)
  hidden = np.zeros_like(observed)
  hidden[0, :, 1] = True  # window 0 never shows feature 1; window 1 shows the relation
  per_window = baselines.mice(values, observed, hidden)
  pooled = baselines.mice(values, observed, hidden, pooled=True)
  np.testing.assert_array_equal(per_window[0, :, 1], 0)
  np.testing.assert_allclose(pooled[0, :, 1], 3 * first[0], atol=1e-2)
  np.testing.assert_array_equal(baselines.mice(values, observed, hidden, n_jobs=2),
                                per_window)


def test_bad_inputs_are_refused():
  values, observed, hidden = tiny_case()
  with pytest.raises(ValueError, match="hidden shape"):
    baselines.mean_fill(values, observed, hidden[:, :3])
  with pytest.raises(ValueError, match="observed must be a bool mask"):
    baselines.nearest(values, observed.astype(np.float32), hidden)
  with pytest.raises(ValueError, match=r"\[N, T, F\]"):
    baselines.linear_interpolation(values[0], observed[0], hidden[0])


def related_windows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """n windows of 40 minutes, 4 features: feature 1 = 2 * feature 0 and feature 2 =
  -feature 0 at every minute (plus a little noise); feature 3 is never observed."""
  rng = np.random.default_rng(seed)
  first = rng.normal(size=(n, 40)).astype(np.float32)
  noise = 0.01 * rng.normal(size=(n, 40, 2)).astype(np.float32)
  values = np.stack([first, 2 * first + noise[..., 0], -first + noise[..., 1],
                     np.zeros_like(first)], axis=-1)
  observed = np.ones_like(values, dtype=bool)
  observed[..., 3] = False
  return values, observed


@pytest.fixture(scope="module")
def regressors():
  values, observed = related_windows(40, seed=0)
  return baselines.fit_cross_feature(values, observed, max_rows=1000, max_iter=50)


def test_cross_feature_predicts_a_hidden_feature_from_the_others_at_that_minute(regressors):
  values, observed = related_windows(3, seed=1)  # other windows than the fitted ones
  hidden = np.zeros_like(observed)
  hidden[:, :, 1] = True  # the whole feature, the whole window: per-window baselines
  hidden[0, 10:20, 2] = True  # have nothing; a minute of window 0 has only feature 0
  predictions = baselines.cross_feature(values, observed, hidden, regressors=regressors)
  assert predictions.dtype == np.float32 and predictions.shape == values.shape
  error = np.abs(predictions[:, :, 1] - values[:, :, 1]).mean()
  assert error < 0.25 < np.abs(values[:, :, 1]).mean()  # mean fill's error is ~1.6
  np.testing.assert_allclose(predictions[0, 10:20, 2], values[0, 10:20, 2], atol=0.4)
  visible = observed & ~hidden
  np.testing.assert_array_equal(predictions[visible], values[visible])
  assert regressors[3] is None  # never observed in training: the training mean, 0
  np.testing.assert_array_equal(predictions[..., 3], 0)


def test_cross_feature_with_nothing_visible_at_a_minute_interpolates_in_time(regressors):
  values, observed = related_windows(1, seed=2)
  hidden = np.zeros_like(observed)
  hidden[0, 5:8] = True  # every feature hidden at minutes 5-7
  hidden[0, 20:30, 1] = True  # feature 1 alone hidden: from the others
  predictions = baselines.cross_feature(values, observed, hidden, regressors=regressors)
  line = baselines.linear_interpolation(values, observed, hidden)
  np.testing.assert_array_equal(predictions[0, 5:8], line[0, 5:8])
  columns, regressor = regressors[1]
  np.testing.assert_allclose(predictions[0, 20:30, 1],
                             regressor.predict(values[0, 20:30][:, columns]), rtol=1e-6)


def test_cross_feature_never_reads_hidden_or_missing_values_and_is_seeded(regressors):
  values, observed = related_windows(2, seed=3)
  rng = np.random.default_rng(4)
  hidden = rng.random(values.shape) < 0.5
  altered = np.where(observed & ~hidden, values, 100 * rng.normal(size=values.shape))
  np.testing.assert_array_equal(
      baselines.cross_feature(values, observed, hidden, regressors=regressors),
      baselines.cross_feature(altered.astype(np.float32), observed, hidden,
                              regressors=regressors))
  train, train_observed = related_windows(40, seed=0)
  again = baselines.fit_cross_feature(train, train_observed, max_rows=1000, max_iter=50)
  np.testing.assert_array_equal(
      baselines.cross_feature(values, observed, hidden, regressors=again),
      baselines.cross_feature(values, observed, hidden, regressors=regressors))
  with pytest.raises(ValueError, match="3 regressors for 4 features"):
    baselines.cross_feature(values, observed, hidden, regressors=regressors[:3])


def test_cross_feature_on_a_single_feature_export_falls_back_to_interpolation():
  """A heart-rate-only export (Fitbit heartrate_seconds): no other feature is ever
  observed beside HR, so there is nothing to regress on; lsm-eval crashed in
  scikit-learn (`Found array with 0 feature(s)`) before this was handled."""
  values, observed = related_windows(20, seed=5)
  observed[..., 1:] = False
  fitted = baselines.fit_cross_feature(values, observed, max_rows=500, max_iter=10)
  columns, regressor = fitted[0]
  assert columns.size == 0 and regressor is None
  assert fitted[1:] == [None, None, None]
  hidden = np.zeros_like(observed)
  hidden[:, 10:25, 0] = True
  predictions = baselines.cross_feature(values, observed, hidden, regressors=fitted)
  line = baselines.linear_interpolation(values, observed, hidden)
  np.testing.assert_array_equal(predictions[..., 0], line[..., 0])
