"""The Beam transforms produce exactly what the direct generator and lsm-synth produce."""

import filecmp
import os

import apache_beam as beam
import numpy as np
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that

from pipeline.synthetic import beam as synth_beam
from pipeline.synthetic import physiology

SEED, SUBJECTS, DAYS = 3, 3, 2


def _pipeline():
  # The Python FnApiRunner, chosen explicitly: nothing downloads a Prism runner.
  return test_pipeline.TestPipeline(runner=FnApiRunner())


def test_generate_cohort_equals_direct_generator():
  def check(subjects):
    subjects = sorted(subjects, key=lambda s: s.index)
    assert [s.index for s in subjects] == list(range(SUBJECTS))
    for s in subjects:
      direct = physiology.generate_subject(SEED, s.index, DAYS)
      assert s.subject_id == direct.subject_id and s.events == direct.events
      assert np.array_equal(s.values, direct.values, equal_nan=True)

  with _pipeline() as p:
    subjects = p | synth_beam.GenerateCohort(SEED, SUBJECTS, DAYS)
    assert_that(subjects, check)


def test_write_cohort_matches_lsm_synth_byte_for_byte(make_cohort, tmp_path):
  out = str(tmp_path / "beam")
  with _pipeline() as p:
    _ = (p | synth_beam.GenerateCohort(SEED, SUBJECTS, DAYS)
         | synth_beam.WriteCohort(out, SUBJECTS, DAYS, SEED, layout="long", fmt="csv.gz",
                                  dirty=True, subjects_per_file=2))
  direct = make_cohort(subjects=SUBJECTS, days=DAYS, seed=SEED, layout="long", fmt="csv.gz",
                       dirty=True, workers=1, subjects_per_file=2)
  names = sorted(os.path.relpath(os.path.join(d, f), direct)
                 for d, _, files in os.walk(direct) for f in files)
  assert len([n for n in names if n.startswith("raw/")]) == 4
  for name in names:
    assert filecmp.cmp(os.path.join(direct, name), os.path.join(out, name), shallow=False), name
