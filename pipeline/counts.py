"""Counts that reconcile: every stage emits dicts of counts; one global sum goes to the manifest.

Counts travel as PCollection elements (not only Beam metrics) so that the manifest is
written inside the pipeline on every runner; each increment also feeds a Beam
metrics counter of the same name for live monitoring.
"""

from __future__ import annotations

import collections

import apache_beam as beam
from apache_beam.metrics import Metrics

COUNTS = "counts"
DEAD_LETTER = "dead_letter"


def emit(counts: dict) -> beam.pvalue.TaggedOutput:
  """A tagged counts element; also increments the matching Beam counters."""
  for name, value in counts.items():
    if value:
      Metrics.counter("lsm", name).inc(int(value))
  return beam.pvalue.TaggedOutput(COUNTS, {k: int(v) for k, v in counts.items() if v})


class SumCounts(beam.CombineFn):
  def create_accumulator(self):
    return collections.Counter()

  def add_input(self, accumulator, counts):
    accumulator.update(counts)
    return accumulator

  def merge_accumulators(self, accumulators):
    total = collections.Counter()
    for accumulator in accumulators:
      total.update(accumulator)
    return total

  def extract_output(self, accumulator):
    return dict(sorted(accumulator.items()))
