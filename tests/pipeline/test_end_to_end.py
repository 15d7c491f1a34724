"""lsm-pipeline end to end on a small mixed-format cohort with known problems.

Three runs share this module: one in-process, one with 2 worker processes and the
inputs listed in reverse order (both passing arrays through exchange files, the local
default), one in-process sending the arrays through the runner (--exchange=runner,
Dataflow's default). They must write byte-identical shards and manifest.
"""

import glob
import json
import os

import numpy as np
import pandas as pd
import pytest

from pipeline import main, options as lsm_options
from schemas import manifest, record
from schemas.constants import ACTIVITY_CLASSES
from schemas.features import FEATURES, FEATURE_INDEX, FEATURE_NAMES, HRV_GOOD_FEATURE

W = 120
HRV = [i for i, f in enumerate(FEATURES) if f.hrv_gated]
GOOD = FEATURE_INDEX[HRV_GOOD_FEATURE]


def _write_inputs(raw, root):
  cohort = raw.make_cohort(10, 1300, seed=3, missing=0.25)
  subjects = list(cohort)
  part = lambda names: {s: cohort[s] for s in names}
  wide = raw.wide_frame(part(subjects[:3]), offset_hours=2)
  wide["mystery"] = ""
  first0, values0 = cohort[subjects[0]]
  first2, values2 = cohort[subjects[2]]
  m = int(np.flatnonzero(np.isnan(values2[:, GOOD]) & np.isfinite(values2[:, HRV]).any(1))[0])
  extras = [
      {"subject_id": "", "timestamp": raw.iso(first0 + 1, 30), "HR": "70"},
      {"subject_id": subjects[0], "timestamp": "not a time", "HR": "70"},
      {"subject_id": subjects[1], "timestamp": raw.iso(first0 + 5, 30), "HR": "500"},
      {"subject_id": subjects[1], "timestamp": raw.iso(first0 + 6, 30), "HR": "abc"},
      {"subject_id": subjects[1], "timestamp": raw.iso(first0 + 7, 30), "HR": "inf"},
      {"subject_id": subjects[1], "timestamp": raw.iso(first0 + 8, 30), "mystery": "1"},
      {"subject_id": subjects[2], "timestamp": raw.iso(first2 + m, 30),
       HRV_GOOD_FEATURE: "0.0"},
  ]
  duplicate = wide.iloc[0].copy()
  frame = wide.astype(object).where(wide.notna(), "")
  rows = [frame] + [pd.DataFrame([e]) for e in extras]
  rows.append(pd.DataFrame([duplicate]))
  table = pd.concat(rows, ignore_index=True).fillna("")
  raw.write(table, f"{root}/in/a_wide.csv")
  with open(f"{root}/in/a_wide.csv", "a") as f:
    f.write(f"{subjects[0]},{raw.iso(first0 + 3)}\n")  # a truncated line
  raw.write(raw.long_frame(part(subjects[3:5])), f"{root}/in/b_long.csv.gz")
  parquet = raw.wide_frame(part(subjects[5:8]))
  raw.write(parquet.iloc[:-650], f"{root}/in/c_wide.parquet")  # subject 7 split over 2 files
  raw.write(parquet.iloc[-650:], f"{root}/in/d_wide_rest.csv")
  raw.write(raw.long_frame(part(subjects[8:])), f"{root}/in/e_long.jsonl")
  run = ACTIVITY_CLASSES.index("run")
  with open(f"{root}/sessions.csv", "w") as f:
    f.write("subject_id,start,end,activity,exercise\n")
    f.write(f"{subjects[0]},{raw.iso(first0 + 200)},{raw.iso(first0 + 240)},run,1\n")
    f.write(f"{subjects[5]},{raw.iso(cohort[subjects[5]][0] + 600)},"
            f"{raw.iso(cohort[subjects[5]][0] + 700)},sleep,0\n")
    f.write(f"{subjects[5]},{raw.iso(0)},{raw.iso(10)},walk,1\n")  # far from any data
  # What the pipeline should see, in physical units, after the device rule.
  expected = {s: (first, values.copy()) for s, (first, values) in cohort.items()}
  expected[subjects[2]][1][m, GOOD] = 0.0
  expected[subjects[2]][1][m, HRV] = np.nan
  truth = {
      "dead_letter": {
          "malformed_row": 1, "missing_subject": 1, "bad_timestamp": 1, "out_of_range": 1,
          "non_numeric": 1, "non_finite": 1, "unknown_feature": 1,
          "duplicate": int(np.isfinite(values0[0]).sum()),
          "hrv_low_quality": int(np.isfinite(values2[m, HRV]).sum()),
          "nonexistent_local_time": 0, "ambiguous_local_time": 0, "outside_time_range": 0},
      "label": run,
  }
  truth["rows_read"] = len(table) + 1 + sum(len(p) for p in (  # + the truncated line
      raw.long_frame(part(subjects[3:5])), parquet, raw.long_frame(part(subjects[8:]))))
  return expected, truth


@pytest.fixture(scope="module")
def runs(tmp_path_factory, raw):
  root = str(tmp_path_factory.mktemp("e2e"))
  expected, truth = _write_inputs(raw, root)
  inputs = [f"{root}/in/*.csv", f"{root}/in/*.csv.gz", f"{root}/in/*.parquet",
            f"{root}/in/*.jsonl"]
  common = [f"--window_minutes={W}", f"--labels={root}/sessions.csv", "--num_shards=2",
            "--split=0.6,0.2,0.2"]
  main.run(raw.pipeline_args(inputs, f"{root}/one", *common))
  main.run(raw.pipeline_args(inputs[::-1], f"{root}/two", *common, "--direct_num_workers=2",
                             "--direct_running_mode=multi_processing"))
  main.run(raw.pipeline_args(inputs, f"{root}/runner", *common, "--exchange=runner"))
  return root, expected, truth


def _records(out, dataset="pretrain"):
  m = manifest.load(out)
  return {split: [record.decode(data) for path, _ in manifest.shards(out, split, dataset, m)
                  for data in _read(path)] for split in ("train", "valid", "test")}


def _read(path):
  import grain.python as grain
  source = grain.ArrayRecordDataSource([path])
  return [source[i] for i in range(len(source))]


def test_byte_identical_with_one_and_two_workers_and_either_exchange(runs):
  root = runs[0]
  names = sorted(os.path.relpath(p, f"{root}/one") for p in
                 glob.glob(f"{root}/one/*/*.array_record") + [f"{root}/one/manifest.json"])
  assert len(names) == 2 * 3 * 2 + 1
  for other in ("two", "runner"):
    for name in names:
      with open(f"{root}/one/{name}", "rb") as a, open(f"{root}/{other}/{name}", "rb") as b:
        assert a.read() == b.read(), (other, name)
  assert not os.path.exists(f"{root}/one/tmp")  # the exchange files are gone


def test_counts_reconcile_and_match_the_injected_problems(runs):
  root, _, truth = runs
  counts = manifest.load(f"{root}/one")["counts"]
  assert counts["rows"]["read"] == truth["rows_read"]
  assert counts["dead_letter"] == truth["dead_letter"]
  with open(os.path.join(lsm_options.default_dead_letter_dir(f"{root}/one"), lsm_options.DEAD_LETTER_FILE)) as f:
    letters = [json.loads(line) for line in f]
  rows_and_readings = sum(truth["dead_letter"].values()) - truth["dead_letter"]["hrv_low_quality"]
  assert len(letters) == rows_and_readings + 1  # hrv_low_quality: one entry per run
  assert sum(counts["subjects"].values()) == 10
  assert counts["labels"] == {"rows_read": 3, "rows_parsed": 3}


def test_train_statistics_are_numpy_over_observed_train_values(runs):
  root, expected, _ = runs
  by_hash = {record.subject_hash(s, b"test-key"): v for s, v in expected.items()}
  train = _records(f"{root}/one")["train"]
  assert train
  values = np.concatenate([by_hash[r["subject"]][1][r["start"] - by_hash[r["subject"]][0]:
                                                    r["start"] - by_hash[r["subject"]][0] + W]
                           for r in train])
  stats = manifest.load(f"{root}/one")["train_statistics"]
  got = np.array([[stats[n]["mean"], stats[n]["std"]] for n in FEATURE_NAMES])
  np.testing.assert_allclose(got[:, 0], np.nanmean(values, axis=0), rtol=1e-5)
  np.testing.assert_allclose(got[:, 1], np.nanstd(values, axis=0), rtol=1e-4)
  assert [stats[n]["count"] for n in FEATURE_NAMES] == np.isfinite(values).sum(0).tolist()
  for r in train[:5]:  # values invert to the physical ones; the mask is the raw one
    raw_values = by_hash[r["subject"]][1][r["start"] - by_hash[r["subject"]][0]:][:W]
    np.testing.assert_array_equal(r["mask"], np.isfinite(raw_values))
    np.testing.assert_allclose(np.where(r["mask"], r["values"] * got[:, 1] + got[:, 0], np.nan),
                               raw_values, rtol=1e-4, atol=1e-3 * got[:, 1].max())


def test_subjects_disjoint_and_no_raw_ids_written(runs):
  root = runs[0]
  records = _records(f"{root}/one")
  subjects = {split: {r["subject"] for r in rs} for split, rs in records.items()}
  assert sum(map(len, subjects.values())) == len(set().union(*subjects.values())) == 10
  for split, rs in records.items():
    assert all(r["split"] == split for r in rs)
  for path in glob.glob(f"{root}/one/**", recursive=True):
    if os.path.isfile(path):  # the dead letters (raw content) live beside the output
      with open(path, "rb") as f:
        assert b"subject-0" not in f.read(), path


def test_labelled_dataset(runs):
  root, _, truth = runs
  m = manifest.load(f"{root}/one")
  windows = [r for rs in _records(f"{root}/one", "labelled").values() for r in rs]
  assert m["counts"]["windows"]["labelled"]["cut"] == 3
  assert m["counts"]["windows"]["labelled"]["dropped"] == {"missing_ratio_above_max": 1}
  assert sorted((r["label"], r["exercise"]) for r in windows) == [(-1, 0), (truth["label"], 1)]
  run_window = next(r for r in windows if r["exercise"] == 1)
  assert (run_window["minute_labels"] == truth["label"]).sum() == 40
