"""The canonical raw input formats, written by lsm-synth and read by lsm-pipeline.

Long layout: one reading per row, columns LONG_COLUMNS. Wide layout: one timestamp
per row, columns WIDE_ID_COLUMNS followed by any of the 26 feature names (or their
aliases); an empty cell is no reading. Timestamps are ISO 8601 with a UTC offset
(e.g. 2024-03-01T08:15:00+01:00); sub-minute timestamps are allowed and are reduced
per feature by its aggregation rule. pipeline/parse.py also reads the other
unambiguous forms (no 'T', 'Z', '+0100', Apple's ' -0800', epoch seconds or
milliseconds, Parquet timestamp types) and, with --tz, local times without offset.
Files are CSV (optionally .gz), Parquet or JSON lines (.jsonl, one object per row
with the same keys as the CSV columns).

Accounting, so that nothing is lost silently. A *row* is a CSV/JSONL line or a
Parquet row. A row fails whole for one of ROW_REASONS and is dead-lettered as one
entry. A row that parses yields *readings*: one in the long layout, one per
non-empty feature cell in the wide layout. A reading is either used or dead-lettered
for one of READING_REASONS. Hence, per run:
  rows_read     == rows_parsed + sum(rows dead-lettered by reason)
  readings_read == readings_used + sum(readings dead-lettered by reason)
where readings_read counts the readings of parsed rows. Several readings of one
feature inside one minute (sub-minute samples) are all used: they are aggregated.
"""

LONG_COLUMNS = ("subject_id", "timestamp", "feature", "value")
WIDE_ID_COLUMNS = ("subject_id", "timestamp")

# Session labels (lsm-synth's labels/sessions.csv, or a study's annotations): one row
# per labelled event. activity is one of constants.ACTIVITY_CLASSES for exercise
# sessions (exercise = 1), or a free name such as "sedentary" or "sleep" for
# non-exercise reference events (exercise = 0). start/end: ISO 8601 with offset,
# end exclusive.
LABEL_COLUMNS = ("subject_id", "start", "end", "activity", "exercise")

ROW_REASONS = (
    "malformed_row",       # wrong number of fields, truncated line, undecodable bytes
    "missing_subject",     # empty subject_id
    "bad_timestamp",       # no form pipeline/parse.py reads, or outside --min_time/--max_time
    "nonexistent_local_time",  # local time inside a spring-forward gap: no UTC instant
    "ambiguous_local_time",    # in a fall-back (repeated) hour whose two passes the row
                               # order cannot tell apart (shuffled rows): never merged
)
READING_REASONS = (
    "unknown_feature",     # feature name (long) or column (wide) not in the table or its aliases
    "non_numeric",         # value that does not parse as a number
    "non_finite",          # nan / inf
    "out_of_range",        # outside the feature's valid (physical) range
    "duplicate",           # a second reading of the same (subject, instant, feature)
    "hrv_low_quality",     # HRV reading in a minute whose hrv_percent_good < 0.2
    "outside_time_range",  # device reading before --min_time or from --max_time on
)
DEAD_LETTER_REASONS = ROW_REASONS + READING_REASONS

# Device exports (pipeline/sources/, README "Bring your own data"). An adapter entry
# covers n_rows consecutive data rows of one file. Dead-letter reasons beyond the above:
# (nonexistent_local_time and ambiguous_local_time, row reasons above, are theirs too.)
ADAPTER_REASONS = (
    "off_wrist",               # the export's own wear information says not worn
    "incomplete_minute",       # raw samples of a minute too sparse to derive features
    "counter_baseline",        # first reading of a cumulative counter, or after a reset/gap
    "unsupported_unit",        # a unit the adapter's conversion table does not list
    "overlapping_source",      # another source of higher priority recorded the same
                               # feature in the same minutes (watch and phone steps)
    "low_confidence",          # the device flags the sample unreliable (Fitbit confidence 0)
)
# Real data kept in extras/extras.jsonl because it is no LSM feature.
EXTRA_REASONS = (
    "not_an_lsm_feature",                   # METs, calories, stress, activity counts...
    "raw_ppg_waveform_not_an_lsm_feature",  # E4 BVP: HR.csv and IBI.csv carry what LSM uses
)
