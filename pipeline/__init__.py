"""Beam pipeline: raw per-minute wearable streams to normalised window shards."""

import os

# tf.keras as Keras 2 (tf_keras, which tf.Transform's layers use): importing
# TensorFlow then skips Keras 3 and the scikit-learn it pulls in, seconds of every
# pipeline run's start (and of each worker process's) (timings: benchmarks/README.md).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
