"""Beam pipeline: raw per-minute wearable streams to normalised window shards."""

import gc
import importlib.abc
import os
import sys

# tf.keras as Keras 2 (tf_keras, which tf.Transform's layers use): importing
# TensorFlow then skips Keras 3 and the scikit-learn it pulls in, seconds of every
# pipeline run's start (and of each worker process's) (timings: benchmarks/README.md).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


class _NoJaxForTfLite(importlib.abc.MetaPathFinder):
  """Refuses `import jax` only while tensorflow.lite.python.util is being imported.

  That module imports JAX when it is installed (the trainer's) for TF Lite's JAX
  converter, which the pipeline never uses; its ImportError fallback (`_jit = None`)
  is TF's own. Saves ~0.6 s of every pipeline process's start (launcher and each
  worker; benchmarks/README.md). Any other import of JAX is untouched.
  """

  def find_spec(self, name, path=None, target=None):
    if name == "jax":
      util = sys.modules.get("tensorflow.lite.python.util")
      if getattr(getattr(util, "__spec__", None), "_initializing", False):
        raise ModuleNotFoundError("lsm-pipeline does not import JAX for TF Lite",
                                  name=name)
    return None


if not any(isinstance(f, _NoJaxForTfLite) for f in sys.meta_path):
  sys.meta_path.insert(0, _NoJaxForTfLite())

# Python's cyclic collector by default runs a young-generation pass every 700
# allocations. A pipeline process's start allocates millions of long-lived objects
# (Beam, TensorFlow and tf.Transform's modules, ~300 transforms, traced graphs), so it
# runs thousands of passes that find nothing to free: ~0.8 s of a small run's ~8 s
# start-up in the launcher, and again in each worker process, which imports this
# package when it unpickles the pipeline's functions (benchmarks/README.md, "Pipeline
# throughput"). The pipeline's data lives in numpy and Arrow buffers, which the
# collector does not track, so collecting this rarely costs ~15 MB at start-up. The
# middle and oldest generations are collected 5x and 10x less often than by Python's
# default (50 and 100 instead of 10): full passes over the imported modules cost most.
gc.set_threshold(100_000, 50, 100)
