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
from typing import Any, Iterator, Sequence

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


class Mask(grain.transforms.RandomMap):
  """Draws the hidden mask (config.mask) and applies the encoder token budget."""

  def __init__(self, mask_config: ml_collections.ConfigDict, patch: Sequence[int],
               max_tokens: int | None):
    self.kwargs = mask_kwargs(mask_config, patch)
    self.strategy = mask_config.strategy
    self.patch = tuple(patch)
    self.max_tokens = max_tokens

  def random_map(self, element: dict[str, np.ndarray], rng: np.random.Generator):
    """Adds "hidden": bool [T, F] (True = hidden) to the element; ValueError from
    trainer.masking on a bad mask config."""
    observed = element["observed"]
    hidden = masking.make(self.strategy, rng, shape=observed.shape, **self.kwargs)
    if self.max_tokens is not None:
      hidden = masking.limit_visible_tokens(rng, hidden, observed, self.max_tokens, self.patch)
    return {**element, "hidden": hidden}


def mask_kwargs(mask_config: ml_collections.ConfigDict, patch: Sequence[int]) -> dict:
  """config.mask as masking.make's keyword arguments (span_minutes 0 -> None = the whole
  window; weights only for the mixture); patch: (minutes, features) of a token."""
  kwargs = dict(ratio=mask_config.ratio, patch=tuple(patch),
                gap_minutes=mask_config.gap_minutes, num_features=mask_config.num_features,
                span_minutes=mask_config.span_minutes or None)
  if mask_config.strategy == "mixture":
    kwargs["weights"] = mask_config.weights
  return kwargs


def encoder_tokens(config: ml_collections.ConfigDict, window: Sequence[int] = WINDOW) -> int:
  """The encoder's token budget (patches): config.mask.encoder_tokens, or (1 - ratio)
  of the window's tokens, never more than the window has."""
  nt, nf = patching.grid(window, config.model.patch)
  n = nt * nf
  if config.mask.encoder_tokens:
    return min(int(config.mask.encoder_tokens), n)
  return n - int(round(config.mask.ratio * n))


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
  [B, T, F]} for this process, B = batch_size / process_count (train: shuffled,
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
  budget = encoder_tokens(config) if train else None
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
