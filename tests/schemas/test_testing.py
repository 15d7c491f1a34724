"""schemas.testing writes data directories that the manifest and record readers accept."""

import subprocess
import sys

from array_record.python.array_record_module import ArrayRecordReader
import numpy as np

from schemas import manifest as manifest_lib
from schemas import record
from schemas import testing


def test_write_data_dir_is_a_valid_pipeline_output(tmp_path):
  data_dir = testing.write_data_dir(str(tmp_path), {"train": 5, "valid": 2}, shards=2,
                                    labelled={"train": 4}, subjects=2)
  manifest = manifest_lib.load(data_dir)
  manifest_lib.check_listed(data_dir, manifest)
  shards = manifest_lib.shards(data_dir, "train")
  assert [n for _, n in shards] == [3, 2]
  reader = ArrayRecordReader(shards[0][0])
  windows = [record.decode(data) for data in reader.read_all()]
  reader.close()
  assert [w["subject"] for w in windows] == [f"{i % 2:032x}" for i in range(3)]
  assert windows[0]["values"].shape == (300, 26) and windows[0]["split"] == "train"
  np.testing.assert_array_equal(windows[0]["values"][~windows[0]["mask"]], 0)
  labelled = manifest_lib.shards(data_dir, "train", "labelled")
  assert sum(n for _, n in labelled) == 4


def test_importing_it_loads_neither_tensorflow_nor_the_trainer():
  code = ("import sys, schemas.testing; "
          "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'trainer', 'jax')]; "
          "assert not bad, bad")
  subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
