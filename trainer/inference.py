"""A trained model from a workdir: reconstructions and embeddings for evaluation.

  model = inference.load("runs/tiny")              # best checkpoint by validation loss
  filled = model.reconstruct(values, observed, hidden)   # [N, T, F]
  features = model.embed(values, observed)               # [N, D] mean-pooled encoder tokens

Inputs are numpy arrays shaped like schemas.record windows ([N, 300, 26] values,
bool masks). Hidden positions are never shown to the model (see trainer/masking.py).
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from trainer import checkpoints as checkpoints_lib
from trainer import cli
from trainer import models
from trainer import paths
from trainer import train


class Model:
  """Parameters of one checkpoint plus jitted reconstruct / embed over fixed-size chunks."""

  def __init__(self, config: ml_collections.ConfigDict, params, step: int,
               chunk: int = 64):
    self.config = config
    self.step = step
    self.chunk = chunk
    self.model_config = models.ModelConfig.from_config(config.model)
    self.module = models.MAE(self.model_config)
    self.params = params

  @functools.cached_property
  def _reconstruct(self):
    return jax.jit(lambda p, v, vis: self.module.apply({"params": p}, v, vis))

  @functools.cached_property
  def _embed(self):
    return jax.jit(lambda p, v, vis: self.module.apply({"params": p}, v, vis,
                                                       method=models.MAE.embed))

  def _map(self, fn, values, visible) -> np.ndarray:
    values = np.asarray(values, np.float32)
    visible = np.asarray(visible, bool)
    if values.ndim != 3 or values.shape[1:] != self.model_config.window:
      raise ValueError(f"values must be [N, {self.model_config.window[0]}, "
                       f"{self.model_config.window[1]}], got {values.shape}")
    out = []
    for i in range(0, len(values), self.chunk):
      v, m = values[i:i + self.chunk], visible[i:i + self.chunk]
      n = len(v)
      if n < self.chunk:  # one compiled shape for every chunk
        v = np.concatenate([v, np.zeros((self.chunk - n,) + v.shape[1:], v.dtype)])
        m = np.concatenate([m, np.zeros((self.chunk - n,) + m.shape[1:], bool)])
      out.append(np.asarray(fn(self.params, v, m))[:n])
    return np.concatenate(out) if out else np.zeros((0,), np.float32)

  def reconstruct(self, values, observed, hidden) -> np.ndarray:
    """The windows with hidden positions filled by the model; other positions kept."""
    observed, hidden = np.asarray(observed, bool), np.asarray(hidden, bool)
    visible = observed & ~hidden
    recon = self._map(self._reconstruct, values, visible)
    return np.where(visible, np.asarray(values, np.float32), recon)

  def embed(self, values, observed) -> np.ndarray:
    """Mean-pooled encoder outputs over the observed tokens: [N, hidden]."""
    return self._map(self._embed, values, observed)


class WorkdirError(cli.CommandError, FileNotFoundError):
  """A directory that is not an lsm-train workdir, or one with no checkpoint: the
  commands print the message alone (cli.CommandError)."""


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The workdir's config.json; WorkdirError when it has none."""
  path = paths.join(workdir, "config.json")
  try:
    return ml_collections.ConfigDict(json.loads(paths.read_text(path)))
  except FileNotFoundError:
    raise WorkdirError(f"{path}: no config; is {workdir} an lsm-train workdir?") from None


def load(workdir: str, step: int | str = "best", chunk: int = 64) -> Model:
  """Loads a checkpoint's parameters: step "best" (by validation loss), "latest", or a number."""
  config = load_config(workdir)
  model_config = models.ModelConfig.from_config(config.model)
  module = models.MAE(model_config)
  tx = train.optimizer(config)
  t, f = model_config.window

  def init(key):
    params = module.init(key, jnp.zeros((1, t, f)), jnp.ones((1, t, f), bool))["params"]
    return train.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                            opt_state=tx.init(params))

  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          jax.eval_shape(init, jax.random.key(0)))
  ckpts = checkpoints_lib.Checkpoints(workdir, async_save=False, read_only=True)
  try:
    if step == "best":
      step = ckpts.best_step() or ckpts.latest_step()
    elif step == "latest":
      step = ckpts.latest_step()
    if step is None:
      raise WorkdirError(f"{workdir}: no checkpoint to load")
    step, state = ckpts.restore_params(abstract, int(step))
  finally:
    ckpts.close()
  return Model(config, state.params, step, chunk)
