"""The synthetic Beam job (the Dataflow rehearsal) writes lsm-synth's cohort locally."""

import filecmp
import os

from pipeline.synthetic import beam_job


def test_beam_job_writes_the_lsm_synth_cohort(make_cohort, tmp_path):
  out = str(tmp_path / "job")
  beam_job.run(["--subjects=3", "--days=1", "--seed=5", f"--output={out}",
                "--format=parquet", "--direct_num_workers=1"])
  direct = make_cohort(subjects=3, days=1, seed=5, layout="wide", fmt="parquet", dirty=False,
                       workers=1)
  names = sorted(os.path.relpath(os.path.join(d, f), direct)
                 for d, _, files in os.walk(direct) for f in files)
  assert any(n.startswith("raw/") and n.endswith(".parquet") for n in names)
  for name in names:
    assert filecmp.cmp(os.path.join(direct, name), os.path.join(out, name), shallow=False), name


def test_unknown_options_go_to_beam():
  args, beam_argv = beam_job.parse_args(["--subjects=2", "--days=3", "--output=gs://b/s",
                                         "--runner=DataflowRunner", "--max_num_workers=4"])
  assert (args.subjects, args.days, args.output, args.fmt) == (2, 3, "gs://b/s", "csv")
  assert beam_argv == ["--runner=DataflowRunner", "--max_num_workers=4"]
