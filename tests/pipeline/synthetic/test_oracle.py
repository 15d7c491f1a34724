"""The oracle file: each window's noise-free values, found by (subject hash, start)."""

import json
import os

from array_record.python.array_record_module import ArrayRecordWriter
import numpy as np
import pytest

from pipeline import normalise
from pipeline.synthetic import oracle, physiology
from schemas import manifest as manifest_lib
from schemas import record
from schemas.constants import WINDOW_MINUTES
from schemas.features import FEATURE_NAMES, feature_array

SEED, SUBJECTS, DAYS, KEY = 7, 3, 2, b"oracle-test-key"
MEAN = feature_array("population_mean").astype(np.float32)
STD = feature_array("population_std").astype(np.float32)
CONSTANTS = normalise.constants(MEAN, STD)


def _window(index: int, offset: int, split: str = "test") -> dict:
  """The window the pipeline writes for subject `index` from its minute `offset`."""
  subject = physiology.generate_subject(SEED, index, DAYS)
  raw = subject.values[offset:offset + WINDOW_MINUTES]
  return {"values": normalise.apply_constants(raw[None], CONSTANTS)[0],
          "mask": ~np.isnan(raw), "split": split,
          "subject": record.subject_hash(physiology.subject_id(SEED, index), KEY),
          "start": oracle.first_utc_minute(subject) + offset, "missing_ratio": 0.0,
          "label": -1, "exercise": -1}


def _clean(index: int, offset: int, smooth: bool = False) -> np.ndarray:
  clean = physiology.generate_subject(SEED, index, DAYS, noise_free=True, smooth=smooth).values
  return normalise.apply_constants(clean[None, offset:offset + WINDOW_MINUTES], CONSTANTS)[0]


def _data_dir(path, windows: dict[str, list[dict]]) -> str:
  """A pipeline-like output: one shard per split and the graph's statistics."""
  datasets = {"pretrain": {}}
  for split, ws in windows.items():
    name = manifest_lib.shard_name(split, 0, 1)
    writer = ArrayRecordWriter(os.path.join(path, name), "group_size:1")
    for w in ws:
      writer.write(record.encode(w))
    writer.close()
    datasets["pretrain"][split] = [{"path": name, "records": len(ws)}]
  manifest = {"manifest_version": manifest_lib.MANIFEST_VERSION,
              "record_version": record.VERSION, "window_minutes": WINDOW_MINUTES,
              "feature_names": list(FEATURE_NAMES), "datasets": datasets,
              "train_statistics": {n: {"mean": float(MEAN[i]), "std": float(STD[i]),
                                       "count": 1} for i, n in enumerate(FEATURE_NAMES)}}
  with open(os.path.join(path, manifest_lib.MANIFEST_NAME), "w") as f:
    json.dump(manifest, f)
  return str(path)


def test_first_utc_minute_is_local_midnight_at_the_home_offset():
  subject = physiology.generate_subject(SEED, 0, 1)
  day = np.datetime64(subject.traits["start_date"], "m").astype(np.int64)
  assert oracle.first_utc_minute(subject) == day - subject.tz_offset_minutes


def test_oracle_file_holds_each_windows_noise_free_values(tmp_path):
  cut = {"test": [(2, 1000), (0, 0)], "valid": [(1, DAYS * 1440 - WINDOW_MINUTES)],
         "train": [(0, 300)]}
  data = _data_dir(tmp_path, {s: [_window(k, o, s) for k, o in c] for s, c in cut.items()})
  arrays = oracle.build(data, SEED, SUBJECTS, DAYS, KEY)
  path = str(tmp_path / "oracle.npz")
  oracle.write(path, **arrays)
  with np.load(path, allow_pickle=False) as f:
    subject, start, values, smooth = f["subject"], f["start"], f["values"], f["smooth"]
  expected = {}
  for k, o in cut["test"] + cut["valid"]:                   # no train window
    w = _window(k, o)
    expected[(w["subject"], w["start"])] = (_clean(k, o), _clean(k, o, smooth=True), w)
  assert sorted(zip(subject, start)) == sorted(expected)
  for s, t, v, v_smooth in zip(subject, start, values, smooth):
    clean, clean_smooth, noisy = expected[(s, t)]
    np.testing.assert_array_equal(v, clean)
    np.testing.assert_array_equal(v_smooth, clean_smooth)
    assert np.abs(v - noisy["values"]).max() > 0.1          # the noise is gone
    assert np.abs(v - v_smooth).max() > 0.1                 # and the smooth one differs


@pytest.mark.parametrize("change, error", [
    (dict(start=1), "differs from the window's observed values"),
    (dict(start=DAYS * 1440), r"outside the subject's 2 days"),
    (dict(subject="0" * 32), "not a subject of cohort seed 7 \\(3 subjects\\)")])
def test_a_window_of_other_minutes_or_subjects_is_refused(change, error):
  w = _window(1, 400)
  w = {**w, "start": w["start"] + change.get("start", 0),
       "subject": change.get("subject", w["subject"])}
  with pytest.raises(ValueError, match=error):
    oracle.oracle_windows([w], SEED, SUBJECTS, DAYS, KEY, CONSTANTS)
