"""JAX trainer: a Grain-fed Flax masked autoencoder over the pipeline's shards.

TensorFlow is never imported here.
"""
