"""Synthetic wearable cohort generator (lsm-synth)."""
