"""Grain input pipeline: ArrayRecord shards from a pipeline output -> masked batches.

MapDataset over the split's shards (manifest.json) -> global shuffle with the seed,
a new order every epoch -> decode (schemas.record; a bad record names its shard and
index) -> augmentation and masking as
Grain RandomMap transforms (seeded per element, so the stream is a pure function of
the seed and the position: that is what makes resume exact) -> this process's slice
(jax.process_index / process_count, taken last, so that the global batches and
their masks are the same whatever the number of hosts) -> batches -> optional
worker processes (mp_prefetch) -> device prefetch. The iterator's state goes into
every checkpoint through grain's Orbax handler.
"""

from __future__ import annotations

import collections
import json
from typing import Any, Callable, Iterator, Sequence

import grain
import jax
import ml_collections
import numpy as np

from schemas import manifest as manifest_lib
from schemas import record as record_lib
from schemas.constants import NUM_FEATURES, WINDOW_MINUTES
from trainer import masking, patching

WINDOW = (WINDOW_MINUTES, NUM_FEATURES)


class EmptySplitError(manifest_lib.ManifestError):
  """The manifest lists no records for a split (e.g. a cohort too small for a valid split)."""


class ShardSource:
  """The records of a list of ArrayRecord shards as one random-access source (Grain's
  RandomAccessDataSource protocol), each decoded with schemas.record.

  A record that cannot be read (ArrayRecord's "chunk data hash mismatch", a truncated
  shard) or decoded (schemas.record's checksum, magic, length), or whose window is not
  `window` [T, F] (None: any), raises RecordError naming the shard and the record's
  index in it; a shard whose record count differs from the manifest's, ManifestError.
  """

  def __init__(self, shards: Sequence[tuple[str, int]],
               window: Sequence[int] | None = WINDOW):
    self.paths = [path for path, _ in shards]
    self.window = None if window is None else tuple(window)
    self.sources = []
    for path, n in shards:
      try:
        source = grain.sources.ArrayRecordDataSource([path])
      except (RuntimeError, OSError) as e:
        raise record_lib.RecordError(f"{path}: not a readable ArrayRecord shard: "
                                     f"{_first_line(e)}") from None
      if len(source) != n:
        raise manifest_lib.ManifestError(f"{path}: {len(source)} records, the manifest "
                                         f"says {n}")
      self.sources.append(source)
    self.offsets = np.cumsum([0] + [n for _, n in shards])

  def __len__(self) -> int:
    return int(self.offsets[-1])

  def __getitem__(self, index: int) -> dict[str, Any]:
    """schemas.record.decode of record `index` (counting across the shards in order)."""
    shard = int(np.searchsorted(self.offsets, index, side="right")) - 1
    local = int(index) - int(self.offsets[shard])
    where = f"{self.paths[shard]}: record {local}"
    try:
      window = record_lib.decode(self.sources[shard][local])
    except (RuntimeError, OSError, record_lib.RecordError) as e:
      raise record_lib.RecordError(f"{where}: {_first_line(e)}") from None
    if self.window is not None and window["values"].shape != self.window:
      raise record_lib.RecordError(f"{where}: window shape {window['values'].shape}, the "
                                   f"trainer is configured for {self.window}")
    return window


def _first_line(error: Exception) -> str:
  return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def window_arrays(window: dict[str, Any]) -> dict[str, np.ndarray]:
  """A decoded record -> {"values": float32 [T, F], "observed": bool [T, F]} (copies)."""
  return {"values": np.array(window["values"], dtype=np.float32),
          "observed": np.array(window["mask"], dtype=bool)}


class Augment(grain.transforms.RandomMap):
  """LSM's augmentations, each with probability p: time stretch + crop, flip, noise."""

  def __init__(self, p: float = 0.5, max_stretch: float = 1.5, max_noise_sigma: float = 0.5):
    self.p = p
    self.max_stretch = max_stretch
    self.max_noise_sigma = max_noise_sigma

  def random_map(self, element: dict[str, np.ndarray], rng: np.random.Generator):
    """{"values": float32 [T, F], "observed": bool [T, F]} -> the same, augmented
    (noise sigma in normalised units; stretch factor in U[1, max_stretch])."""
    values, observed = element["values"], element["observed"]
    if rng.random() < self.p:
      values, observed = stretch_and_crop(values, observed, rng.uniform(1.0, self.max_stretch),
                                          rng)
    if rng.random() < self.p:
      values, observed = values[::-1], observed[::-1]
    if rng.random() < self.p:
      sigma = rng.uniform(0.0, self.max_noise_sigma)
      values = np.where(observed, values + rng.normal(0.0, sigma, values.shape), 0.0)
    return {"values": np.ascontiguousarray(values, dtype=np.float32),
            "observed": np.ascontiguousarray(observed)}


def stretch_and_crop(values: np.ndarray, observed: np.ndarray, factor: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Stretches time by `factor` (linear interpolation) and crops back to T minutes.

  A stretched minute is observed only if the minutes it interpolates between are,
  so no missing value leaks into the stretched window. values float [T, F],
  observed bool [T, F], factor >= 1; returns (float32 [T, F], bool [T, F]).
  """
  t = values.shape[0]
  length = int(round(t * factor))
  start = int(rng.integers(0, length - t + 1))
  pos = (np.arange(start, start + t) / factor).clip(0, t - 1)
  i0 = np.floor(pos).astype(int)
  i1 = np.minimum(i0 + 1, t - 1)
  a = (pos - i0)[:, None]
  obs = observed[i0] & (observed[i1] | (a == 0))
  vals = np.where(obs, values[i0] * (1 - a) + values[i1] * a, 0.0)
  return vals.astype(np.float32), obs


class BatchStrategy(grain.transforms.MapWithIndex):
  """Draws the mixture's strategy once per global batch and tags each element with it.

  With one strategy per batch, a random-masking batch keeps LSM's small encoder budget
  (36 tokens) instead of paying for the largest budget of any example in it (a
  30-minute gap keeps ~170 visible tokens); the strategies still mix in the stream in
  their weights. The draw is seeded by (seed, global position // batch_size), before
  the per-process slice, so every host tags a global batch alike.
  """

  def __init__(self, weights: str, batch_size: int, seed: int):
    self.weights = masking.parse_weights(weights)
    self.batch_size = batch_size
    self.seed = seed

  def map_with_index(self, index: int, element: dict[str, np.ndarray]):
    """Adds "strategy": the strategy name of the element's global batch."""
    rng = np.random.default_rng([self.seed, index // self.batch_size])
    return {**element, "strategy": masking.choose(rng, self.weights)}


class Mask(grain.transforms.RandomMap):
  """Draws the hidden mask (config.mask) and applies the strategy's encoder budget.

  The element's "strategy" tag (BatchStrategy) picks the strategy when present; a
  mixture otherwise draws one per element. budget: a function of the drawn
  strategy's name -> its token budget (None = every visible token; masking.
  encoder_budget), or None for no budget at all (evaluation).
  """

  def __init__(self, mask_config: ml_collections.ConfigDict, patch: Sequence[int],
               budget: Callable[[str], int | None] | None):
    self.kwargs = mask_kwargs(mask_config, patch)
    self.kwargs.pop("weights", None)
    self.strategy = mask_config.strategy
    self.weights = mask_config.weights
    self.patch = tuple(patch)
    self.budget = budget

  def random_map(self, element: dict[str, np.ndarray], rng: np.random.Generator):
    """Adds "hidden": bool [T, F] (True = hidden) and "tokens": int32, the visible
    tokens the encoder gets, to the element (dropping its "strategy" tag); ValueError
    from trainer.masking on a bad mask config."""
    element = dict(element)
    strategy = element.pop("strategy", self.strategy)
    if strategy == "mixture":
      strategy = masking.choose(rng, self.weights)
    observed = element["observed"]
    hidden = masking.make(strategy, rng, shape=observed.shape, **self.kwargs)
    max_tokens = None if self.budget is None else self.budget(strategy)
    if max_tokens is not None:
      hidden = masking.limit_visible_tokens(rng, hidden, observed, max_tokens, self.patch)
    return {**element, "hidden": hidden,
            "tokens": np.int32(masking.visible_tokens(hidden, observed, self.patch))}


def mask_kwargs(mask_config: ml_collections.ConfigDict, patch: Sequence[int]) -> dict:
  """config.mask as masking.make's keyword arguments (span_minutes and the minimum
  lengths 0 -> None = the whole window / a fixed length; weights only for the
  mixture); patch: (minutes, features) of a token."""
  kwargs = dict(ratio=mask_config.ratio, patch=tuple(patch),
                gap_minutes=mask_config.gap_minutes, num_features=mask_config.num_features,
                span_minutes=mask_config.span_minutes or None,
                min_gap_minutes=mask_config.min_gap_minutes or None,
                min_span_minutes=mask_config.min_span_minutes or None)
  if mask_config.strategy == "mixture":
    kwargs["weights"] = mask_config.weights
  return kwargs


def check_mask(config: ml_collections.ConfigDict) -> None:
  """Draws one mask of every strategy config.mask trains with, so that a setting no
  mask can be drawn with (a ratio above 1, a minimum gap above the longest, an unknown
  mixture name) stops the run before anything compiles, not at the first batch that
  draws it. Raises masking.MaskConfigError naming the setting."""
  kwargs = mask_kwargs(config.mask, config.model.patch)
  weights = kwargs.pop("weights", None)
  names = (list(masking.parse_weights(weights)) if config.mask.strategy == "mixture"
           else [config.mask.strategy])
  rng = np.random.default_rng(0)
  for name in names:
    masking.make(name, rng, **kwargs)


def num_tokens(config: ml_collections.ConfigDict, window: Sequence[int] = WINDOW) -> int:
  """Tokens of a whole window (180 for 300 x 26 in 10 x 5 patches)."""
  nt, nf = patching.grid(window, config.model.patch)
  return nt * nf


def encoder_tokens(config: ml_collections.ConfigDict, window: Sequence[int] = WINDOW) -> int:
  """The random strategy's encoder token budget (patches): config.mask.encoder_tokens,
  or (1 - ratio) of the window's tokens, never more than the window has."""
  n = num_tokens(config, window)
  if config.mask.encoder_tokens:
    return min(int(config.mask.encoder_tokens), n)
  return n - int(round(config.mask.ratio * n))


def strategy_budget(config: ml_collections.ConfigDict) -> Callable[[str], int | None]:
  """strategy name -> its encoder token budget in training (masking.encoder_budget with
  config.mask.adaptive_budget and max_encoder_tokens, 0 = no cap)."""
  random_tokens = encoder_tokens(config)
  cap = config.mask.max_encoder_tokens or None
  adaptive = config.mask.adaptive_budget
  return lambda strategy: masking.encoder_budget(strategy, random_tokens, cap, adaptive)


def token_buckets(config: ml_collections.ConfigDict,
                  window: Sequence[int] = WINDOW) -> tuple[int, ...]:
  """The encoder sizes K the train step is compiled for, ascending.

  Fixed budget (adaptive_budget False): just encoder_tokens. Adaptive: the
  config.mask.token_buckets list ("36,108,180"), or by default the multiples of the
  random budget up to the window's tokens (36, 72, 108, 144, 180), always ending at
  the most any example can keep (max_encoder_tokens, else every token). Raises
  ValueError on a malformed list.
  """
  random_tokens = encoder_tokens(config, window)
  if not config.mask.adaptive_budget:
    return (random_tokens,)
  top = min(config.mask.max_encoder_tokens or num_tokens(config, window),
            num_tokens(config, window))
  if config.mask.token_buckets:
    try:
      listed = {int(b) for b in str(config.mask.token_buckets).split(",") if b.strip()}
    except ValueError:
      raise ValueError(f"config.mask.token_buckets {config.mask.token_buckets!r}: expected "
                       f"comma-separated token counts") from None
  else:
    listed = set(range(random_tokens, top, max(random_tokens, 1)))
  return tuple(sorted({b for b in listed if 0 < b < top} | {random_tokens, top}))


def split_source(data_dir: str, split: str, dataset: str = "pretrain") -> ShardSource:
  """The split's shards as one ShardSource; checks the manifest's counts
  and that no shard beside them is unlisted (manifest_lib.check_listed)."""
  manifest = manifest_lib.load(data_dir)
  manifest_lib.check_listed(data_dir, manifest)
  shards = [(path, n) for path, n in manifest_lib.shards(data_dir, split, dataset, manifest)
            if n]
  if not shards:
    raise EmptySplitError(f"{data_dir}: {dataset} split {split!r} has no records")
  return ShardSource(shards)


def dataset(config: ml_collections.ConfigDict, split: str, *, train: bool,
            process_index: int | None = None, process_count: int | None = None
            ) -> grain.MapDataset:
  """Batched MapDataset of {"values": float32 [B, T, F], "observed", "hidden": bool
  [B, T, F], "tokens": int32 [B] (visible tokens per window)} for this process, B = batch_size / process_count (train: shuffled,
  repeated, augmented, the last partial batch dropped; eval: one pass, kept).

  Raises ValueError when batch_size does not divide over the processes,
  EmptySplitError when the split has fewer records than processes, and ManifestError
  / RecordError from the data directory.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if config.batch_size % process_count:
    raise ValueError(f"batch_size {config.batch_size} is not divisible by "
                     f"{process_count} processes")
  ds = grain.MapDataset.source(split_source(config.data_dir, split, config.dataset))
  if len(ds) < process_count:
    raise EmptySplitError(f"{config.data_dir}: split {split!r} has {len(ds)} records, "
                          f"fewer than the {process_count} processes")
  if train:
    ds = ds.shuffle(seed=config.seed).repeat(None)
  ds = ds.map(window_arrays)
  if train and config.augment.enabled:
    ds = ds.random_map(Augment(config.augment.p, config.augment.max_stretch,
                               config.augment.max_noise_sigma), seed=config.seed + 1)
  if train and config.mask.strategy == "mixture" and config.mask.per_batch:
    ds = ds.map_with_index(BatchStrategy(config.mask.weights, config.batch_size,
                                         config.seed + 3))
  budget = strategy_budget(config) if train else None
  ds = ds.random_map(Mask(config.mask, config.model.patch, budget), seed=config.seed + 2)
  # Process p takes global positions p, p + n, ...: its batch k holds its share of
  # global batch k, and it reads (lazily) only those records.
  ds = ds[process_index::process_count]
  return ds.batch(config.batch_size // process_count, drop_remainder=train)


def train_iterator(config: ml_collections.ConfigDict) -> grain.DatasetIterator:
  """The checkpointable training iterator (worker processes when config.workers > 0).

  Batches are read ahead by config.read_threads threads, config.read_buffer batches
  deep (per process). Grain's defaults (16 threads, 500 elements, here 500 batches:
  ~3 GB of tiny's batches of 128) kept both cores busy filling the buffer for the
  first minute of training and halved the measured step rate (benchmarks/README.md).
  """
  ds = dataset(config, "train", train=True).to_iter_dataset(grain.ReadOptions(
      num_threads=config.read_threads, prefetch_buffer_size=config.read_buffer))
  if config.workers > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=config.workers, per_worker_buffer_size=config.worker_buffer))
  return iter(ds)


def pad_batch(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  """Pads a short (last) batch with fully unobserved windows, which weigh nothing."""
  n = len(batch["values"])
  if n == size:
    return batch
  return {k: np.concatenate([v, np.zeros((size - n,) + v.shape[1:], v.dtype)])
          for k, v in batch.items()}


class IteratorState:
  """A snapshot of an iterator's state for grain's Orbax CheckpointHandler.

  The device prefetcher runs ahead of training, so the state to save is the one
  captured right after the batch the last step consumed, not the live iterator's.
  """

  def __init__(self, state: dict[str, Any] | None = None):
    self.state = state

  def get_state(self) -> bytes:
    """The snapshot as JSON bytes (what grain's handler writes)."""
    return json.dumps(self.state).encode()

  def set_state(self, state: bytes) -> None:
    """Restores the snapshot from get_state's bytes."""
    self.state = json.loads(state.decode())

  def start_prefetch(self) -> None:
    """Called by grain's handler after a restore; nothing runs ahead in a snapshot."""


def prefetch_to_device(iterator: Iterator, size: int, sharding: jax.sharding.Sharding,
                       global_batch: int) -> Iterator[tuple[dict[str, jax.Array], dict]]:
  """Yields (global device batch {name: jax.Array [global_batch, ...]}, the iterator's
  state after it), `size` batches ahead; StopIteration when the iterator ends."""
  queue = collections.deque()

  def put():
    batch = next(iterator)
    state = iterator.get_state()
    arrays = {k: jax.make_array_from_process_local_data(
        sharding, np.asarray(v), (global_batch,) + v.shape[1:]) for k, v in batch.items()}
    queue.append((arrays, state))

  for _ in range(max(size, 1)):
    put()
  while True:
    yield queue.popleft()
    put()
