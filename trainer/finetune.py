"""Classification on top of the LSM encoder: full fine-tuning and the supervised baseline.

One loop serves both: `train_classifier` trains the encoder plus a linear head with
softmax cross-entropy. Fine-tuning starts the encoder from a pre-trained checkpoint's
parameters; the supervised baseline starts the same architecture from a random
initialisation (LSM's "same ViT trained from scratch on the labels"). The optimiser
and its warm-up + cosine schedule are the pre-training ones (train.optimizer), read
from a small config, so the two runs differ only in where the encoder starts.

The classifier's features are the encoder's mean-pooled outputs over the observed
tokens (models.MAE.embed, the linear probe's features), standardised like the probe's
(each dimension centred and scaled by its mean and std over the training windows,
computed once with the starting encoder), so probe, fine-tune and supervised numbers
are comparable. Without it a pre-trained encoder's pooled features, which vary little
between windows (per-dimension std ~0.075 on layer-normed vectors of norm ~12), barely
moved the zero-initialised head: fine-tuning scored 0.253 on 8-class activity where
the probe on the same checkpoint scored 0.710 (benchmarks/README.md, "Discriminative
quality"). Windows are whole (nothing hidden): the encoder sees all observed tokens.

Fine-tuning from a checkpoint can decay the learning rate layer by layer
(FinetuneConfig.layer_decay, MAE's fine-tuning recipe after BEiT: the head and the
final norm at the full rate, encoder block i of L at decay^(L - i), the patch
embedding and mask token at decay^(L + 1)), so the pre-trained lower layers move
least; training from scratch always uses one rate.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from trainer import models
from trainer import train


class Classifier(nn.Module):
  """MAE encoder (the decoder is never called, so it has no parameters here) + head."""
  config: models.ModelConfig
  num_classes: int

  def setup(self):
    self.mae = models.MAE(self.config)
    self.head = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros)

  def __call__(self, values, observed, feature_mean, feature_scale):
    """Logits [B, num_classes]; feature_mean/scale [D]: the standardisation."""
    return self.head((self.mae.embed(values, observed) - feature_mean) / feature_scale)

  def features(self, values, observed):
    return self.mae.embed(values, observed)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
  """Budget of one classifier run (steps of `batch_size` windows, sampled with replacement)."""
  steps: int = 200
  batch_size: int = 32
  learning_rate: float = 3e-4
  warmup_fraction: float = 0.1
  weight_decay: float = 1e-4
  grad_clip: float = 1.0
  layer_decay: float = 1.0   # fine-tuning only; 1.0: every layer at learning_rate

  def optimizer_config(self) -> ml_collections.ConfigDict:
    """The fields train.optimizer reads, so the schedule is the pre-training one."""
    return ml_collections.ConfigDict(dict(
        num_train_steps=self.steps, warmup_fraction=self.warmup_fraction,
        learning_rate=self.learning_rate, b1=0.9, b2=0.999,
        weight_decay=self.weight_decay, grad_clip=self.grad_clip))


def init_params(model: Classifier, seed: int, pretrained: Mapping[str, Any] | None):
  """Random classifier parameters; with `pretrained` (MAE params), the encoder's are
  replaced by the checkpoint's (every encoder leaf must exist there)."""
  t, f = model.config.window
  d = model.config.hidden
  params = model.init(jax.random.key(seed), jnp.zeros((1, t, f)), jnp.ones((1, t, f), bool),
                      jnp.zeros(d), jnp.ones(d))["params"]
  params = jax.tree.map(np.asarray, params)
  if pretrained is None:
    return params

  def take(path, leaf):
    node = pretrained
    for key in path:
      name = key.key
      if name not in node:
        raise ValueError(f"pre-trained checkpoint lacks encoder parameter "
                         f"{'/'.join(k.key for k in path)}")
      node = node[name]
    if np.shape(node) != np.shape(leaf):
      raise ValueError(f"pre-trained {'/'.join(k.key for k in path)} has shape "
                       f"{np.shape(node)}, the classifier expects {np.shape(leaf)}")
    return np.asarray(node)

  mae = jax.tree_util.tree_map_with_path(take, params["mae"])
  return {**params, "mae": mae}


def layer_scales(params: Mapping[str, Any], decay: float, layers: int):
  """Per-parameter learning-rate factors of layer-wise decay: a tree like `params` of
  floats, decay ** (layers + 1 - layer id), the id 0 for the patch embedding and mask
  token, i + 1 for encoder block i, layers + 1 for the final norm and the head."""

  def scale(path, _):
    names = [k.key for k in path]
    if names[0] != "mae" or names[1] == "encoder_norm":
      layer = layers + 1
    elif names[1].startswith("encoder_"):
      layer = int(names[1].rsplit("_", 1)[1]) + 1
    else:
      layer = 0
    return np.float32(decay ** (layers + 1 - layer))
  return jax.tree_util.tree_map_with_path(scale, params)


def _pad(x: np.ndarray, size: int) -> np.ndarray:
  return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])


@functools.lru_cache(maxsize=16)
def _compiled(model_config: models.ModelConfig, num_classes: int, config: FinetuneConfig):
  """Module, optimiser, jitted train step and jitted forward, shared by every run of one
  shape and budget (seeds, few-shot draws), so each compiles once per process."""
  model = Classifier(model_config, num_classes)
  tx = train.optimizer(config.optimizer_config())

  @jax.jit
  def step(params, opt_state, v, m, y, mean, scale, rates):
    def loss_fn(p):
      logits = model.apply({"params": p}, v, m, mean, scale)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    updates = jax.tree.map(jnp.multiply, updates, rates)
    return optax.apply_updates(params, updates), opt_state, loss

  forward = jax.jit(lambda p, v, m, mean, scale: jax.nn.softmax(
      model.apply({"params": p}, v, m, mean, scale)))
  features = jax.jit(lambda p, v, m: model.apply({"params": p}, v, m,
                                                 method=Classifier.features))
  return model, tx, step, forward, features


def train_classifier(values: np.ndarray, observed: np.ndarray, labels: np.ndarray,
                     num_classes: int, model_config: models.ModelConfig, *,
                     pretrained: Mapping[str, Any] | None = None,
                     config: FinetuneConfig = FinetuneConfig(), seed: int = 0):
  """Trains encoder + head; returns a function windows -> class probabilities [N, C]."""
  labels = np.asarray(labels)
  if len(labels) == 0 or len(values) != len(labels):
    raise ValueError(f"{len(values)} windows and {len(labels)} labels to train on")
  if config.steps < 1:
    raise ValueError(f"a classifier needs at least one step, got {config.steps}")
  if not 0 < config.layer_decay <= 1:
    raise ValueError(f"layer_decay must be in (0, 1], got {config.layer_decay}")
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f"labels must be in 0..{num_classes - 1}")
  model, tx, step, forward, features = _compiled(model_config, num_classes, config)
  params = init_params(model, seed, pretrained)
  opt_state = tx.init(params)
  rates = layer_scales(params, config.layer_decay if pretrained is not None else 1.0,
                       model_config.layers)
  batch = config.batch_size

  def batched(fn, p, values_, observed_):
    out = []
    for i in range(0, len(values_), batch):
      v, m = values_[i:i + batch], observed_[i:i + batch]
      out.append(np.asarray(fn(p, _pad(v, batch), _pad(m, batch)))[:len(v)])
    return np.concatenate(out)

  start = batched(features, params, values, observed)   # the starting encoder's features
  mean, scale = start.mean(axis=0), start.std(axis=0) + 1e-6

  rng = np.random.default_rng(seed)
  for _ in range(config.steps):
    pick = rng.integers(0, len(labels), size=batch)
    params, opt_state, loss = step(params, opt_state, values[pick], observed[pick],
                                   labels[pick], mean, scale, rates)
  if not np.isfinite(float(loss)):
    raise FloatingPointError(f"classifier loss is {float(loss)} after {config.steps} steps")

  def predict(values_: np.ndarray, observed_: np.ndarray) -> np.ndarray:
    if not len(values_):
      return np.zeros((0, num_classes), np.float32)
    return batched(lambda p, v, m: forward(p, v, m, mean, scale), params, values_,
                   observed_)

  return predict
