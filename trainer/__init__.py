"""JAX trainer: a Grain-fed Flax masked autoencoder over the pipeline's shards.

TensorFlow is never imported here.
"""

import os as _os

# etils.epath would route gs:// through tf.io.gfile whenever TensorFlow is
# installed; the trainer uses its fsspec backend instead (see trainer/paths.py).
_os.environ.setdefault("EPATH_USE_TF", "false")
