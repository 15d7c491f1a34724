"""Beam pipeline: raw per-minute wearable streams to normalised window shards."""
