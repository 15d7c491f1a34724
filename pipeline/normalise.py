"""Stage 7, Normalise: tf.Transform analysis; its graph makes the records' values.

Analysis runs over the pretrain dataset's train split only. Each feature's mean and
standard deviation are taken over its observed values only (float64 sums in which
missing minutes contribute nothing), so missing minutes cannot bias them. Transform (every split,
both datasets): clip to the feature's clip range, z-score, clip to [-5, 5], missing
-> 0. A feature with no observed train value (one subject who hashes to test; a
feature only some devices have) is centred and scaled with LSM's population
statistics (schemas.features population_mean / population_std) inside the graph,
never with a std of 0 from no data; statistics() marks it with source
POPULATION. A feature constant in train keeps that value as its mean and takes the
population std (source CONSTANT). The graph also outputs the statistics (__mean, __std, __count: [F] per row) so that
the manifest reports exactly the numbers the graph applies, and so that they can be
inverted to report errors in physical units. The graph is saved under transform/.

Analysis: train windows reach TFT as Arrow RecordBatches (TFXIO) of up to
BATCH_WINDOWS windows, in the same fused stage that cuts them (TFT's partial sums are
lifted there), so windows never cross the runner for analysis. Transform: the shard
writer (pipeline.write) loads the graph WriteTransformFn saved with `Transformer`
and applies it to batches of windows just before encoding them, so the records come
out of exactly the graph written with the output and no window crosses the runner
twice.
"""

from __future__ import annotations

import typing

import apache_beam as beam
import numpy as np
import pyarrow as pa

from schemas import record
from schemas.constants import NORMALISED_CLIP
from schemas.features import FEATURE_NAMES, FEATURES, feature_array

BATCH_WINDOWS = 2048
# Windows per call of the saved graph: per window, 256 cost less than 2048 (the
# batch's tensors stay in cache) and a call's fixed cost is small (benchmarks/README.md).
TRANSFORM_WINDOWS = 256


def arrow_schema() -> pa.Schema:
  return pa.schema([pa.field(n, pa.large_list(pa.float32())) for n in FEATURE_NAMES])


def to_record_batch(block) -> pa.RecordBatch:
  """One row per window: a list of T floats per feature (NaN missing), for analysis."""
  n, t, _ = block.values.shape
  offsets = pa.array(np.arange(0, n * t + 1, t, dtype=np.int64))
  by_feature = np.ascontiguousarray(np.moveaxis(block.values, 2, 0)).reshape(len(FEATURES), -1)
  return pa.RecordBatch.from_arrays(
      [pa.LargeListArray.from_arrays(offsets, pa.array(column)) for column in by_feature],
      schema=arrow_schema())


STATISTICS = ("__mean", "__std", "__count")  # extra outputs: [F] per row, LSM order
TRAIN = "train"
POPULATION = "population (no observed train value)"
CONSTANT = "train mean, population std (constant in train)"


def preprocessing_fn(inputs):
  """Observed-only statistics per feature; clip, z-score, clip to +-5, missing -> 0.

  For analysis the features are stacked to [B, T, F]. The analyser is one tft.sum
  of three float64 sums per feature (observed count, exact below 2**53; sum and sum
  of squares of the clipped values, shifted by the population mean for precision;
  one analyser rather than three: each adds runner stages and tracing to every
  run's start, benchmarks/README.md) with missing minutes
  contributing nothing, so a missing minute can neither bias nor poison the
  statistics (a batch where a feature is absent adds zeros; TF Transform's own
  mean/var combiner returns NaN when two partials both lack a feature).

  The transform works on the stacked [B, T, F] values in a handful of ops (the
  shard writer applies the same arithmetic in numpy, Transformer, so the graph's
  speed per window no longer matters; its size does: tf.Transform traces it several
  times at every run's start). Clipping to the clip range, then the z-score to +-5,
  is one clip of the z-score to the clip range's z-scores (the same numbers: z is
  monotonic).
  A feature of count 0 takes the population mean and std, a feature constant in
  train its train mean and the population std (tf.where in the graph).
  """
  import tensorflow as tf
  import tensorflow_transform as tft
  x = tf.stack([inputs[f.name] for f in FEATURES], axis=2)
  observed = ~tf.math.is_nan(x)
  low = tf.constant([f.clip_range[0] for f in FEATURES], tf.float32)
  high = tf.constant([f.clip_range[1] for f in FEATURES], tf.float32)
  clipped = tf.clip_by_value(x, low, high)
  shift = tf.constant([f.population_mean for f in FEATURES], tf.float64)
  centred = tf.where(observed, tf.cast(clipped, tf.float64) - shift, tf.zeros_like(shift))
  sums = tft.sum(tf.concat([tf.reduce_sum(tf.cast(observed, tf.float64), axis=1),
                            tf.reduce_sum(centred, axis=1),
                            tf.reduce_sum(centred * centred, axis=1)], axis=1),
                 reduce_instance_dims=False)
  count, total, squares = tf.split(sums, 3)
  count = tf.cast(count, tf.int64)
  n = tf.maximum(tf.cast(count, tf.float64), 1.0)
  offset = total / n
  mean = shift + offset
  std = tf.sqrt(tf.maximum(squares / n - offset * offset, 0.0))
  # A feature constant in train has no spread to scale by (what remains is rounding
  # noise): it keeps its train mean and takes the population std, so the other splits'
  # values stay z-scores instead of raw differences from that constant.
  constant = std <= 1e-6 * tf.maximum(tf.abs(mean), 1.0)
  unseen = tf.equal(count, 0)
  mean = tf.where(unseen, shift, mean)
  population_std = tf.constant([f.population_std for f in FEATURES], tf.float64)
  std = tf.where(unseen | constant, population_std, std)
  scale = tf.cast(std, tf.float32)  # > 0: a std of 0 took the population std above
  centre = tf.cast(mean, tf.float32)
  bounds = (tf.maximum((low - centre) / scale, -NORMALISED_CLIP),
            tf.minimum((high - centre) / scale, NORMALISED_CLIP))
  z = tf.clip_by_value((x - centre) / scale, *bounds)
  z = tf.where(observed, z, tf.zeros_like(z))
  outputs = dict(zip(FEATURE_NAMES, tf.unstack(z, axis=2)))
  rows = tf.shape(x)[:1]
  for name, value in zip(STATISTICS, (centre, tf.cast(std, tf.float32), count)):
    outputs[name] = tf.tile(value[tf.newaxis], tf.concat([rows, [1]], 0))
  return outputs


def encode_block(block, z: np.ndarray):
  """A block's windows as (start, schemas.record bytes).

  z: the transformed values [n, T, F]; missing positions are 0 already (the graph's
  rule), the mask comes from the block's NaNs.
  """
  mask = ~np.isnan(block.values)
  for i in range(len(block)):
    start = int(block.start[i])
    yield start, record.encode({
        "values": z[i], "mask": mask[i], "subject": block.subject, "split": block.split,
        "start": start, "missing_ratio": block.missing_ratio[i],
        "source_missing_ratio": block.source_missing_ratio[i],
        "label": block.label[i], "exercise": block.exercise[i],
        "minute_labels": block.minute_labels[i],
        "minute_exercise": block.minute_exercise[i]})


def statistics(outputs) -> dict:
  """The statistics the graph applies (every row carries them; the first one is read),
  with their source: TRAIN, POPULATION for a feature of no observed train value, or
  CONSTANT for one whose train values are all equal (the graph applied the population
  std: observed train values whose std is exactly that float32 number are taken for
  constant, a coincidence of 1 in 2**24 at worst)."""
  mean, std, count = (np.asarray(outputs[name][0]) for name in STATISTICS)

  def source(i):
    if not count[i]:
      return POPULATION
    return CONSTANT if std[i] == np.float32(FEATURES[i].population_std) else TRAIN

  return {name: {"mean": float(mean[i]), "std": float(std[i]), "count": int(count[i]),
                 "source": source(i)}
          for i, name in enumerate(FEATURE_NAMES)}


CLIP_RANGE = feature_array("clip_range").T.astype(np.float32)  # [2, F]: low, high


class TransformMismatch(AssertionError):
  """The numpy transform (apply_constants) differs from the saved graph: a bug."""


class Constants(typing.NamedTuple):
  """What the saved graph applies per feature, float32 [F] each (LSM feature order):
  z = clip((x - centre) / scale, low, high), 0 where x is NaN."""
  centre: np.ndarray
  scale: np.ndarray
  low: np.ndarray
  high: np.ndarray


def _subnormal(a: np.ndarray) -> np.ndarray:
  """Where float32 `a` is subnormal (nonzero, below 2**-126): TensorFlow's CPU kernels
  flush such inputs and results to zero, numpy keeps them."""
  bits = np.bitwise_and(a.view(np.uint32), np.uint32(0x7FFFFFFF))
  np.subtract(bits, np.uint32(1), out=bits)  # 0 wraps round; 1..0x7FFFFF: subnormal
  return bits < np.uint32(0x7FFFFF)


def _flushed(a: np.ndarray) -> np.ndarray:
  """float32 `a` with subnormals as signed zeros (what TensorFlow computes)."""
  return np.where(_subnormal(a), np.copysign(np.float32(0), a), a).astype(np.float32)


def constants(mean: np.ndarray, std: np.ndarray) -> Constants:
  """The graph's float32 constants from its __mean and __std outputs ([F] float32),
  derived exactly as preprocessing_fn derives them (subnormal intermediates flushed
  to zero, as TensorFlow does); the bounds are the clip range's z-scores, at most
  NORMALISED_CLIP away from 0. A std of 0 scales by 1: graphs saved before a feature
  constant in train took the population std (lsm-impute applies a pre-training
  run's saved graph) output one for such a feature."""
  centre = np.asarray(mean, np.float32)
  std = np.asarray(std, np.float32)
  scale = np.where(std > 0, std, np.float32(1)).astype(np.float32)
  low, high = CLIP_RANGE
  z_low = _flushed(_flushed(low - centre) / scale)
  z_high = _flushed(_flushed(high - centre) / scale)
  return Constants(centre, scale, np.maximum(z_low, np.float32(-NORMALISED_CLIP)),
                   np.minimum(z_high, np.float32(NORMALISED_CLIP)))


def apply_constants(values: np.ndarray, c: Constants) -> np.ndarray | None:
  """z [n, T, F] float32 of values [n, T, F] (physical units, NaN missing): the saved
  graph's operations in its order and precision (float32 subtract, divide, then
  tf.clip_by_value's minimum before maximum; NaN -> 0), so bit for bit its output
  (Transformer checks this on every run). None when a value, difference or quotient
  is subnormal (TensorFlow flushes those to zero; numpy does not): the caller then
  runs the graph on that batch."""
  values = np.asarray(values, np.float32)
  z = np.subtract(values, c.centre)
  if _subnormal(values).any() or _subnormal(z).any():
    return None
  np.divide(z, c.scale, out=z)
  if _subnormal(z).any():
    return None
  np.minimum(z, c.high, out=z)
  np.maximum(z, c.low, out=z)
  # NaN -> +0.0 (the graph's zeros_like) by clearing the bits: a sixth of the CPU of
  # z[np.isnan(values)] = 0 (a scatter). keep: all bits set where observed, 0 where NaN.
  keep = np.isnan(values).view(np.uint8).astype(np.uint32)
  np.subtract(keep, 1, out=keep)
  np.bitwise_and(z.view(np.uint32), keep, out=z.view(np.uint32))
  return z


def edge_windows(c: Constants, t: int) -> np.ndarray:
  """[7, t, F] float32 windows at and around what the transform treats specially:
  the clip range's ends and beyond, the values whose z-score is exactly the bounds,
  the centre, NaN, +-inf and -0, one kind per window."""
  low, high = CLIP_RANGE
  spread = np.maximum(high - low, np.float32(1))
  with np.errstate(over="ignore", invalid="ignore"):
    rows = [low, high, low - spread, high + spread, c.centre,
            c.centre + c.low * c.scale, c.centre + c.high * c.scale]
    grid = np.stack([np.broadcast_to(r, (t, len(FEATURES))) for r in rows]).copy()
  specials = np.array([np.nan, np.inf, -np.inf, -0.0], np.float32)
  grid[:, ::2] = specials[np.arange(grid[:, ::2].shape[1]) % len(specials)][None, :, None]
  return grid.astype(np.float32)


def check_equal(values: np.ndarray, graph: np.ndarray, c: Constants) -> None:
  """Raises TransformMismatch naming the features where apply_constants(values)
  differs from the graph's output in any bit (nothing to compare where it defers a
  batch with subnormal values to the graph)."""
  mine = apply_constants(values, c)
  if mine is None:
    return
  differ = mine.view(np.uint32) != np.asarray(graph, np.float32).view(np.uint32)
  if differ.any():
    by_feature = differ.sum(axis=(0, 1))
    named = ", ".join(f"{FEATURE_NAMES[i]} {n}" for i, n in enumerate(by_feature) if n)
    raise TransformMismatch(
        f"lsm-pipeline: the numpy transform differs from the saved tf.Transform graph in "
        f"{int(differ.sum())} of {differ.size} values ({named}); a bug: nothing written "
        "from this batch on")


class Transformer:
  """The saved transform graph as a function of [n, T, F] windows, applied in numpy.

  On first use the graph itself runs once, on that batch plus edge_windows: its
  outputs give the statistics (and so the Constants), and apply_constants must equal
  its output there bit for bit or TransformMismatch is raised (so every run and
  every worker checks the numpy path against the graph written with the output).
  Every later batch costs a few numpy passes instead of a TensorFlow call (the graph
  again only for a batch holding subnormal values, which TensorFlow flushes to zero
  and numpy does not; real data has none). Rows never
  interact, so how windows are batched cannot change a byte.
  """

  def __init__(self, transform_dir: str):
    self._transform_dir = transform_dir
    self._layer = None
    self.constants = None
    self.statistics = None  # what the graph applies, read off the first call's outputs

  def graph(self, values: np.ndarray) -> tuple[np.ndarray, dict]:
    """(z [n, T, F], the statistics outputs) from the saved graph itself."""
    import tensorflow as tf
    if self._layer is None:
      import tensorflow_transform as tft
      self._layer = tft.TFTransformOutput(self._transform_dir).transform_features_layer()
    by_feature = np.ascontiguousarray(np.moveaxis(values, 2, 0))  # contiguous [n, T] each
    outputs = self._layer({f.name: tf.constant(by_feature[i]) for i, f in enumerate(FEATURES)})
    z = np.stack([outputs[name].numpy() for name in FEATURE_NAMES], axis=2)
    return z, {name: outputs[name].numpy() for name in STATISTICS}

  def __call__(self, values: np.ndarray) -> np.ndarray:
    """z [n, T, F] float32. Raises TransformMismatch (first call) as above."""
    if self.constants is None:
      z, outputs = self.graph(values)
      c = constants(outputs["__mean"][0], outputs["__std"][0])
      check_equal(values, z, c)
      edges = edge_windows(c, values.shape[1])
      check_equal(edges, self.graph(edges)[0], c)
      self.constants, self.statistics = c, statistics(outputs)
      return z
    z = apply_constants(values, self.constants)
    return self.graph(values)[0] if z is None else z


class _RecordBatches(beam.PTransform):
  """WindowBlocks -> RecordBatches of about BATCH_WINDOWS windows.

  A TF call has a fixed cost on top of its work (benchmarks/README.md), so subjects
  are batched together. Rows never interact in the transform; the analysers' float64 partial
  sums differ by rounding only, far below the float32 statistics they produce.
  """

  def expand(self, blocks):
    return (blocks
            | "Arrow" >> beam.Map(to_record_batch).with_output_types(pa.RecordBatch)
            | "Batch" >> beam.BatchElements(min_batch_size=BATCH_WINDOWS // 4,
                                            max_batch_size=BATCH_WINDOWS,
                                            element_size_fn=lambda b: b.num_rows)
            # BatchElements emits an empty batch when the first element alone is
            # larger than its current target (a subject with over ~512 train windows
            # first in a bundle); pa.Table.from_batches([]) would fail on it.
            | "NonEmpty" >> beam.Filter(bool)
            | "Concat" >> beam.Map(lambda batches: pa.Table.from_batches(batches)
                                   .combine_chunks().to_batches()[0]
                                   ).with_output_types(pa.RecordBatch))


class Normalise(beam.PTransform):
  """WindowBlock -> the transform directory, once the analysed graph is written there.

  The result is a one-element PCollection for consumers (the shard writer) to take
  as a side input, so that they run only once the graph exists.
  """

  def __init__(self, window: int, transform_dir: str, temp_dir: str):
    super().__init__()
    self._window, self._transform_dir, self._temp_dir = window, transform_dir, temp_dir

  def expand(self, blocks):
    """Analyses the windows' float32 [n, T, F] values (physical units, NaN missing)
    with tf.Transform (pretrain train windows only) and writes the transform graph
    (per-feature statistics of the observed, clipped values) to transform_dir."""
    import tensorflow_transform.beam as tft_beam
    from tfx_bsl.public import tfxio
    from tfx_bsl.tfxio import tensor_representation_util

    from schemas import tfmd
    representations = tensor_representation_util.InferTensorRepresentationsFromSchema(
        tfmd.window_schema(self._window))
    config = tfxio.TensorAdapterConfig(arrow_schema(), representations)
    train = (blocks
             | "TrainOnly" >> beam.Filter(lambda b: b.dataset == "pretrain"
                                          and b.split == "train")
             | "TrainToRecordBatch" >> _RecordBatches())
    transform_dir = self._transform_dir
    with tft_beam.Context(temp_dir=self._temp_dir):
      transform_fn = (train, config) | "Analyse" >> tft_beam.AnalyzeDataset(preprocessing_fn)
      published = transform_fn | "WriteTransform" >> tft_beam.WriteTransformFn(transform_dir)
    return published | "Directory" >> beam.Map(lambda _: transform_dir)
