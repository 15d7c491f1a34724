"""Normalise (tf.Transform): observed-only train statistics, z-score, clip; the shard
writer applies the saved graph to make the records."""

import warnings

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
import grain.python as grain
import numpy as np
import pytest

from pipeline.normalise import BATCH_WINDOWS, CONSTANT, POPULATION, Normalise, _RecordBatches
from pipeline.windows import WindowBlock
from pipeline.write import WriteShards
from schemas import record
from schemas.features import FEATURE_INDEX, FEATURES

W = 4
HR = FEATURE_INDEX["HR"]
STEPS = FEATURE_INDEX["steps"]
TEMP = FEATURE_INDEX["wrist_temperatures"]


def _block(subject, split, dataset, values):
  n = len(values)
  return WindowBlock(subject, split, dataset, np.arange(n, dtype=np.int64) * W + 1000,
                     values.astype(np.float32), np.zeros(n, np.float32),
                     np.zeros(n, np.float32), np.full(n, -1, np.int16),
                     np.full(n, -1, np.int16), np.full((n, W), -1, np.int8),
                     np.full((n, W), -1, np.int8))


def test_record_batches_survive_a_first_block_above_the_batch_target(make_pipeline):
  # BatchElements flushes its (empty) batch before a first element larger than its
  # initial target: a subject with more train windows than that came first in real
  # runs (Fitbit minute steps) and crashed the analysis's Concat.
  sizes = [BATCH_WINDOWS // 4 + 88, 3]
  blocks = [_block(f"s{i}", "train", "pretrain", np.zeros((n, W, len(FEATURES))))
            for i, n in enumerate(sizes)]
  with make_pipeline() as p:
    rows = (p | beam.Create(blocks) | _RecordBatches()
            | beam.Map(lambda batch: batch.num_rows))
    assert_that(rows | beam.CombineGlobally(sum), equal_to([sum(sizes)]), label="all")
    assert_that(rows | beam.Filter(lambda n: n == 0), equal_to([]), label="none empty")


@pytest.mark.parametrize("exchange", ["runner", "files"])
def test_train_only_observed_statistics_and_transform(tmp_path, make_pipeline, exchange):
  rng = np.random.default_rng(1)
  train = rng.uniform(60, 100, (3, W, len(FEATURES)))
  train[rng.random(train.shape) < 0.4] = np.nan
  train[0, 0, STEPS] = 400.0          # clipped to 255 before analysis
  train[:, :, TEMP] = np.nan           # never observed in train: population statistics
  other = np.full((1, W, len(FEATURES)), 1000.0)  # valid split: never analysed
  other[0, 1] = np.nan
  blocks = [_block("a", "train", "pretrain", train[:2]), _block("b", "train", "pretrain", train[2:]),
            _block("c", "valid", "pretrain", other),
            _block("a", "train", "labelled", other)]  # labelled windows are not analysed
  clipped = np.clip(train, *np.array([f.clip_range for f in FEATURES]).T)
  with np.errstate(invalid="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN feature
    mean, std = np.nanmean(clipped, axis=(0, 1)), np.nanstd(clipped, axis=(0, 1))
  mean[TEMP], std[TEMP] = FEATURES[TEMP].population_mean, FEATURES[TEMP].population_std
  # Features the clip range makes constant in train take the population std.
  constant = std <= 1e-6 * np.maximum(np.abs(mean), 1.0)
  assert constant.sum() >= 3  # the test covers the rule
  std[constant] = [f.population_std for f, c in zip(FEATURES, constant) if c]

  def check_stats(stats):
    got = np.array([[stats[f.name]["mean"], stats[f.name]["std"]] for f in FEATURES])
    np.testing.assert_allclose(got[:, 0], mean, rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], std, rtol=1e-4)
    assert [stats[f.name]["count"] for f in FEATURES] == \
        np.isfinite(train).sum(axis=(0, 1)).tolist()
    assert [stats[f.name]["source"] for f in FEATURES] == [
        POPULATION if i == TEMP else CONSTANT if constant[i] else "train"
        for i in range(len(FEATURES))]


  raw = {(b.dataset, b.subject, int(s)): v for b in blocks for s, v in zip(b.start, b.values)}
  low, high = np.array([f.clip_range for f in FEATURES]).T
  scale = np.where(std > 0, std, 1)

  def check_records(items):
    assert len(items) == 5
    for dataset, split, subject, start, r in items:
      assert (r["subject"], r["split"], r["start"]) == (subject, split, start)
      values = raw[(dataset, subject, start)]
      expected = np.clip((np.clip(values, low, high) - mean) / scale, -5, 5)
      np.testing.assert_array_equal(r["mask"], np.isfinite(values))
      np.testing.assert_allclose(r["values"], np.nan_to_num(expected), atol=1e-4)
    assert 5.0 in [r["values"][0, HR] for *_, r in items]  # 1000 bpm: z clipped at +5
    # Re-applying the written graph to the raw windows gives the records' values
    # exactly: the shards come from the saved transform, not from a re-implementation.
    import tensorflow_transform as tft
    layer = tft.TFTransformOutput(str(tmp_path / "transform")).transform_features_layer()
    keys = sorted(raw)
    stacked = np.stack([raw[k] for k in keys]).astype(np.float32)
    again = layer({f.name: stacked[:, :, i] for i, f in enumerate(FEATURES)})
    again = np.stack([again[f.name].numpy() for f in FEATURES], axis=2)
    by_key = {(dataset, subject, start): r["values"] for dataset, _, subject, start, r in items}
    np.testing.assert_array_equal(np.stack([by_key[k] for k in keys]), again)

  directory = str(tmp_path / "exchange") if exchange == "files" else None
  with make_pipeline() as p:
    windows = p | beam.Create(blocks)
    transform = windows | Normalise(W, str(tmp_path / "transform"), str(tmp_path / "tmp"))
    out = {"windows": windows, "transform": transform} | WriteShards(
        str(tmp_path), W, 1, directory)
    out["statistics"] | "CheckStats" >> beam.Map(check_stats)
  items = []
  for path in sorted(tmp_path.glob("*/*-00000-of-00001.array_record")):
    source = grain.ArrayRecordDataSource([str(path)])
    items += [(path.parent.name, r["split"], r["subject"], r["start"], r)
              for r in (record.decode(source[i]) for i in range(len(source)))]
  check_records(items)
  assert (tmp_path / "transform" / "transform_fn" / "saved_model.pb").exists()


def test_tensorflow_import_skips_jax_only_for_tf_lite():
  """pipeline/__init__'s finder: TensorFlow imported after `pipeline` does not import
  JAX (TF Lite's optional converter import), and JAX itself still imports."""
  import subprocess
  import sys
  code = ("import sys, pipeline, tensorflow; assert 'jax' not in sys.modules, 'jax'; "
          "import jax; jax.numpy.zeros(1)")
  subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
