"""Shape constants shared by pipeline and trainer; defined once here."""

from schemas.features import FEATURE_NAMES

WINDOW_MINUTES = 300          # one LSM training example: 300 per-minute rows
NUM_FEATURES = len(FEATURE_NAMES)  # 26
PATCH_MINUTES = 10            # default patch: 10 minutes x 5 features
PATCH_FEATURES = 5
PADDED_FEATURES = 30          # 26 features zero-padded to 30 so 5-feature patches tile them
FEATURE_PAD_BEFORE = (PADDED_FEATURES - NUM_FEATURES) // 2   # 2 padded rows before ...
FEATURE_PAD_AFTER = PADDED_FEATURES - NUM_FEATURES - FEATURE_PAD_BEFORE  # ... and 2 after
MAX_MISSING_RATIO = 0.5       # LSM drops windows with more than half of the values missing
NORMALISED_CLIP = 5.0         # z-scores are clipped to [-5, 5]

# Exercise labels: LSM's 8 activity classes, in a fixed order (class id = index).
ACTIVITY_CLASSES = ("weightlifting", "swim", "elliptical", "walk", "run", "bike",
                    "hiit", "strength_training")
UNKNOWN_LABEL = -1

SPLITS = ("train", "valid", "test")
