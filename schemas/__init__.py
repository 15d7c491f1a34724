"""The one definition of the data that pipeline and trainer share.

schemas.features: the 26 LSM features. schemas.constants: window and patch shapes.
schemas.record: the window record (ArrayRecord bytes). schemas.raw: canonical raw
input formats and dead-letter reasons. schemas.tfmd: the tf.Transform schema
(imported on demand: it needs tensorflow-metadata, which the trainer does not load).
"""

from schemas.constants import (ACTIVITY_CLASSES, FEATURE_PAD_AFTER, FEATURE_PAD_BEFORE,
                               MAX_MISSING_RATIO, NORMALISED_CLIP, NUM_FEATURES,
                               PADDED_FEATURES, PATCH_FEATURES, PATCH_MINUTES, SPLITS,
                               UNKNOWN_LABEL, WINDOW_MINUTES)
from schemas.features import (ALIASES, FEATURE_INDEX, FEATURE_NAMES, FEATURES,
                              HRV_GOOD_FEATURE, HRV_GOOD_THRESHOLD, SENSOR_GROUPS, Feature,
                              canonical_name, feature_array, features_in_group)
from schemas import record
