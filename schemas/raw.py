"""The canonical raw input formats, written by lsm-synth and read by lsm-pipeline.

Long layout: one reading per row, columns LONG_COLUMNS. Wide layout: one timestamp
per row, columns WIDE_ID_COLUMNS followed by any of the 26 feature names (or their
aliases); an empty cell is a missing reading. Timestamps are ISO 8601 with a UTC
offset (e.g. 2024-03-01T08:15:00+01:00); sub-minute timestamps are allowed and are
aggregated per feature. Files are CSV (optionally .gz), Parquet or JSON lines.

The unit of accounting is the reading: one (subject, timestamp, feature, value). Every
reading read is either used or dead-lettered with one of DEAD_LETTER_REASONS, so
readings_read == readings_used + sum(dead-lettered by reason).
"""

LONG_COLUMNS = ("subject_id", "timestamp", "feature", "value")
WIDE_ID_COLUMNS = ("subject_id", "timestamp")

# Label table (lsm-synth's labels/sessions.csv, or a study's annotations).
LABEL_COLUMNS = ("subject_id", "start", "end", "activity", "exercise")

DEAD_LETTER_REASONS = (
    "malformed_row",       # wrong number of fields, truncated line, undecodable bytes
    "missing_subject",     # empty subject_id
    "bad_timestamp",       # timestamp not ISO 8601 with an offset
    "unknown_feature",     # feature name not in the table or its aliases
    "non_numeric",         # value that does not parse as a number
    "non_finite",          # nan / inf
    "out_of_range",        # outside the feature's valid (physical) range
    "duplicate",           # identical (subject, timestamp, feature) reading seen before
    "hrv_low_quality",     # HRV reading in a minute whose hrv_percent_good < 0.2
)
