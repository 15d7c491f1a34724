"""The synthetic cohort as Beam transforms, so a 165k-subject cohort runs in parallel.

GenerateCohort yields one element per subject (a physiology.Subject holding numpy
arrays, never one element per minute); WriteCohort writes the same part files,
labels, subjects.csv and truth.json as lsm-synth, byte for byte, through Beam's
FileSystems (local paths or gs://).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.synthetic import main as synth_main
from pipeline.synthetic import physiology


class GenerateCohort(beam.PTransform):
  """PBegin -> Subject for indices 0..num_subjects-1 of cohort `seed`."""

  def __init__(self, seed: int, num_subjects: int, days: int):
    super().__init__()
    if num_subjects < 1 or days < 1:
      raise ValueError(f"need at least 1 subject and 1 day, got {num_subjects} and {days}")
    self.seed, self.num_subjects, self.days = seed, num_subjects, days

  def expand(self, pbegin):
    seed, days = self.seed, self.days
    return (pbegin
            | "Indices" >> beam.Create(range(self.num_subjects))
            | "Spread" >> beam.Reshuffle()
            | "Generate" >> beam.Map(lambda k: physiology.generate_subject(seed, k, days)))


def _create(path: str):
  # Bytes are written as they are: a .gz part is already gzipped by the writer.
  return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _write_bytes(path: str, data: bytes) -> None:
  with _create(path) as f:
    f.write(data)


class WriteCohort(beam.PTransform):
  """Subjects -> the raw files, labels, subjects.csv and truth.json under `output`.

  Subjects are grouped into the CLI's blocks (SUBJECTS_PER_FILE by index) so every
  part file is the one lsm-synth writes. The metadata step gathers one small dict per
  block (label and trait rows plus accounting) into a single writer.
  """

  def __init__(self, output: str, num_subjects: int, days: int, seed: int,
               layout: str = "wide", fmt: str = "csv", dirty: bool = False,
               subjects_per_file: int = synth_main.SUBJECTS_PER_FILE):
    super().__init__()
    self.output, self.num_subjects, self.days, self.seed = output, num_subjects, days, seed
    self.layout, self.fmt, self.dirty = layout, fmt, dirty
    self.per_file = subjects_per_file

  def _write_block(self, keyed) -> dict:
    block, subjects = keyed
    subjects = sorted(subjects, key=lambda s: s.index)
    last = block == (self.num_subjects - 1) // self.per_file
    raw = f"{self.output}/raw"
    return synth_main.write_block(
        subjects, block, self.days, self.layout, self.fmt, self.seed, self.dirty, last,
        lambda name, data: _write_bytes(f"{raw}/{name}", data))

  def _write_metadata(self, blocks) -> dict:
    return synth_main.write_metadata(blocks, self.output, self.layout, self.fmt, self.dirty,
                                     opener=_create)

  def expand(self, subjects):
    for d in (self.output, f"{self.output}/raw", f"{self.output}/labels"):
      if not FileSystems.exists(d):
        FileSystems.mkdirs(d)
    per_file = self.per_file
    return (subjects
            | "Block" >> beam.Map(lambda s: (s.index // per_file, s))
            | "GroupBlocks" >> beam.GroupByKey()
            | "WriteParts" >> beam.Map(self._write_block)
            | "Gather" >> beam.combiners.ToList()
            | "WriteMetadata" >> beam.Map(self._write_metadata))
