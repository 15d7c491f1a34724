"""The LSM masked autoencoder: a ViT over 10-minute x 5-feature patches, in Flax.

The encoder sees only visible tokens (`max_tokens` slots, visible first; slots
without a visible token are masked out of attention, so one batch can hold windows
with different numbers of visible tokens: trainer/masking.py's per-strategy budget), the
lighter decoder sees every token (encoder outputs scattered back, a learned mask
token elsewhere) and predicts every patch. See trainer/masking.py for how a
[T, F] hidden mask maps to tokens; the model never receives a hidden value.

With `prior="linear"` (the default recipe's departure from LSM) the decoder also
receives, per token, the straight line in time between the visible values either side
of each gap (linear_fill: the linear-interpolation baseline, computed from visible
values only) and predicts the residual over it: the model starts where the strongest
classical baseline on short gaps ends and learns what the line misses
(benchmarks/README.md, "Generative quality"). With `minute_head` > 0 (the default
recipe's second departure) a small MLP then corrects each minute's reconstruction from
the features visible at that minute and, with `minute_kernel` > 1, the minutes around
it (MAE.minute).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from schemas.constants import NUM_FEATURES, WINDOW_MINUTES
from trainer import patching


PRIORS = ("none", "linear")
LOSSES = ("mse", "mae")


class ModelConfigError(ValueError):
  """A config.model or config.loss setting the model cannot be built or trained with."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  hidden: int
  layers: int
  mlp: int
  heads: int
  decoder_hidden: int
  decoder_layers: int
  decoder_heads: int
  patch: tuple[int, int] = (10, 5)
  window: tuple[int, int] = (WINDOW_MINUTES, NUM_FEATURES)
  dtype: Any = jnp.float32  # compute dtype; parameters stay float32
  attention: str = "batched"  # "batched" (fast on CPU) or "flax" (the reference)
  prior: str = "none"  # PRIORS: "none" (LSM's decoder) or "linear" (residual over linear_fill)
  minute_head: int = 0  # > 0: width of the per-minute cross-feature head (0 = LSM's decoder)
  minute_kernel: int = 1  # minutes the head's first layer reads around each minute (odd)

  def __post_init__(self):
    if self.prior not in PRIORS:
      raise ModelConfigError(f"unknown model.prior {self.prior!r}; expected one of {PRIORS}")
    if self.minute_head < 0:
      raise ModelConfigError(f"model.minute_head must be >= 0 (0 = off), got {self.minute_head}")
    if self.minute_kernel < 1 or self.minute_kernel % 2 == 0:
      raise ModelConfigError(
          f"model.minute_kernel must be an odd number of minutes >= 1, got {self.minute_kernel}")

  @classmethod
  def from_config(cls, model: Any, window: Sequence[int] | None = None) -> ModelConfig:
    """Builds from the `config.model` ConfigDict (dtype given by name, e.g. 'bfloat16')."""
    return cls(hidden=model.hidden, layers=model.layers, mlp=model.mlp, heads=model.heads,
               decoder_hidden=model.decoder_hidden, decoder_layers=model.decoder_layers,
               decoder_heads=model.decoder_heads, patch=tuple(model.patch),
               window=tuple(window or (WINDOW_MINUTES, NUM_FEATURES)),
               dtype=jnp.dtype(model.get("dtype", "float32")),
               attention=model.get("attention", "batched"),
               prior=model.get("prior", "none"),
               minute_head=model.get("minute_head", 0),
               minute_kernel=model.get("minute_kernel", 1))

  @property
  def grid(self) -> tuple[int, int]:
    return patching.grid(self.window, self.patch)

  @property
  def num_tokens(self) -> int:
    nt, nf = self.grid
    return nt * nf


def sincos_2d(grid: Sequence[int], dim: int) -> np.ndarray:
  """Fixed 2-D sine-cosine position embeddings [nt * nf, dim] (MAE's recipe).

  Half of the channels encode the time patch index, half the feature patch index,
  so the model knows both when a patch is and which sensors it covers.
  """
  if dim % 4:
    raise ValueError(f"2-D sin-cos embeddings need a width divisible by 4, got {dim}")
  nt, nf = grid
  omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))

  def axis(pos):
    out = pos.reshape(-1)[:, None] * omega[None]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

  t, f = np.meshgrid(np.arange(nt, dtype=np.float64), np.arange(nf, dtype=np.float64),
                     indexing="ij")
  return np.concatenate([axis(t), axis(f)], axis=1).astype(np.float32)


def batched_attention(query, key, value, mask=None, dtype=jnp.float32):
  """Flax's `nn.dot_product_attention` (no dropout) with heads moved next to the batch.

  query, key, value: [B, L, H, D]; mask: bool, broadcastable to [B, H, Lq, Lk].
  Returns [B, Lq, H, D]. The same arithmetic in the same order as Flax's (query
  scaled by 1/sqrt(D), masked scores set to the dtype's minimum, softmax), but as
  batched matmuls over [B, H] with contracting dimensions last: XLA's CPU backend
  ran Flax's `...hqk,...khd->...qhd` einsum with a transposed output layout at ~10
  GFLOP/s, a third of the tiny model's step (benchmarks/README.md, "Trainer").
  """
  q, k, v = (x.transpose(0, 2, 1, 3) for x in (query, key, value))  # [B, H, L, D]
  q = q / jnp.sqrt(q.shape[-1]).astype(dtype)
  scores = jnp.matmul(q, k.transpose(0, 1, 3, 2))
  if mask is not None:
    scores = jnp.where(mask, scores, jnp.finfo(dtype).min)
  weights = jax.nn.softmax(scores).astype(dtype)
  return jnp.matmul(weights, v).transpose(0, 2, 1, 3)


ATTENTION = {"batched": batched_attention, "flax": nn.dot_product_attention}


def linear_fill(values, visible):
  """Straight line in time between the visible values either side of each gap.

  values float [B, T, F], visible bool [B, T, F] -> float32 [B, T, F]. Before the
  first and after the last visible value the nearest one is held; a feature with no
  visible value in the window is 0 (the training mean in normalised units). The same
  numbers as trainer/baselines.py's linear_interpolation (a test holds them equal), in
  jax so it runs inside the jitted step; reads values only where visible.
  """
  t = values.shape[1]
  x = jnp.where(visible, values, 0.0).astype(jnp.float32)
  minutes = jnp.arange(t)[None, :, None]
  previous = jax.lax.cummax(jnp.where(visible, minutes, -1), axis=1)
  following = jax.lax.cummin(jnp.where(visible, minutes, t), axis=1, reverse=True)
  before = jnp.take_along_axis(x, jnp.clip(previous, 0, t - 1), axis=1)
  after = jnp.take_along_axis(x, jnp.clip(following, 0, t - 1), axis=1)
  has_previous, has_following = previous >= 0, following < t
  span = jnp.maximum(following - previous, 1)
  line = before + (after - before) * ((minutes - previous) / span).astype(jnp.float32)
  held = jnp.where(has_previous, before, jnp.where(has_following, after, 0.0))
  return jnp.where(has_previous & has_following, line, held)


class Block(nn.Module):
  """Pre-norm transformer block."""
  heads: int
  mlp: int
  dtype: Any
  attention: str = "batched"

  @nn.compact
  def __call__(self, x, mask=None):
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.MultiHeadDotProductAttention(num_heads=self.heads, dtype=self.dtype,
                                        attention_fn=ATTENTION[self.attention])(
        y, y, mask=mask)
    x = x + y
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.Dense(self.mlp, dtype=self.dtype)(y)
    y = nn.gelu(y)
    y = nn.Dense(x.shape[-1], dtype=self.dtype)(y)
    return x + y


class MAE(nn.Module):
  config: ModelConfig

  def setup(self):
    c = self.config
    self.embed_patch = nn.Dense(c.hidden, dtype=c.dtype, name="patch_embedding")
    self.encoder = [Block(c.heads, c.mlp, c.dtype, c.attention, name=f"encoder_{i}")
                    for i in range(c.layers)]
    self.encoder_norm = nn.LayerNorm(dtype=c.dtype)
    self.decoder_embed = nn.Dense(c.decoder_hidden, dtype=c.dtype)
    self.mask_token = self.param("mask_token", nn.initializers.normal(0.02),
                                 (c.decoder_hidden,))
    self.decoder = [Block(c.decoder_heads, 4 * c.decoder_hidden, c.dtype, c.attention,
                          name=f"decoder_{i}")
                    for i in range(c.decoder_layers)]
    self.decoder_norm = nn.LayerNorm(dtype=c.dtype)
    self.predict = nn.Dense(c.patch[0] * c.patch[1], dtype=c.dtype)
    if c.prior == "linear":
      self.prior_embed = nn.Dense(c.decoder_hidden, dtype=c.dtype, name="prior_embedding")
    if c.minute_head:
      # The first layer is a convolution in time over minute_kernel minutes (1: the
      # minute alone); zero padding at the window's ends reads as "not visible".
      self.minute_hidden = [
          nn.Conv(c.minute_head, (c.minute_kernel,), padding="SAME", dtype=c.dtype,
                  name="minute_hidden_0"),
          nn.Dense(c.minute_head, dtype=c.dtype, name="minute_hidden_1")]
      self.minute_output = nn.Dense(c.window[1], dtype=c.dtype, name="minute_output",
                                    kernel_init=nn.initializers.zeros)

  def tokens(self, values, visible):
    """[B, T, F] values and visible mask -> [B, N, 2 * ph * pw] inputs, [B, N] token visible.

    Hidden and missing values are zeroed here, so nothing hidden reaches the model.
    """
    v = patching.pad(visible)
    x = patching.pad(jnp.where(visible, values, 0.0))
    v_tok = patching.patchify(v, self.config.patch)
    x_tok = patching.patchify(x, self.config.patch)
    inputs = jnp.concatenate([x_tok, v_tok.astype(x_tok.dtype)], axis=-1)
    return inputs, v_tok.any(axis=-1)

  def encode(self, values, visible, max_tokens: int | None = None):
    """Encodes the visible tokens.

    Returns latent [B, K, D], their token indices [B, K] and which of the K slots
    hold a visible token [B, K] (K = max_tokens, all tokens by default).
    """
    c = self.config
    inputs, token_visible = self.tokens(values, visible)
    k = c.num_tokens if max_tokens is None else min(int(max_tokens), c.num_tokens)
    # Stable sort puts visible tokens first in their original order.
    index = jnp.argsort(~token_visible, axis=-1, stable=True)[:, :k]
    kept = jnp.take_along_axis(token_visible, index, axis=-1)
    x = jnp.take_along_axis(inputs, index[..., None], axis=1)
    pos = jnp.asarray(sincos_2d(c.grid, c.hidden))
    x = self.embed_patch(x.astype(c.dtype)) + pos[index].astype(c.dtype)
    attn_mask = nn.make_attention_mask(kept, kept)
    for block in self.encoder:
      x = block(x, attn_mask)
    return self.encoder_norm(x), index, kept

  def decode(self, latent, index, kept, prior=None):
    """Per-position reconstruction [B, T, F] from the encoder outputs.

    prior: None, or float32 [B, T, F] (linear_fill of the visible values) that every
    decoder token also embeds and the prediction is a residual over.
    """
    c = self.config
    b = latent.shape[0]
    y = self.decoder_embed(latent)
    mask_token = self.mask_token.astype(c.dtype)
    y = jnp.where(kept[..., None], y, mask_token)
    full = jnp.broadcast_to(mask_token, (b, c.num_tokens, c.decoder_hidden))
    full = full.at[jnp.arange(b)[:, None], index].set(y)
    full = full + jnp.asarray(sincos_2d(c.grid, c.decoder_hidden)).astype(c.dtype)
    if prior is not None:
      prior = patching.patchify(patching.pad(prior), c.patch)
      full = full + self.prior_embed(prior.astype(c.dtype))
    for block in self.decoder:
      full = block(full)
    patches = self.predict(self.decoder_norm(full)).astype(jnp.float32)
    if prior is not None:
      patches = patches + prior
    padded = patching.unpatchify(patches, c.patch,
                                 (c.window[0], patching.padded_features(c.window[1])))
    return patching.unpad(padded)

  def minute(self, reconstruction, values, visible):
    """The per-minute cross-feature head: a residual over the decoder's reconstruction.

    A decoder token predicts 10 minutes x 5 features from one vector, so what the
    features visible at a minute say about the hidden ones at that same minute (the
    cross-feature baseline's whole signal) and the minute-scale detail next to a gap's
    edges reach the prediction only through the patch tokens. This MLP (two hidden
    layers, the first a convolution over `minute_kernel` minutes centred on each
    minute, so 1 reads the minute alone) sees the reconstruction of all features, the
    visible values (0 elsewhere) and which are visible, and adds a correction; its
    output layer starts at zero, so training starts from the decoder. reconstruction,
    values float [B, T, F], visible bool [B, T, F] -> float32 [B, T, F].
    """
    x = jnp.where(visible, values, 0.0)
    h = jnp.concatenate([reconstruction, x, visible.astype(jnp.float32)], axis=-1)
    h = h.astype(self.config.dtype)
    for layer in self.minute_hidden:
      h = nn.gelu(layer(h))
    return reconstruction + self.minute_output(h).astype(jnp.float32)

  def __call__(self, values, visible, max_tokens: int | None = None):
    prior = linear_fill(values, visible) if self.config.prior == "linear" else None
    reconstruction = self.decode(*self.encode(values, visible, max_tokens), prior)
    if self.config.minute_head:
      reconstruction = self.minute(reconstruction, values, visible)
    return reconstruction

  def embed(self, values, visible):
    """Mean over the visible tokens' encoder outputs: [B, D] (linear-probe features)."""
    latent, _, kept = self.encode(values, visible)
    w = kept[..., None].astype(jnp.float32)
    return (latent.astype(jnp.float32) * w).sum(1) / jnp.maximum(w.sum(1), 1.0)


def reconstruction_loss(reconstruction, values, hidden, observed, kind: str = "mse"):
  """MSE (LSM's) or MAE over positions hidden by the strategy and observed in the raw data.

  kind: "mse" or "mae" (config.loss; the evaluation's headline metric is MAE, whose
  minimiser is the conditional median: on zero-inflated features such as steps the
  MSE's conditional mean costs MAE). Returns (mean, sum of errors, count) so callers
  can average over hosts or batches exactly. Raises ModelConfigError on another kind.
  """
  if kind not in LOSSES:
    raise ModelConfigError(f"unknown loss {kind!r}; expected one of {LOSSES}")
  w = (hidden & observed).astype(jnp.float32)
  error = reconstruction.astype(jnp.float32) - values
  per_position = (jnp.square(error) if kind == "mse" else jnp.abs(error)) * w
  total, count = per_position.sum(), w.sum()
  return total / jnp.maximum(count, 1.0), total, count


def count_params(config: ModelConfig) -> int:
  """Parameter count without allocating anything (jax.eval_shape)."""
  model = MAE(config)
  t, f = config.window
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, t, f)), jnp.ones((1, t, f), bool)))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
