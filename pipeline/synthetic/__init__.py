"""Synthetic wearable cohort generator (lsm-synth).

physiology: one subject's 26 per-minute features from (seed, index) alone.
writers: raw files in schemas.raw's layouts (long/wide; CSV, CSV.gz, Parquet), labels,
  and --dirty fault injection with exact expected accounting.
beam: GenerateCohort / WriteCohort, the same generator and files as Beam transforms.
beam_job: those transforms as one Beam job (any runner; the Dataflow rehearsal).
plot: one subject's day as a PNG. main: the lsm-synth command.
oracle: the noise-free values of a cohort's pipeline windows (lsm-eval --oracle): the
  lowest error any imputer could reach on them.

Output directory:
  raw/part-NNNNN.<fmt>   blocks of 8 subjects (by index), each block in two time
                         halves, so a subject's rows span two files.
  labels/sessions.csv    schemas.raw.LABEL_COLUMNS: exercise sessions (one of the 8
                         ACTIVITY_CLASSES, exercise=1) and reference events (sleep,
                         sedentary, commute; exercise=0); end exclusive.
  subjects.csv           traits per subject (writers.SUBJECT_COLUMNS).
  truth.json             always written; with --dirty it counts the injected faults:
    rows_written, readings_written: everything in raw/ (readings = long rows, or
      non-empty wide cells, including those of rows that fail);
    injected: {duplicate, out_of_order, mixed_offset, out_of_range, non_numeric,
      non_finite, unknown_feature, bad_timestamp, truncated_line: n};
    expected_dead_letter: {"rows": {ROW_REASONS: n}, "readings": {READING_REASONS: n}};
    expected: {rows_read, rows_parsed, readings_read, readings_used} under schemas.raw's
      accounting (readings_read counts readings of parsed rows only);
    not_applicable: fault kinds a format cannot hold (Parquet: non_numeric,
      truncated_line); plus dirty, layout, format, files.
"""
