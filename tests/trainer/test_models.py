"""Model shape, parameter counts (LSM's table), patching, loss and leakage."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainer import baselines, masking, models, patching
from trainer.configs import mae


def model_config(size="nano"):
  return models.ModelConfig.from_config(mae.get_config(size).model)


@pytest.mark.parametrize("size", sorted(mae.LSM_PARAMS_M))
def test_parameter_counts_match_lsm_within_5_percent(size):
  """LSM's table counts LSM's model: without the recipe's departures (the linear
  prior's embedding, the minute head), which add 6.1% at tiny, less above it."""
  lsm = dataclasses.replace(model_config(size), prior="none", minute_head=0)
  count = models.count_params(lsm)  # abstract: nothing is allocated
  assert abs(count / 1e6 - mae.LSM_PARAMS_M[size]) <= 0.05 * mae.LSM_PARAMS_M[size]
  assert models.count_params(model_config(size)) <= 1.07 * count


def test_small_sizes_span_over_30x_up_to_tiny():
  """The scaling sweep's parameter arm (trainer/configs/scaling.py) spans pico..tiny."""
  sizes = ("pico", "nano", "micro", "mini", "tiny")
  counts = [models.count_params(model_config(s)) for s in sizes]
  assert counts == sorted(counts) and counts[-1] / counts[0] >= 30


@pytest.mark.parametrize("patch", [(10, 5), (5, 5), (10, 1), (20, 5), (30, 5), (10, 10)])
def test_patching_round_trip(patch):
  x = np.random.default_rng(0).normal(size=(2, 300, 26)).astype(np.float32)
  padded = patching.pad(x)
  assert padded.shape == (2, 300, 30) and not padded[..., :2].any() and not padded[..., -2:].any()
  tokens = patching.patchify(padded, patch)
  assert tokens.shape == (2, (300 // patch[0]) * (30 // patch[1]), patch[0] * patch[1])
  np.testing.assert_array_equal(patching.unpad(patching.unpatchify(tokens, patch, (300, 30))), x)
  # Token 1 is time patch 0, feature patch 1: padded features pw..2pw-1 of the first minutes.
  np.testing.assert_array_equal(tokens[0, 1].reshape(patch),
                                padded[0, :patch[0], patch[1]:2 * patch[1]])
  jt = patching.patchify(jnp.asarray(padded), patch)
  np.testing.assert_array_equal(np.asarray(jt), tokens)


def test_sincos_position_embeddings_are_distinct_and_bounded():
  pos = models.sincos_2d((30, 6), 64)
  assert pos.shape == (180, 64) and np.abs(pos).max() <= 1.0
  assert len(np.unique(pos.round(5), axis=0)) == 180


def test_loss_is_zero_for_a_model_that_reproduces_its_input():
  r = np.random.default_rng(0)
  values = r.normal(size=(4, 300, 26)).astype(np.float32)
  observed = r.random((4, 300, 26)) > 0.3
  hidden = np.stack([masking.random_patches(r) for _ in range(4)])
  loss, _, count = models.reconstruction_loss(jnp.asarray(values), values, hidden, observed)
  assert float(loss) == 0.0 and count == (hidden & observed).sum()
  # Errors at positions that were missing or visible do not count ...
  wrong = np.where(hidden & observed, values, values + 10.0)
  assert float(models.reconstruction_loss(wrong, values, hidden, observed)[0]) == 0.0
  # ... errors at hidden observed positions do, as a mean over those positions.
  off = np.where(hidden & observed, values + 2.0, values)
  assert float(models.reconstruction_loss(off, values, hidden, observed)[0]) == pytest.approx(4.0)
  # The MAE loss (the default config's) averages absolute errors instead.
  assert float(models.reconstruction_loss(off, values, hidden, observed, "mae")[0]) == \
      pytest.approx(2.0)
  with pytest.raises(ValueError, match="unknown loss 'huber'"):
    models.reconstruction_loss(off, values, hidden, observed, "huber")


def randomise(params, name, seed=0):
  """params with every array under `name` redrawn (a zero-initialised layer would
  hide what flows through it)."""
  key = jax.random.key(seed)
  return jax.tree_util.tree_map_with_path(
      lambda path, x: jax.random.normal(key, x.shape, x.dtype) * 0.1
      if name in jax.tree_util.keystr(path) else x, params)


@pytest.mark.parametrize("minute_head, minute_kernel", [(0, 1), (16, 1), (16, 5)])
def test_model_never_sees_hidden_or_missing_values(minute_head, minute_kernel):
  config = dataclasses.replace(model_config("nano"), minute_head=minute_head,
                               minute_kernel=minute_kernel)
  model = models.MAE(config)
  r = np.random.default_rng(1)
  values = r.normal(size=(2, 300, 26)).astype(np.float32)
  observed = r.random((2, 300, 26)) > 0.2
  hidden = np.stack([masking.sensor_imputation(r, 4), masking.interpolation(r, 45)])
  visible = observed & ~hidden
  params = randomise(jax.jit(model.init)(jax.random.key(0), values, visible), "minute_output")
  apply = jax.jit(model.apply, static_argnums=3)
  out = apply(params, values, visible, 100)
  assert out.shape == (2, 300, 26)
  changed = np.where(visible, values, values + r.normal(size=values.shape) * 100)
  np.testing.assert_array_equal(np.asarray(apply(params, changed, visible, 100)),
                                np.asarray(out))
  emb = model.apply(params, values, visible, method=models.MAE.embed)
  assert emb.shape == (2, config.hidden) and np.isfinite(np.asarray(emb)).all()


def test_bfloat16_compute_keeps_float32_parameters_and_output():
  config = mae.get_config("nano")
  config.model.dtype = "bfloat16"
  model = models.MAE(models.ModelConfig.from_config(config.model))
  values = np.random.default_rng(0).normal(size=(2, 300, 26)).astype(np.float32)
  visible = np.ones((2, 300, 26), bool)
  params = jax.jit(model.init)(jax.random.key(0), values, visible)
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
  out = jax.jit(model.apply, static_argnums=3)(params, values, visible, 36)
  assert out.dtype == jnp.float32 and np.isfinite(np.asarray(out)).all()


def test_batched_attention_equals_flax_attention_with_masked_slots():
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.normal(size=(3, 12, 4, 8)), jnp.float32) for _ in range(3))
  kept = np.ones((3, 12), bool)
  kept[0, 5:] = False   # budget slots without a visible token
  kept[1, :] = False    # a window with nothing visible: every row masked
  mask = nn.make_attention_mask(kept, kept)
  for m in (None, mask):
    np.testing.assert_allclose(models.batched_attention(q, k, v, mask=m),
                               nn.dot_product_attention(q, k, v, mask=m), rtol=1e-5, atol=1e-6)


def test_a_mixed_budget_batch_reconstructs_and_scores_like_each_window_alone():
  """A random window (36 visible tokens) and an interpolation window (all its ~170)
  in one batch at K = 180: the padding slots are masked out of attention, so each
  window's reconstruction, and the batch's loss, equal those of the windows encoded
  one at a time at their own K."""
  config = model_config("nano")
  model = models.MAE(config)
  r = np.random.default_rng(2)
  values = r.normal(size=(2, 300, 26)).astype(np.float32)
  observed = r.random((2, 300, 26)) > 0.1
  hidden = np.stack([masking.random_patches(r, 0.8), masking.interpolation(r, 30)])
  visible = observed & ~hidden
  tokens = [masking.visible_tokens(h, o) for h, o in zip(hidden, observed)]
  assert tokens[0] <= 36 < 150 < tokens[1]
  params = jax.jit(model.init)(jax.random.key(0), values, visible)
  apply = jax.jit(model.apply, static_argnums=3)
  mixed = np.asarray(apply(params, values, visible, 180))
  alone = np.concatenate([np.asarray(apply(params, values[i:i + 1], visible[i:i + 1], k))
                          for i, k in enumerate(tokens)])
  np.testing.assert_allclose(mixed, alone, atol=1e-5)
  loss = models.reconstruction_loss(mixed, values, hidden, observed)
  parts = [models.reconstruction_loss(alone[i:i + 1], values[i:i + 1], hidden[i:i + 1],
                                      observed[i:i + 1]) for i in range(2)]
  np.testing.assert_allclose(float(loss[0]), float(sum(p[1] for p in parts))
                             / float(sum(p[2] for p in parts)), rtol=1e-5)


@pytest.mark.parametrize("ratio", [0.05, 0.5, 0.8, 1.0])
def test_linear_fill_equals_the_linear_interpolation_baseline(ratio):
  r = np.random.default_rng(2)
  values = r.normal(size=(3, 300, 26)).astype(np.float32)
  observed = r.random(values.shape) > 0.1
  hidden = r.random(values.shape) < ratio
  hidden[0, :, 4] = True            # a feature with nothing visible: 0, the mean
  hidden[1, 100:160] = True         # a gap across every feature
  hidden[2, 240:] = True            # extrapolation: the last value held
  np.testing.assert_array_equal(
      np.asarray(models.linear_fill(jnp.asarray(values), jnp.asarray(observed & ~hidden))),
      baselines.linear_interpolation(values, observed, hidden))


def test_the_linear_prior_decoder_predicts_a_residual_over_linear_interpolation():
  """With its output layer zeroed the model is exactly linear interpolation; without
  the prior it is 0 everywhere (LSM's decoder)."""
  r = np.random.default_rng(3)
  values = r.normal(size=(2, 300, 26)).astype(np.float32)
  observed = r.random(values.shape) > 0.2
  hidden = np.stack([masking.interpolation(r, 45), masking.random_patches(r)])
  visible = observed & ~hidden
  for prior, expected in (("linear", baselines.linear_interpolation(values, observed, hidden)),
                          ("none", np.zeros_like(values))):
    config = dataclasses.replace(model_config("nano"), prior=prior)
    model = models.MAE(config)
    params = model.init(jax.random.key(0), values, visible)
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if "predict" in jax.tree_util.keystr(path) else x,
        params)
    np.testing.assert_allclose(np.asarray(model.apply(params, values, visible)), expected,
                               atol=1e-6)
  with pytest.raises(ValueError, match="model.prior"):
    dataclasses.replace(model_config("nano"), prior="cubic")


@pytest.mark.parametrize("kernel", [1, 5])
def test_the_minute_head_starts_as_the_decoder_and_reads_only_its_kernel(kernel):
  """Its output layer starts at zero (training starts from the decoder's prediction);
  once trained, the correction at a minute depends on the visible values of the
  `minute_kernel` minutes centred on it only (kernel 1: that minute alone)."""
  r = np.random.default_rng(4)
  values = r.normal(size=(1, 300, 26)).astype(np.float32)
  visible = r.random(values.shape) > 0.5
  with_head = models.MAE(dataclasses.replace(model_config("nano"), minute_head=16,
                                             minute_kernel=kernel))
  params = with_head.init(jax.random.key(0), values, visible)
  decoder_only = models.MAE(dataclasses.replace(model_config("nano"), minute_head=0))
  decoder_params = {"params": {k: v for k, v in params["params"].items()
                               if not k.startswith("minute_")}}
  np.testing.assert_array_equal(np.asarray(with_head.apply(params, values, visible)),
                                np.asarray(decoder_only.apply(decoder_params, values, visible)))
  params = randomise(params, "minute_output")
  reconstruction = np.asarray(decoder_only.apply(decoder_params, values, visible))
  head = lambda v: np.asarray(with_head.apply(params, jnp.asarray(reconstruction), v, visible,
                                              method=models.MAE.minute))
  changed = values.copy()
  changed[0, 100] += 3.0
  difference = np.abs(head(changed) - head(values)).max(axis=(0, 2))
  reach = np.arange(100 - kernel // 2, 100 + kernel // 2 + 1)
  assert (difference[reach] > 0).all() and not np.delete(difference, reach).any()


@pytest.mark.parametrize("field, value", [("minute_head", -1), ("minute_kernel", 0),
                                          ("minute_kernel", 4)])
def test_a_bad_minute_head_is_refused(field, value):
  with pytest.raises(ValueError, match=field):
    dataclasses.replace(model_config("nano"), **{field: value})


@pytest.mark.parametrize("override, message", [
    ({"model.prior": "cubic"}, r"unknown model.prior 'cubic'; expected one of \('none', 'linear'\)"),
    ({"loss": "huber"}, r"unknown config.loss 'huber'; expected one of \('mse', 'mae'\)"),
])
def test_a_bad_model_setting_is_refused_before_the_workdir_is_made(tmp_path, override, message):
  from trainer import cli, train  # pylint: disable=g-import-not-at-top
  config = mae.get_config("nano")
  config.data_dir = str(tmp_path / "data")
  config.update_from_flattened_dict(override)
  with pytest.raises(models.ModelConfigError, match=message):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
  assert issubclass(models.ModelConfigError, cli.USER_ERRORS)  # one line, no traceback
