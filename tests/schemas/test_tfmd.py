from tensorflow_metadata.proto.v0 import schema_pb2

import schemas
from schemas import tfmd


def test_schema_matches_feature_table():
  schema = tfmd.window_schema()
  assert [c.name for c in schema.feature] == list(schemas.FEATURE_NAMES)
  for column, feature in zip(schema.feature, schemas.FEATURES):
    assert column.type == schema_pb2.FLOAT
    assert [d.size for d in column.shape.dim] == [schemas.WINDOW_MINUTES]
    assert (column.float_domain.min, column.float_domain.max) == feature.clip_range
    assert f"group:{feature.group}" in column.annotation.tag
    assert f"agg:{feature.aggregation}" in column.annotation.tag
    assert column.float_domain.disallow_inf and not column.float_domain.disallow_nan


def test_window_length_is_configurable():
  schema = tfmd.window_schema(window_minutes=60)
  assert {d.size for c in schema.feature for d in c.shape.dim} == {60}


def test_schema_converts_to_a_feature_spec():
  from tensorflow_transform.tf_metadata import schema_utils
  spec = schema_utils.schema_as_feature_spec(tfmd.window_schema()).feature_spec
  assert set(spec) == set(schemas.FEATURE_NAMES)
  assert tuple(spec["HR"].shape) == (schemas.WINDOW_MINUTES,)
