"""lsm-synth --dirty then lsm-pipeline: the manifest's counts equal truth.json exactly."""

import json
import os

from pipeline import main, options as lsm_options
from pipeline.synthetic.main import generate
from schemas import manifest


def test_dirty_synthetic_cohort_counts_match_truth(tmp_path):
  # Long gzipped CSV: the one combination that can hold every fault kind.
  truth = generate(subjects=3, days=1, seed=7, output=str(tmp_path / "synth"),
                   layout="long", fmt="csv.gz", dirty=True)
  assert sum(truth["injected"].values()) > 0
  with open(tmp_path / "synth" / "truth.json") as f:
    assert json.load(f) == truth
  main.run([f"--input={tmp_path}/synth/raw/*", f"--output={tmp_path}/out",
            f"--labels={tmp_path}/synth/labels/sessions.csv", "--subject_hash_key=k"])
  m = manifest.load(str(tmp_path / "out"))
  counts = m["counts"]
  assert counts["rows"]["dead_lettered"] == truth["expected_dead_letter"]["rows"]
  assert counts["readings"]["dead_lettered"] == truth["expected_dead_letter"]["readings"]
  expected = truth["expected"]
  assert (counts["rows"]["read"], counts["rows"]["parsed"]) == (expected["rows_read"],
                                                                expected["rows_parsed"])
  assert (counts["readings"]["read"], counts["readings"]["used"]) == (
      expected["readings_read"], expected["readings_used"])
  with open(os.path.join(lsm_options.default_dead_letter_dir(str(tmp_path / "out")), lsm_options.DEAD_LETTER_FILE)) as f:
    letters = [json.loads(line) for line in f]
  assert len(letters) == (sum(truth["expected_dead_letter"]["rows"].values())
                          + sum(truth["expected_dead_letter"]["readings"].values()))
  assert sum(counts["subjects"].values()) == 3
  assert sum(e["records"] for split in m["datasets"]["pretrain"].values() for e in split) > 0
  assert sum(e["records"] for split in m["datasets"]["labelled"].values() for e in split) > 0
