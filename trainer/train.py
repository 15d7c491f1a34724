"""Pre-training loop: `train_and_evaluate(config, workdir)`.

Data parallel over every device with jax.sharding (batch split over a "data"
mesh axis; parameters replicated, or sharded along their largest divisible axis
when config.shard_params). One jitted step, AdamW with global-norm clipping and
a warm-up + cosine schedule (optax), Orbax checkpoints with the Grain iterator's
state, TensorBoard scalars, and a stop with the step named on a NaN/inf loss.
With config.early_stopping_evals > 0 the run stops once that many evaluations in a
row found no lower validation loss (a resumed run reads the curve back from
workdir/metrics_valid.jsonl and counts on); the result then names the best step.
"""

from __future__ import annotations

import os
import time
from typing import Any

from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax
import tqdm

from trainer import checkpoints as checkpoints_lib
from trainer import input_pipeline
from trainer import masking
from trainer import models
from trainer import paths
from trainer import plots
from trainer import summaries


class NonFiniteLossError(FloatingPointError):
  """The loss or gradient became NaN/inf; the message names the step."""


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


def learning_rate(config: ml_collections.ConfigDict) -> float:
  """config.learning_rate, or LSM's 5e-3 at batch 4096 scaled linearly with the batch."""
  if config.learning_rate:
    return float(config.learning_rate)
  return config.base_learning_rate * config.batch_size / config.base_batch_size


def schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  steps = config.num_train_steps
  warmup = max(1, int(round(config.warmup_fraction * steps)))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=learning_rate(config), warmup_steps=warmup,
      decay_steps=max(steps, warmup + 1), end_value=0.0)


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return optax.chain(
      optax.clip_by_global_norm(config.grad_clip),
      optax.adamw(schedule(config), b1=config.b1, b2=config.b2,
                  weight_decay=config.weight_decay))


def make_mesh(batch_size: int | None = None) -> Mesh:
  """A 1-D "data" mesh over the devices.

  On a single-process CPU run it takes the most devices that divide batch_size (the
  CPU devices are cores, see cli.use_cpu_cores, so a batch of 15 on 2 cores runs on
  one); elsewhere all devices, and the Trainer refuses a batch they do not divide.
  """
  devices = jax.devices()
  if batch_size and jax.process_count() == 1 and devices[0].platform == "cpu":
    n = max(d for d in range(1, len(devices) + 1) if batch_size % d == 0)
    devices = devices[:n]
  return Mesh(np.asarray(devices), ("data",))


def param_sharding(mesh: Mesh, shard: bool):
  """Sharding rule per array: replicated, or split along the largest divisible axis."""
  n = mesh.devices.size

  def rule(x):
    if not shard or x.ndim == 0:
      return NamedSharding(mesh, P())
    axes = sorted(range(x.ndim), key=lambda a: -x.shape[a])
    for a in axes:
      if x.shape[a] % n == 0 and x.shape[a] >= n:
        spec = [None] * x.ndim
        spec[a] = "data"
        return NamedSharding(mesh, P(*spec))
    return NamedSharding(mesh, P())
  return rule


def create_state(config, model: models.MAE, tx, mesh: Mesh) -> tuple[TrainState, Any]:
  """Initialises the state directly with its sharding; returns (state, shardings)."""
  t, f = model.config.window

  def init(key):
    params = model.init(key, jnp.zeros((1, t, f)), jnp.ones((1, t, f), bool))["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  abstract = jax.eval_shape(init, jax.random.key(config.seed))
  shardings = jax.tree.map(param_sharding(mesh, config.shard_params), abstract)
  state = jax.jit(init, out_shardings=shardings)(jax.random.key(config.seed))
  return state, shardings


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def make_train_step(model: models.MAE, tx, max_tokens: int, lr_schedule, loss: str = "mse"):
  """The step at encoder size `max_tokens` (K): every window's visible tokens, at most K
  (the batch's budget bucket), the empty slots masked out of attention; `loss` is
  models.reconstruction_loss's kind (config.loss)."""

  def train_step(state: TrainState, batch):
    visible = batch["observed"] & ~batch["hidden"]

    def loss_fn(params):
      recon = model.apply({"params": params}, batch["values"], visible, max_tokens)
      mean, _, _ = models.reconstruction_loss(recon, batch["values"], batch["hidden"],
                                              batch["observed"], loss)
      return mean

    value, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": value, "grad_norm": optax.global_norm(grads),
               "learning_rate": lr_schedule(state.step)}
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def make_eval_step(model: models.MAE, loss: str = "mse"):
  """Validation: the training loss's sum and count over a batch, and the reconstruction."""

  def eval_step(params, batch):
    visible = batch["observed"] & ~batch["hidden"]
    recon = model.apply({"params": params}, batch["values"], visible)
    _, total, count = models.reconstruction_loss(recon, batch["values"], batch["hidden"],
                                                 batch["observed"], loss)
    return total, count, recon

  return eval_step


def step_flops(compiled) -> float:
  """FLOPs of one compiled step as XLA counts them (0 when the backend does not say)."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return 0.0
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", 0.0))


def maybe_initialise_distributed(config) -> None:
  """jax.distributed only when asked (config.distributed or LSM_DISTRIBUTED=1).

  Cloud TPU and SLURM are detected by JAX. Elsewhere (GPU hosts, the CPU test) set
  JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
  """
  if config.distributed or os.environ.get("LSM_DISTRIBUTED") == "1":
    kwargs = {}
    if "JAX_NUM_PROCESSES" in os.environ:
      kwargs = {"num_processes": int(os.environ["JAX_NUM_PROCESSES"]),
                "process_id": int(os.environ["JAX_PROCESS_ID"])}
    jax.distributed.initialize(**kwargs)


def evals_since_best(history: list[list[float]]) -> int:
  """Evaluations since the lowest validation loss of [[step, loss], ...] (0: the last
  one is the best), what early stopping counts."""
  best = min(range(len(history)), key=lambda i: history[i][1])
  return len(history) - 1 - best


def read_valid_history(jsonl: str, start: int) -> list[list[float]]:
  """The run's [[step, validation loss], ...] from its validation log (summaries'
  metrics_valid.jsonl) up to the checkpoint it resumes from (later evaluations belong
  to steps that will be trained again)."""
  if not start:
    return []
  return [[step, row["loss"]] for step, row in sorted(summaries.read_jsonl(jsonl).items())
          if step <= start]


def save_config(config, workdir: str) -> None:
  paths.write_text(paths.join(workdir, "config.json"), config.to_json_best_effort(indent=2))


class Trainer:
  """Holds what the loop, evaluation and the benchmark share."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.model_config = models.ModelConfig.from_config(config.model)
    self.model = models.MAE(self.model_config)
    self.loss = config.get("loss", "mse")
    self.mesh = make_mesh(config.batch_size)
    self.tx = optimizer(config)
    self.lr_schedule = schedule(config)
    self.buckets = input_pipeline.token_buckets(config)
    self.max_tokens = self.buckets[-1]
    self.state, self.state_sharding = create_state(config, self.model, self.tx, self.mesh)
    self.batch_sharding = batch_sharding(self.mesh)
    self.replicated = NamedSharding(self.mesh, P())
    if config.batch_size % self.mesh.devices.size:
      raise ValueError(f"batch_size {config.batch_size} is not divisible by "
                       f"{self.mesh.devices.size} devices")
    self.steps: dict[int, Any] = {}   # bucket -> compiled train step (lazily)
    self.flops: dict[int, float] = {}  # bucket -> FLOPs per step, over the devices
    self.eval_step = jax.jit(
        make_eval_step(self.model, self.loss),
        in_shardings=(self.state_sharding.params, self.batch_sharding),
        out_shardings=(self.replicated, self.replicated, self.batch_sharding))

  def device_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    global_batch = self.config.batch_size
    return {k: jax.make_array_from_process_local_data(
        self.batch_sharding, np.asarray(v), (global_batch,) + v.shape[1:])
            for k, v in batch.items()}

  def abstract_state(self):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                        self.state)

  def budget(self, batch) -> int:
    """The batch's encoder size: its largest "tokens" (visible tokens of a window, from
    input_pipeline.Mask) rounded up to a bucket, the same on every process; the largest
    bucket for a batch without "tokens". numpy or global jax arrays."""
    tokens = batch.get("tokens")
    if tokens is None:
      return self.buckets[-1]
    if isinstance(tokens, jax.Array):
      local = max(int(np.max(np.asarray(s.data))) for s in tokens.addressable_shards)
    else:
      local = int(np.max(tokens))
    if jax.process_count() > 1:
      local = int(np.max(multihost_utils.process_allgather(np.int32(local))))
    return masking.bucket(local, self.buckets)

  def compile(self, batch, k: int | None = None) -> float:
    """Compiles (ahead of time) the train step of bucket k (default: the batch's), once
    per bucket, and returns its FLOPs per step summed over the devices (XLA counts one
    device's partition of the program)."""
    k = self.budget(batch) if k is None else k
    if k not in self.steps:
      step = jax.jit(make_train_step(self.model, self.tx, k, self.lr_schedule, self.loss),
                     in_shardings=(self.state_sharding, self.batch_sharding),
                     out_shardings=(self.state_sharding, self.replicated), donate_argnums=0)
      self.steps[k] = step.lower(self.state, batch).compile()
      self.flops[k] = step_flops(self.steps[k]) * self.mesh.devices.size
    return self.flops[k]

  def train_step(self, state: TrainState, batch, k: int | None = None
                 ) -> tuple[TrainState, dict[str, jax.Array]]:
    """One step at bucket k (default: the batch's; compiled on first use); returns
    (state, metrics)."""
    k = self.budget(batch) if k is None else k
    self.compile(batch, k)
    return self.steps[k](state, batch)

  def evaluate(self, batches: list[dict[str, np.ndarray]]):
    """Validation MSE over the batches (exact average over positions) + first recon."""
    total = count = 0.0
    first = None
    for batch in batches:
      t, c, recon = self.eval_step(self.state.params, self.device_batch(batch))
      total += float(t)
      count += float(c)
      if first is None:
        # This process's windows: the whole batch on one host, its own slice on many.
        first = np.asarray(recon if recon.is_fully_addressable else recon.addressable_data(0))
    return total / max(count, 1.0), first


def validation_batches(config) -> list[dict[str, np.ndarray]] | None:
  """The first eval_batches batches of the valid split, fixed masks, padded to a batch.

  None (with a warning) when the split is empty: training runs, nothing is evaluated.
  """
  try:
    ds = input_pipeline.dataset(config, "valid", train=False)
  except input_pipeline.EmptySplitError as e:
    logging.warning("no validation: %s", e)
    return None
  size = config.batch_size // jax.process_count()
  n = min(len(ds), config.eval_batches)
  return [input_pipeline.pad_batch(ds[i], size) for i in range(n)]


def check_model(config: ml_collections.ConfigDict) -> None:
  """Stops before anything is written or compiled on a model or loss setting that
  cannot be used (an unknown model.prior or loss). Raises models.ModelConfigError."""
  models.ModelConfig.from_config(config.model)
  if config.get("loss", "mse") not in models.LOSSES:
    raise models.ModelConfigError(f"unknown config.loss {config.loss!r}; expected one of "
                                  f"{models.LOSSES}")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (resuming from workdir's checkpoints) and returns the final metrics."""
  maybe_initialise_distributed(config)
  if not config.data_dir:
    raise ValueError("config.data_dir is empty: pass --config.data_dir=PIPELINE_OUTPUT_DIR")
  input_pipeline.check_mask(config)
  check_model(config)
  paths.makedirs(workdir)
  lead = jax.process_index() == 0
  if lead:
    save_config(config, workdir)
  iterator = input_pipeline.train_iterator(config)  # a bad data dir fails before compiling
  trainer = Trainer(config)
  logging.info("model %s: %d parameters, %d devices, encoder sizes %s of %d tokens",
               config.size, models.count_params(trainer.model_config),
               trainer.mesh.devices.size, trainer.buckets, trainer.model_config.num_tokens)

  ckpts = checkpoints_lib.Checkpoints(workdir, config.keep_checkpoints,
                                      config.async_checkpoints)
  restored = ckpts.restore(trainer.abstract_state(),
                           restart_if_corrupt=config.restart_if_corrupt)
  start = 0
  if restored is not None:
    start, trainer.state, iterator_state = restored
    iterator.set_state(iterator_state)
    logging.info("resumed from checkpoint step %d", start)
  valid = validation_batches(config)
  writer = summaries.Writer(workdir, "train", enabled=lead)
  valid_writer = summaries.Writer(workdir, "valid", enabled=lead)
  history = read_valid_history(valid_writer.jsonl, start)
  patience = config.get("early_stopping_evals", 0)
  stopped = bool(valid and patience and history and evals_since_best(history) >= patience)
  if stopped:
    logging.info("early stopping: no better validation loss in the %d evaluations up to "
                 "step %d; not trained further", patience, start)
  batches = input_pipeline.prefetch_to_device(iterator, config.prefetch_batches,
                                              trainer.batch_sharding, config.batch_size)
  total = config.num_train_steps
  bar = tqdm.tqdm(total=total, initial=start, desc="train", unit="step",
                  disable=not (lead and config.progress_bar), dynamic_ncols=True)
  result: dict[str, Any] = {"step": start}
  window_losses, window_flops, window_tokens = [], [], []
  window_start = time.perf_counter()
  window_steps = 0
  run_flops = []
  try:
    for step in range(start + 1, total + 1):
      if stopped:
        break
      batch, iterator_state = next(batches)
      k = trainer.budget(batch)
      if k not in trainer.steps:
        compile_start = time.perf_counter()
        trainer.compile(batch, k)
        window_start += time.perf_counter() - compile_start  # compiling is not training
      window_flops.append(trainer.flops[k])
      window_tokens.append(k)
      trainer.state, metrics = trainer.train_step(trainer.state, batch, k)
      metrics = jax.device_get(metrics)
      loss = float(metrics["loss"])
      if not (np.isfinite(loss) and np.isfinite(metrics["grad_norm"])):
        ckpts.wait()
        raise NonFiniteLossError(
            f"non-finite loss at step {step} (loss {loss}, grad norm "
            f"{float(metrics['grad_norm'])}); stopped, the last good checkpoint is step "
            f"{ckpts.latest_step()} in {ckpts.directory}")
      window_losses.append(loss)
      window_steps += 1
      bar.update(1)
      bar.set_postfix(loss=f"{loss:.4f}")
      if step % config.log_every_steps == 0 or step == total:
        elapsed = time.perf_counter() - window_start
        steps_per_s = window_steps / max(elapsed, 1e-9)
        scalars = {"loss": float(np.mean(window_losses)), "step_loss": loss,
                   "learning_rate": float(metrics["learning_rate"]),
                   "grad_norm": float(metrics["grad_norm"]),
                   "windows_per_second": steps_per_s * config.batch_size,
                   "flops_per_second": steps_per_s * float(np.mean(window_flops)),
                   "encoder_tokens": float(np.mean(window_tokens))}
        writer.scalars(step, scalars)
        result.update(scalars)
        logging.info("step %d: %s", step,
                     ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
        run_flops += window_flops
        window_losses, window_flops, window_tokens, window_steps = [], [], [], 0
        window_start = time.perf_counter()
      valid_loss = None
      if valid and (step % config.eval_every_steps == 0 or step == total):
        valid_loss, recon = trainer.evaluate(valid)
        valid_writer.scalars(step, {"loss": valid_loss})
        result["valid_loss"] = valid_loss
        logging.info("step %d: validation loss %.5f", step, valid_loss)
        history.append([step, valid_loss])
        if patience and evals_since_best(history) >= patience:
          stopped = True
          logging.info("early stopping at step %d: no better validation loss in %d "
                       "evaluations (best %.5f at step %d)", step, patience,
                       *min((loss, s) for s, loss in history))
        if lead and config.plot_windows:
          plot_validation(workdir, step, valid[0], recon, config.plot_windows, valid_writer)
        window_start = time.perf_counter()  # evaluation time is not training throughput
      # With early stopping every evaluation is checkpointed, so the best step is kept.
      if (step % config.checkpoint_every_steps == 0 or step == total or stopped
          or (patience and valid_loss is not None)):
        ckpts.save(step, trainer.state, iterator_state, valid_loss)
      result["step"] = step
  finally:
    bar.close()
    writer.close()
    valid_writer.close()
    ckpts.close()
    if hasattr(iterator, "close"):
      iterator.close()
  if history:
    best_loss, best_step = min((loss, s) for s, loss in history)
    result.update(valid_history=history, best_valid_loss=best_loss, best_step=best_step,
                  stopped_early=stopped)
  result["parameters"] = models.count_params(trainer.model_config)
  result["flops_per_step"] = float(np.mean(run_flops)) if run_flops else 0.0
  return result


def plot_validation(workdir: str, step: int, batch, recon, n: int, writer) -> None:
  n = min(n, len(recon))
  fig = plots.reconstruction_figure(batch["values"][:n], batch["observed"][:n],
                                    batch["hidden"][:n], recon[:n],
                                    title=f"validation windows, step {step}")
  writer.figure(step, "reconstruction", fig)
  plots.save(fig, paths.join(workdir, "plots", f"validation_{step:07d}.png"))
