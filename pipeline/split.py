"""Stage 6, AssignSplit: subject hash to train/valid/test by a salted hash.

The split depends only on the (already keyed) subject hash and the salt, so one
subject always lands in one split, in every run and on every worker.
"""

from __future__ import annotations

import hashlib
import typing

import apache_beam as beam

from schemas.constants import SPLITS


def split_of(subject: str, fractions, salt: str) -> str:
  digest = hashlib.sha256(f"{salt}\0{subject}".encode("ascii")).digest()
  u = int.from_bytes(digest[:8], "big") / 2.0**64
  total = 0.0
  for split, fraction in zip(SPLITS, fractions):
    total += fraction
    if u < total:
      return split
  return next(s for s, f in reversed(list(zip(SPLITS, fractions))) if f > 0)


class AssignSplit(beam.PTransform):
  """(subject, value) -> (subject, (split, value))."""

  def __init__(self, fractions, salt: str):
    super().__init__()
    self._fractions, self._salt = tuple(fractions), salt

  def expand(self, keyed):
    """split: one of schemas.constants.SPLITS, a salted hash of the subject hash
    against the (train, valid, test) fractions, so a subject's data stays in one split."""
    fractions, salt = self._fractions, self._salt
    value = beam.typehints.TypeVariable("V")
    return keyed | "Split" >> beam.MapTuple(
        lambda subject, value: (subject, (split_of(subject, fractions, salt), value))
    ).with_input_types(typing.Tuple[str, value]).with_output_types(
        typing.Tuple[str, typing.Tuple[str, value]])
