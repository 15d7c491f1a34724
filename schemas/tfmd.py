"""tensorflow-metadata Schema for tf.Transform, derived from the feature table.

One row per window. Each LSM feature is a float column of WINDOW_MINUTES values in
time order, NaN where the minute is missing (so NaN is allowed, infinities are not);
its float_domain is the feature's clip range. The pipeline's preprocessing_fn reads
the mask from NaN, so the analysers see only observed values.
"""

from __future__ import annotations

from tensorflow_metadata.proto.v0 import schema_pb2

from schemas.constants import WINDOW_MINUTES
from schemas.features import FEATURES


def window_schema(window_minutes: int = WINDOW_MINUTES) -> schema_pb2.Schema:
  """The Schema: one FLOAT column [window_minutes] per LSM feature (LSM order), its
  float_domain the feature's clip range (physical units), tagged group/unit/agg."""
  schema = schema_pb2.Schema()
  for feature in FEATURES:
    column = schema.feature.add()
    column.name = feature.name
    column.type = schema_pb2.FLOAT
    column.shape.dim.add(size=window_minutes)
    column.presence.min_fraction = 1.0
    column.float_domain.name = feature.name
    column.float_domain.min, column.float_domain.max = feature.clip_range
    column.float_domain.disallow_inf = True
    column.annotation.tag.extend(
        [f"group:{feature.group}", f"unit:{feature.unit}", f"agg:{feature.aggregation}"])
  return schema
