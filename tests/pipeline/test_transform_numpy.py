"""The shard writer's numpy transform equals the saved tf.Transform graph bit for bit,
and its guard fails loudly when it does not."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import test_pipeline

from pipeline import normalise
from pipeline.windows import WindowBlock
from schemas.constants import NORMALISED_CLIP
from schemas.features import FEATURE_INDEX, FEATURES

W = 8
F = len(FEATURES)
HR = FEATURE_INDEX["HR"]
STEPS = FEATURE_INDEX["steps"]
TEMP = FEATURE_INDEX["wrist_temperatures"]
LOW, HIGH = np.array([f.clip_range for f in FEATURES], np.float32).T


def _block(subject, values):
  n = len(values)
  return WindowBlock(subject, "train", "pretrain", np.arange(n, dtype=np.int64) * W,
                     values.astype(np.float32), np.zeros(n, np.float32),
                     np.zeros(n, np.float32), np.full(n, -1, np.int16),
                     np.full(n, -1, np.int16), np.full((n, W), -1, np.int8),
                     np.full((n, W), -1, np.int8))


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
  """A graph analysed on train windows where steps is constant (std 0), wrist
  temperature never observed (population statistics) and HR partly beyond its clip
  range; the rest random with 30% missing."""
  tmp = tmp_path_factory.mktemp("graph")
  rng = np.random.default_rng(7)
  train = LOW + (HIGH - LOW) * rng.uniform(0.1, 0.9, (6, W, F))
  train[rng.random(train.shape) < 0.3] = np.nan
  train[:, :, STEPS] = 10.0
  train[:, :, TEMP] = np.nan
  train[0, :, HR] = HIGH[HR] + 100
  with test_pipeline.TestPipeline(runner="FnApiRunner") as p:
    _ = (p | beam.Create([_block("a", train[:3]), _block("b", train[3:])])
         | normalise.Normalise(W, str(tmp / "transform"), str(tmp / "tmp")))
  return normalise.Transformer(str(tmp / "transform"))


def _graph_constants(transformer, values):
  z, outputs = transformer.graph(values)
  return z, normalise.constants(outputs["__mean"][0], outputs["__std"][0])


def _assert_bits_equal(values, transformer):
  graph, c = _graph_constants(transformer, values)
  mine = normalise.apply_constants(values, c)
  np.testing.assert_array_equal(mine.view(np.uint32), graph.view(np.uint32))
  return c, mine


def test_graph_statistics_cover_the_edge_cases(transformer):
  _, outputs = transformer.graph(np.full((1, W, F), np.nan, np.float32))
  c = normalise.constants(outputs["__mean"][0], outputs["__std"][0])
  # Constant in train: its train value, scaled by the population std.
  assert c.centre[STEPS] == 10.0
  assert c.scale[STEPS] == np.float32(FEATURES[STEPS].population_std)
  assert normalise.statistics(outputs)["steps"]["source"] == normalise.CONSTANT
  assert outputs["__count"][0][TEMP] == 0
  assert c.centre[TEMP] == np.float32(FEATURES[TEMP].population_mean)
  assert c.scale[TEMP] == np.float32(FEATURES[TEMP].population_std)
  assert (c.low >= -NORMALISED_CLIP).all() and (c.high <= NORMALISED_CLIP).all()
  assert normalise.statistics(outputs)["HR"]["source"] == normalise.TRAIN


def test_numpy_equals_graph_on_edge_cases(transformer):
  """Clip range ends and beyond, z exactly at the bounds, the centre, NaN, +-inf and
  -0, for the constant, unobserved and ordinary features."""
  _, c = _graph_constants(transformer, np.zeros((1, W, F), np.float32))
  edges = normalise.edge_windows(c, W)
  _, z = _assert_bits_equal(edges, transformer)
  assert np.isnan(edges).any() and np.isinf(edges).any()
  assert (z[np.isnan(edges)] == 0).all()
  assert (z[np.isposinf(edges)] == np.broadcast_to(c.high, edges.shape)[np.isposinf(edges)]).all()
  assert z[:, :, STEPS].max() == NORMALISED_CLIP  # +-5 clip reached


def test_numpy_equals_graph_on_random_data(transformer):
  rng = np.random.default_rng(3)
  spread = HIGH - LOW
  values = (LOW - spread + 3 * spread * rng.random((300, W, F))).astype(np.float32)
  values[rng.random(values.shape) < 0.2] = np.nan
  values[rng.random(values.shape) < 0.01] *= np.float32(1e30)
  _assert_bits_equal(values, transformer)


def test_transformer_checks_then_uses_numpy(tmp_path, transformer):
  fresh = normalise.Transformer(transformer._transform_dir)
  rng = np.random.default_rng(5)
  first, later = (LOW + (HIGH - LOW) * rng.uniform(-0.5, 1.5, (2, 40, W, F))).astype(np.float32)
  graph_first = transformer.graph(first)[0]
  np.testing.assert_array_equal(fresh(first).view(np.uint32), graph_first.view(np.uint32))
  assert fresh.statistics["wrist_temperatures"]["source"] == normalise.POPULATION
  np.testing.assert_array_equal(fresh(later).view(np.uint32),
                                transformer.graph(later)[0].view(np.uint32))


def test_guard_fires_on_wrong_constants(monkeypatch, transformer):
  values = np.full((2, W, F), 50.0, np.float32)
  graph, c = _graph_constants(transformer, values)
  off = c._replace(centre=np.nextafter(c.centre, np.float32(np.inf)))
  with pytest.raises(normalise.TransformMismatch, match=r"differs from the saved "
                     r"tf.Transform graph in \d+ of 416 values \(.*HR \d+"):
    normalise.check_equal(values, graph, off)
  real = normalise.constants
  monkeypatch.setattr(normalise, "constants",
                      lambda mean, std: real(mean, std)._replace(scale=real(mean, std).scale * 2))
  with pytest.raises(normalise.TransformMismatch):
    normalise.Transformer(transformer._transform_dir)(values)


def test_subnormal_values_go_through_the_graph(transformer):
  """TensorFlow flushes subnormal inputs and results to zero, numpy keeps them: such a
  batch is deferred to the graph, so the records still equal the graph's bits."""
  tiny = np.nextafter(np.float32(0), np.float32(1))
  values = np.full((2, W, F), 50.0, np.float32)
  values[0, 0, :] = tiny
  values[1, 1, :] = -tiny * 1000
  graph, c = _graph_constants(transformer, values)
  assert normalise.apply_constants(values, c) is None
  ready = normalise.Transformer(transformer._transform_dir)
  ready(np.full((1, W, F), 50.0, np.float32))  # first call: the check
  np.testing.assert_array_equal(ready(values).view(np.uint32), graph.view(np.uint32))
  # The constants flush a subnormal bound as TensorFlow does.
  flushed = normalise.constants(np.full(F, 1e-30, np.float32), np.full(F, 1e10, np.float32))
  low = np.array([f.clip_range[0] for f in FEATURES], np.float32)
  assert (flushed.low[low == 0] == 0).all()
