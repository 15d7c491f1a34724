"""Stage 7 and 8, Normalise: tf.Transform z-scores, then schemas.record bytes.

Analysis runs over the pretrain dataset's train split only. Each feature's mean and
standard deviation are taken over its observed values only (float64 sums in which
missing minutes contribute nothing), so missing minutes cannot bias them. Transform (every split,
both datasets): clip to the feature's clip range, z-score, clip to [-5, 5], missing
-> 0. The graph also outputs the statistics (__mean, __std, __count: [F] per row) so that
the manifest reports exactly the numbers the graph applies, and so that they can be
inverted to report errors in physical units. The graph is saved under transform/.

Windows reach TFT as Arrow RecordBatches of up to BATCH_WINDOWS windows; the
window metadata and mask ride along as a pass-through column and never enter TF.
"""

from __future__ import annotations

import struct

import apache_beam as beam
import numpy as np
import pyarrow as pa

from schemas import record
from schemas.constants import NORMALISED_CLIP, SPLITS
from schemas.features import FEATURE_NAMES, FEATURES
from schemas.manifest import DATASETS

META = "__window__"
BATCH_WINDOWS = 2048
_META = struct.Struct("<qffhhBBH")


def pack_meta(block, i: int) -> bytes:
  subject = block.subject.encode("ascii")
  mask = np.packbits(~np.isnan(block.values[i]).reshape(-1)).tobytes()
  return b"".join((
      _META.pack(int(block.start[i]), float(block.missing_ratio[i]),
                 float(block.source_missing_ratio[i]), int(block.label[i]),
                 int(block.exercise[i]), SPLITS.index(block.split),
                 DATASETS.index(block.dataset), len(subject)),
      subject, block.minute_labels[i].tobytes(), block.minute_exercise[i].tobytes(), mask))


def unpack_meta(data: bytes, window: int) -> dict:
  (start, missing_ratio, source_missing_ratio, label, exercise, split, dataset,
   subject_len) = _META.unpack_from(data, 0)
  o = _META.size
  subject = data[o:o + subject_len].decode("ascii")
  o += subject_len
  raw = np.frombuffer(data, np.int8, count=2 * window, offset=o)
  o += 2 * window
  mask = np.unpackbits(np.frombuffer(data, np.uint8, offset=o),
                       count=window * len(FEATURES)).view(bool).reshape(window, -1)
  return {"start": start, "missing_ratio": missing_ratio,
          "source_missing_ratio": source_missing_ratio, "label": label,
          "exercise": exercise, "split": SPLITS[split], "dataset": DATASETS[dataset],
          "subject": subject, "minute_labels": raw[:window],
          "minute_exercise": raw[window:], "mask": mask}


def arrow_schema() -> pa.Schema:
  return pa.schema([pa.field(n, pa.large_list(pa.float32())) for n in FEATURE_NAMES]
                   + [pa.field(META, pa.large_list(pa.binary()))])


def to_record_batch(block) -> pa.RecordBatch:
  """One row per window: a list of T floats per feature (NaN missing) plus the metadata."""
  n, t, _ = block.values.shape
  offsets = pa.array(np.arange(0, n * t + 1, t, dtype=np.int64))
  columns = [pa.LargeListArray.from_arrays(offsets, pa.array(block.values[:, :, f].reshape(-1)))
             for f in range(len(FEATURES))]
  columns.append(pa.LargeListArray.from_arrays(
      pa.array(np.arange(n + 1, dtype=np.int64)),
      pa.array([pack_meta(block, i) for i in range(n)], pa.binary())))
  return pa.RecordBatch.from_arrays(columns, schema=arrow_schema())


STATISTICS = ("__mean", "__std", "__count")  # extra outputs: [F] per row, LSM order


def preprocessing_fn(inputs):
  """Observed-only statistics per feature; clip, z-score, clip to +-5, missing -> 0.

  The features are stacked to [B, T, F]. The analysers are three float64 sums per
  feature (observed count, sum and sum of squares of the clipped values, shifted by
  the population mean for precision) with missing minutes contributing nothing, so
  a missing minute can neither bias nor poison the statistics (a batch where a
  feature is absent adds zeros; TF Transform's own mean/var combiner returns NaN
  when two partials both lack a feature).
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
  count = tft.sum(tf.reduce_sum(tf.cast(observed, tf.int64), axis=1),
                  reduce_instance_dims=False)
  total = tft.sum(tf.reduce_sum(centred, axis=1), reduce_instance_dims=False)
  squares = tft.sum(tf.reduce_sum(centred * centred, axis=1), reduce_instance_dims=False)
  n = tf.maximum(tf.cast(count, tf.float64), 1.0)
  offset = total / n
  mean = shift + offset
  std = tf.sqrt(tf.maximum(squares / n - offset * offset, 0.0))
  # A constant feature leaves rounding noise, not spread: call it 0 (scaled by 1).
  std = tf.where(std > 1e-6 * tf.maximum(tf.abs(mean), 1.0), std, tf.zeros_like(std))
  scale = tf.cast(tf.where(std > 0, std, tf.ones_like(std)), tf.float32)
  z = tf.clip_by_value((clipped - tf.cast(mean, tf.float32)) / scale,
                       -NORMALISED_CLIP, NORMALISED_CLIP)
  z = tf.where(observed, z, tf.zeros_like(z))
  outputs = {f.name: z[:, :, i] for i, f in enumerate(FEATURES)}
  rows = tf.shape(x)[:1]
  for name, value in zip(STATISTICS, (tf.cast(mean, tf.float32), tf.cast(std, tf.float32),
                                      count)):
    outputs[name] = tf.tile(value[tf.newaxis], tf.concat([rows, [1]], 0))
  return outputs


def encode_batch(transformed, window: int):
  """Transformed RecordBatch -> ((dataset, split), (subject, start, record bytes))."""
  batch = transformed[0]
  n = batch.num_rows
  values = np.stack([batch.column(name).flatten().to_numpy(zero_copy_only=False)
                     .reshape(n, window) for name in FEATURE_NAMES], axis=2)
  for i, meta in enumerate(batch.column(META).flatten().to_pylist()):
    window_meta = unpack_meta(meta, window)
    window_meta["values"] = np.where(window_meta["mask"], values[i], 0).astype(np.float32)
    yield ((window_meta["dataset"], window_meta["split"]),
           (window_meta["subject"], window_meta["start"], record.encode(window_meta)))


def statistics(transformed) -> dict:
  """The statistics the graph applies (every row carries them; the first one is read)."""
  batch = transformed[0]
  mean, std, count = (batch.column(name)[0].as_py() for name in STATISTICS)
  return {name: {"mean": float(mean[i]), "std": float(std[i]), "count": int(count[i])}
          for i, name in enumerate(FEATURE_NAMES)}


def _first(stats):
  return next((s for s in stats if s), {})


class _RecordBatches(beam.PTransform):
  """WindowBlocks -> RecordBatches of about BATCH_WINDOWS windows.

  A TF call costs a fixed ~0.4 s on top of its work, so subjects are batched
  together. Rows never interact in the transform; the analysers' float64 partial
  sums differ by rounding only, far below the float32 statistics they produce.
  """

  def expand(self, blocks):
    return (blocks
            | "Arrow" >> beam.Map(to_record_batch)
            | "Batch" >> beam.BatchElements(min_batch_size=BATCH_WINDOWS // 4,
                                            max_batch_size=BATCH_WINDOWS,
                                            element_size_fn=lambda b: b.num_rows)
            | "Concat" >> beam.Map(lambda batches: pa.Table.from_batches(batches)
                                   .combine_chunks().to_batches()[0]))


class Normalise(beam.PTransform):
  """WindowBlock -> {'records': ((dataset, split), (subject, start, bytes)), 'statistics'}."""

  def __init__(self, window: int, transform_dir: str, temp_dir: str):
    super().__init__()
    self._window, self._transform_dir, self._temp_dir = window, transform_dir, temp_dir

  def expand(self, blocks):
    import tensorflow_transform.beam as tft_beam
    from tfx_bsl.public import tfxio
    from tfx_bsl.tfxio import tensor_representation_util

    from schemas import tfmd
    representations = tensor_representation_util.InferTensorRepresentationsFromSchema(
        tfmd.window_schema(self._window))
    config = tfxio.TensorAdapterConfig(arrow_schema(), representations)
    batches = blocks | "ToRecordBatch" >> _RecordBatches()
    train = (blocks
             | "TrainOnly" >> beam.Filter(lambda b: b.dataset == "pretrain"
                                          and b.split == "train")
             | "TrainToRecordBatch" >> _RecordBatches())
    with tft_beam.Context(temp_dir=self._temp_dir, passthrough_keys={META}):
      transform_fn = (train, config) | "Analyse" >> tft_beam.AnalyzeDataset(preprocessing_fn)
      transformed, _ = (((batches, config), transform_fn)
                        | "Transform" >> tft_beam.TransformDataset(
                            output_record_batches=True))
      _ = transform_fn | "WriteTransform" >> tft_beam.WriteTransformFn(self._transform_dir)
    window = self._window
    records = transformed | "Encode" >> beam.FlatMap(encode_batch, window)
    stats = (transformed
             | "Statistics" >> beam.Map(statistics)
             | "OneCopy" >> beam.CombineGlobally(_first))
    return {"records": records, "statistics": stats}
