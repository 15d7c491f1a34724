"""Invariants of each masking strategy (the API evaluation builds on)."""

import numpy as np
import pytest

from trainer import masking, patching

SHAPE = (300, 26)


def rng(seed=0):
  return np.random.default_rng(seed)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.8, 1.0])
def test_random_patches_hides_the_ratio_of_whole_tokens(ratio):
  hidden = masking.random_patches(rng(), ratio=ratio)
  assert hidden.shape == SHAPE and hidden.dtype == bool
  tokens = patching.patchify(patching.pad(hidden), (10, 5))
  valid = patching.patchify(patching.pad(np.ones(SHAPE, bool)), (10, 5))
  # Every token is hidden on all of its valid positions or on none of them.
  any_hidden, all_hidden = tokens.any(-1), (tokens | ~valid).all(-1)
  assert np.array_equal(any_hidden, all_hidden)
  assert any_hidden.sum() == round(ratio * 180)


def test_random_patches_other_patch_shape_and_seeds_differ():
  a = masking.random_patches(rng(1), patch=(20, 5))
  b = masking.random_patches(rng(2), patch=(20, 5))
  assert patching.token_any(a, (20, 5)).sum() == round(0.8 * 90)
  assert not np.array_equal(a, b)
  with pytest.raises(ValueError, match="does not tile"):
    masking.random_patches(rng(), patch=(7, 5))


@pytest.mark.parametrize("gap", [10, 30, 60, 120])
def test_interpolation_is_one_contiguous_inner_block_over_all_features(gap):
  for seed in range(20):
    hidden = masking.interpolation(rng(seed), gap_minutes=gap)
    rows = hidden.any(axis=1)
    assert np.array_equal(rows, hidden.all(axis=1))  # all features in a hidden minute
    idx = np.flatnonzero(rows)
    assert len(idx) == gap and np.all(np.diff(idx) == 1)
    assert idx[0] > 0 and idx[-1] < SHAPE[0] - 1  # strictly inside
  with pytest.raises(ValueError):
    masking.interpolation(rng(), gap_minutes=299)


def test_extrapolation_is_the_last_block():
  hidden = masking.extrapolation(60)
  assert hidden[-60:].all() and not hidden[:-60].any()
  assert np.array_equal(masking.make("extrapolation", rng(), gap_minutes=60), hidden)


def test_sensor_imputation_hides_chosen_features_over_a_span():
  hidden = masking.sensor_imputation(rng(), num_features=6)
  cols = hidden.any(axis=0)
  assert cols.sum() == 6 and hidden[:, cols].all() and not hidden[:, ~cols].any()
  spanned = masking.sensor_imputation(rng(), num_features=2, span_minutes=30)
  rows = np.flatnonzero(spanned.any(axis=1))
  assert len(rows) == 30 and np.all(np.diff(rows) == 1) and spanned.any(axis=0).sum() == 2
  fixed = masking.sensor_imputation(rng(), features=[0, 14])
  assert np.flatnonzero(fixed.any(axis=0)).tolist() == [0, 14]


def test_make_dispatches_and_rejects_unknown():
  a = masking.make("random", rng(3), ratio=0.5, gap_minutes=10)  # extra kwargs ignored
  assert np.array_equal(a, masking.random_patches(rng(3), ratio=0.5))
  with pytest.raises(ValueError, match="unknown masking strategy"):
    masking.make("nope", rng())


def test_mixture_follows_weights():
  only = masking.make("mixture", rng(), weights="extrapolation:1", gap_minutes=30)
  assert np.array_equal(only, masking.extrapolation(30))
  draws = [masking.mixture(rng(s), {"random": 1.0, "extrapolation": 1.0}, gap_minutes=30)
           for s in range(200)]
  share = np.mean([np.array_equal(d, masking.extrapolation(30)) for d in draws])
  assert 0.35 < share < 0.65
  with pytest.raises(ValueError, match="mixture weights"):
    masking.parse_weights("random:1,bogus:2")


def test_loss_positions_are_hidden_and_observed_only():
  r = rng()
  observed = r.random(SHAPE) > 0.3
  hidden = masking.random_patches(r)
  w = masking.loss_weights(hidden, observed)
  assert not (w & ~observed).any() and not (w & ~hidden).any()
  assert w.sum() == (hidden & observed).sum()
  assert not (masking.visible(hidden, observed) & (hidden | ~observed)).any()


def test_limit_visible_tokens_keeps_budget_and_only_grows_hidden():
  r = rng()
  observed = r.random(SHAPE) > 0.2
  hidden = masking.interpolation(r, 60)
  limited = masking.limit_visible_tokens(r, hidden, observed, 36)
  assert (limited | ~hidden).all()  # nothing hidden becomes visible
  assert patching.token_any(masking.visible(limited, observed), (10, 5)).sum() == 36
  few = masking.random_patches(r, ratio=0.9)
  assert np.array_equal(masking.limit_visible_tokens(r, few, observed, 36), few)


def test_encoder_budget_follows_the_strategy():
  """AIM-style: random keeps LSM's 36 tokens, the block strategies every visible token
  (or the cap); without adaptive budgets every strategy gets 36."""
  assert masking.encoder_budget("random", 36) == 36
  for name in ("interpolation", "extrapolation", "sensor_imputation"):
    assert masking.encoder_budget(name, 36) is None
    assert masking.encoder_budget(name, 36, max_tokens=120) == 120
    assert masking.encoder_budget(name, 36, adaptive=False) == 36


@pytest.mark.parametrize("tokens, want", [(1, 36), (36, 36), (37, 72), (144, 144),
                                          (150, 180), (180, 180)])
def test_bucket_rounds_up(tokens, want):
  assert masking.bucket(tokens, (36, 72, 108, 144, 180)) == want


def test_bucket_refuses_more_tokens_than_the_largest():
  with pytest.raises(ValueError, match="181 encoder tokens exceed the largest bucket 180"):
    masking.bucket(181, (36, 180))


def test_visible_tokens_counts_tokens_with_a_visible_position():
  observed = np.ones(SHAPE, bool)
  assert masking.visible_tokens(np.zeros(SHAPE, bool), observed) == 180
  gap = masking.interpolation(rng(), gap_minutes=30)
  # 2 or 3 whole 10-minute rows hidden; a partly hidden row stays visible
  assert masking.visible_tokens(gap, observed) in (180 - 12, 180 - 18)


def test_gap_and_span_lengths_are_drawn_between_the_minimum_and_the_maximum():
  interp = {int(masking.interpolation(rng(s), 60, min_gap_minutes=10).all(1).sum())
            for s in range(60)}
  extrap = {int(masking.extrapolation(60, rng=rng(s), min_gap_minutes=10).all(1).sum())
            for s in range(60)}
  spans = {int(masking.sensor_imputation(rng(s), 2, min_span_minutes=60).any(1).sum())
           for s in range(60)}
  for lengths, lo, hi in ((interp, 10, 60), (extrap, 10, 60), (spans, 60, 300)):
    assert min(lengths) >= lo and max(lengths) <= hi and len(lengths) > 10
  assert int(masking.extrapolation(60).all(1).sum()) == 60  # fixed without a minimum


def test_choose_draws_only_the_weighted_names_in_their_proportions():
  names = [masking.choose(rng(s), "random:3,interpolation:1,extrapolation:0")
           for s in range(400)]
  assert set(names) == {"random", "interpolation"}
  assert 0.65 < names.count("random") / 400 < 0.85


@pytest.mark.parametrize("override, message", [
    ({"mask.ratio": 1.5}, r"mask ratio must be in \[0, 1\]"),
    ({"mask.min_gap_minutes": 999}, "minimum length 999 minutes exceeds the longest, 60"),
    ({"mask.weights": "rand:1"}, r"unknown strategy \['rand'\]"),
    ({"mask.weights": "random:0,interpolation:0"}, "positive sum"),
    ({"mask.weights": "random:abc"}, "expected 'name:weight,...'"),
])
def test_a_bad_mask_setting_is_refused_before_training(override, message):
  """Found by a review: mask.ratio=1.5 trained and checkpointed until the first random
  batch, and min_gap_minutes above gap_minutes was silently ignored."""
  from trainer import input_pipeline
  from trainer.configs import mae
  config = mae.get_config("nano")
  config.update_from_flattened_dict(override)
  with pytest.raises(masking.MaskConfigError, match=message):
    input_pipeline.check_mask(config)
  input_pipeline.check_mask(mae.get_config("nano"))  # the default draws every strategy
