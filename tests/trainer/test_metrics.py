import numpy as np
import pytest

from trainer import baselines, metrics

STATS = {"a": {"mean": 5.0, "std": 2.0, "count": 10},
         "b": {"mean": 100.0, "std": 10.0, "count": 10}}


def small_task(seed=0):
  rng = np.random.default_rng(seed)
  values = rng.normal(size=(4, 30, 2)).astype(np.float32)
  observed = rng.random(values.shape) > 0.1
  values[~observed] = 0
  hidden = np.zeros_like(observed)
  hidden[:, 12:18] = True
  return values, observed, hidden


def test_a_perfect_predictor_scores_zero():
  values, observed, hidden = small_task()
  result = metrics.generative_metrics(values.copy(), values, observed, hidden, STATS,
                                      ("a", "b"))
  assert result["mae"] == 0 and result["mse"] == 0
  assert result["count"] == int((observed & hidden).sum())
  assert all(f["mae"] == 0 and f["mse"] == 0 for f in result["per_feature"].values())


def test_errors_cover_only_hidden_observed_positions():
  targets = np.zeros((1, 4, 2), dtype=np.float32)
  predictions = np.array([[[1, 99], [-2, 99], [99, 3], [99, 99]]], dtype=np.float32)
  observed = np.array([[[1, 1], [1, 1], [0, 1], [1, 1]]], dtype=bool)
  hidden = np.array([[[1, 0], [1, 0], [1, 1], [0, 0]]], dtype=bool)
  # scored: (t0,a)=1, (t1,a)=-2, (t2,b)=3; (t2,a) was hidden but never observed.
  result = metrics.generative_metrics(predictions, targets, observed, hidden, STATS,
                                      ("a", "b"))
  assert result["mae"] == pytest.approx(2.0)
  assert result["mse"] == pytest.approx(14 / 3)
  assert result["count"] == 3
  # Physical units: errors scale by std (a: 2, b: 10); the mean cancels.
  assert result["per_feature"]["a"] == {"mae": pytest.approx(3.0),
                                        "mse": pytest.approx((4 + 16) / 2), "count": 2}
  assert result["per_feature"]["b"] == {"mae": pytest.approx(30.0),
                                        "mse": pytest.approx(900.0), "count": 1}


def test_unscored_features_and_empty_tasks():
  targets = np.zeros((1, 3, 2), dtype=np.float32)
  observed = np.ones_like(targets, dtype=bool)
  hidden = np.zeros_like(observed)
  hidden[0, 1, 0] = True
  result = metrics.generative_metrics(targets + 1, targets, observed, hidden, STATS,
                                      ("a", "b"))
  assert result["per_feature"]["b"] == {"mae": None, "mse": None, "count": 0}
  with pytest.raises(ValueError, match="no scored positions"):
    metrics.generative_metrics(targets, targets, observed, np.zeros_like(hidden))
  unseen = {"a": STATS["a"], "b": {"mean": 0.0, "std": 0.0, "count": 0}}
  errors = metrics.per_feature_errors(targets + 1, targets, observed, unseen, ("a", "b"))
  assert errors["a"]["mae"] == pytest.approx(2.0)
  assert errors["b"]["mae"] is None and errors["b"]["count"] == 3
  assert "training std" in errors["b"]["unscaled"]
  with pytest.raises(ValueError, match=r"lacks features \['b'\]"):
    metrics.per_feature_errors(targets, targets, hidden, {"a": STATS["a"]}, ("a", "b"))
  with pytest.raises(ValueError, match="non-finite"):
    metrics.generative_metrics(targets + np.nan, targets, observed, hidden)


def test_every_method_receives_identical_masks_and_no_answers():
  values, observed, hidden = small_task()
  seen = {}

  def spy(name):
    def method(inputs, observed_in, hidden_in):
      seen[name] = (inputs.copy(), observed_in.copy(), hidden_in.copy())
      return baselines.mean_fill(inputs, observed_in, hidden_in)
    return method

  results = metrics.score_methods({"first": spy("first"), "second": spy("second"),
                                   "third": spy("third")}, values, observed, hidden)
  reference = seen["first"]
  for name in ("second", "third"):
    for got, want in zip(seen[name], reference):
      np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(reference[1], observed)
  np.testing.assert_array_equal(reference[2], hidden)
  assert not reference[0][hidden].any()  # the answers were zeroed before any method ran
  assert results["first"] == results["second"] == results["third"]


def test_a_method_cannot_alter_the_masks_for_the_next_one():
  values, observed, hidden = small_task()

  def vandal(inputs, observed_in, hidden_in):
    hidden_in[:] = False
    return inputs

  with pytest.raises(ValueError, match="read-only"):
    metrics.score_methods({"vandal": vandal}, values, observed, hidden)
  with pytest.raises(ValueError, match="'short' returned shape"):
    metrics.score_methods({"short": lambda v, o, h: v[:1]}, values, observed, hidden)


def test_harness_scores_baselines_like_a_hand_computation():
  values = np.array([[[1.0], [2.0], [3.0], [10.0]]], dtype=np.float32)
  observed = np.ones_like(values, dtype=bool)
  hidden = np.zeros_like(observed)
  hidden[0, 1:3] = True
  results = metrics.score_methods(
      {k: baselines.BASELINES[k] for k in ("mean_fill", "linear_interpolation", "nearest")},
      values, observed, hidden)
  # mean fill predicts 5.5 for targets 2 and 3; the line from 1 to 10 predicts 4 and 7;
  # nearest predicts 1 (t=1) and 10 (t=2).
  assert results["mean_fill"]["mae"] == pytest.approx((3.5 + 2.5) / 2)
  assert results["linear_interpolation"]["mae"] == pytest.approx((2 + 4) / 2)
  assert results["nearest"]["mse"] == pytest.approx((1 + 49) / 2)


def test_score_tasks_builds_the_generative_section():
  values, observed, _ = small_task()
  gap = np.zeros_like(observed)
  gap[:, 10:15] = True
  end = np.zeros_like(observed)
  end[:, -5:] = True
  methods = {k: baselines.BASELINES[k] for k in ("mean_fill", "nearest")}
  section = metrics.score_tasks(methods, values, observed,
                                {"interpolation_5m": gap, "extrapolation_5m": end},
                                STATS, ("a", "b"))
  assert list(section) == ["interpolation_5m", "extrapolation_5m"]
  assert section["extrapolation_5m"] == metrics.score_methods(methods, values, observed,
                                                              end, STATS, ("a", "b"))
  assert section["interpolation_5m"]["nearest"]["count"] == int((gap & observed).sum())


def test_relative_improvement():
  gain = metrics.relative_improvement(0.8, {"mice": 1.0, "nearest": 1.25, "bad": None})
  assert gain == {"best_baseline": "mice", "best_value": 1.0, "model_value": 0.8,
                  "relative_improvement": pytest.approx(0.2)}
  gain = metrics.relative_improvement(0.9, {"supervised": 0.6, "other": 0.75},
                                      higher_is_better=True)
  assert gain["best_baseline"] == "other"
  assert gain["relative_improvement"] == pytest.approx(0.2)
  with pytest.raises(ValueError, match="no baseline"):
    metrics.relative_improvement(1.0, {"x": float("nan")})


def test_classification_metrics_hand_case():
  labels = np.array([0, 1, 2, 2])
  scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.1, 0.6, 0.3]])
  result = metrics.classification_metrics(labels, scores, 3)
  assert result["accuracy"] == pytest.approx(0.75)
  # F1 per class: 1, 2/3 (precision 1/2, recall 1), 2/3 (precision 1, recall 1/2).
  assert result["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
  # AP: class 0 and 1 ranked first -> 1; class 2: ranks 1 and 2 of its scores -> 1.
  assert result["map"] == pytest.approx(1.0)
  # Example 3 now outranks class 1's only example (AP 1/2) and is class 2's last-ranked
  # of four scores (precision 1 at rank 1, 2/4 at rank 4: AP 3/4).
  scores[3] = [0.1, 0.8, 0.05]
  assert metrics.classification_metrics(labels, scores, 3)["map"] == pytest.approx(
      (1 + 1 / 2 + 3 / 4) / 3)


def test_binary_classification_accepts_positive_scores():
  labels = np.array([0, 0, 1, 1])
  positive = np.array([0.1, 0.6, 0.4, 0.9])
  result = metrics.classification_metrics(labels, positive, 2)
  assert result["accuracy"] == pytest.approx(0.5)  # argmax of (-s, s): 0.6 -> 1, 0.4 -> 1
  assert result["map"] == pytest.approx((1 + 2 / 3) / 2)
  with pytest.raises(ValueError, match="outside 0..1"):
    metrics.classification_metrics(np.array([0, -1]), np.zeros(2), 2)


def test_mean_and_spread():
  summary = metrics.mean_and_spread([{"accuracy": 0.5, "map": 1.0},
                                     {"accuracy": 0.7, "map": 1.0}])
  assert summary["accuracy"] == pytest.approx(0.6)
  assert summary["accuracy_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
  assert summary["map_std"] == 0 and summary["runs"] == 2
  assert metrics.mean_and_spread([{"accuracy": 0.5}])["accuracy_std"] == 0
