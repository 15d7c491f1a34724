"""lsm-impute / lsm-embed: unit tests of the filling arithmetic, and one end-to-end run.

The end-to-end fixture builds a real pre-training run (lsm-synth cohort -> lsm-pipeline
-> a briefly trained nano model) and a held-out synthetic recording of one subject
with gaps cut into it whose truth is known, then runs `python -m trainer.impute` (its
pipeline step in a subprocess, as a user would).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from schemas import prepared
from schemas.features import FEATURE_NAMES, feature_array
from trainer import impute

KEY = "test-key"
CLIP = feature_array("clip_range")
# Gaps cut into the held-out recording (minutes from its first): short ones the model
# fills from both sides, and one long outage whose middle is beyond the horizon.
GAPS = ((200, 230), (400, 460), (700, 720), (900, 1300))
HORIZON = 60


# --------------------------------------------------------------------------- units

def test_window_offsets_cover_every_minute_with_overlap():
  from pipeline import prepare
  for minutes in (1, 299, 300, 301, 451, 1000):
    offsets = prepare.window_offsets(minutes, 300, 150)
    covered = np.zeros(minutes, int)
    for o in offsets:
      covered[o:o + 300] += 1
    assert covered.min() >= 1, minutes
    assert offsets[-1] == max(minutes - 300, 0)
  assert prepare.window_offsets(1000, 300, 150).tolist() == [0, 150, 300, 450, 600, 700]


def test_blend_is_a_weighted_mean_of_the_covering_windows():
  predictions = np.stack([np.full((4, 1), 1.0), np.full((4, 1), 3.0)]).astype(np.float32)
  out = impute.blend(predictions, np.array([0, 2]), 6)
  w = impute.blend_weights(4)  # [0.5, 1, 1, 0.5]
  assert out[:2, 0].tolist() == [1.0, 1.0] and out[4:, 0].tolist() == [3.0, 3.0]
  assert out[2, 0] == pytest.approx((w[2] * 1 + w[0] * 3) / (w[2] + w[0]))
  assert np.isnan(impute.blend(predictions[:1], np.array([0]), 6)[5, 0])


def test_distance_to_observed_per_feature():
  observed = np.zeros((7, 2), bool)
  observed[[1, 5], 0] = True
  d = impute.distance_to_observed(observed)
  assert d[:, 0].tolist() == [1, 0, 1, 2, 1, 0, 1]
  assert (d[:, 1] > 10**9).all()  # never observed: beyond any horizon


def test_transform_fingerprint_changes_with_any_file(tmp_path):
  folder = tmp_path / "transform"
  (folder / "sub").mkdir(parents=True)
  (folder / "sub" / "a.pb").write_bytes(b"graph")
  first = prepared.transform_fingerprint(str(folder))
  assert first == prepared.transform_fingerprint(str(folder))
  (folder / "sub" / "a.pb").write_bytes(b"graph2")
  assert prepared.transform_fingerprint(str(folder)) != first
  with pytest.raises(prepared.PreparedError, match="no saved transform graph"):
    prepared.transform_fingerprint(str(tmp_path / "empty"))


def test_check_transform_refuses_another_graph():
  impute.check_transform({"transform_sha256": "a" * 64}, "a" * 64, "pre")
  with pytest.raises(impute.ImputeError, match="not the model's pre-training graph"):
    impute.check_transform({"transform_sha256": "b" * 64}, "a" * 64, "pre")


def test_subject_day_plots(tmp_path):
  from trainer import impute_plots
  piece = {"start": 19444 * 1440 + 1380,  # 2023-03-28 23:00 UTC: two days
           "value": np.ones((120, 26), np.float32),
           "status": np.full((120, 26), impute.OBSERVED, np.int8),
           "sd": np.full((120, 26), np.nan, np.float32)}
  piece["status"][10:20, 0] = impute.IMPUTED
  table = impute.subject_table("ab" * 16, [piece], np.array([0]))
  paths = impute_plots.subject_days(table, ["HR"], str(tmp_path))
  assert [os.path.basename(p) for p in paths] == ["abababababababab_2023-03-28.png",
                                                  "abababababababab_2023-03-29.png"]
  assert all(os.path.getsize(p) > 1000 for p in paths)


# --------------------------------------------------------------------- end to end

def _env():
  env = dict(os.environ, LSM_SUBJECT_HASH_KEY=KEY)
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _recording(folder: str) -> tuple[pd.DataFrame, str]:
  """A held-out subject (another cohort seed), one reading per whole minute, values
  inside each feature's clip range (so alignment keeps them as they are); returns the
  full truth and the path of the copy with GAPS cut out."""
  from pipeline.synthetic import main as synth
  synth.generate(1, 1, seed=7, output=os.path.join(folder, "heldout"), fmt="parquet")
  raw = pd.read_parquet(os.path.join(folder, "heldout", "raw", "part-00000.parquet"))
  stamp = pd.to_datetime(raw["timestamp"], utc=True, format="ISO8601")
  raw = raw[stamp.dt.second == 0].copy()
  raw["timestamp"] = stamp[stamp.dt.second == 0].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
  for i, name in enumerate(FEATURE_NAMES):
    raw[name] = raw[name].clip(*CLIP[i]).astype(np.float32)
  raw = raw.reset_index(drop=True)
  minute = _minutes(raw["timestamp"])
  offset = minute - minute[0]
  keep = np.ones(len(raw), bool)
  for a, b in GAPS:
    keep &= ~((offset >= a) & (offset < b))
  path = os.path.join(folder, "recording.parquet")
  raw[keep].to_parquet(path)
  raw["minute"] = minute
  return raw, path


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_config):
  """(pre-training output, workdir, truth, recording path, output folder)."""
  from pipeline import main as pipeline_main
  from pipeline.synthetic import main as synth
  from trainer import train
  folder = str(tmp_path_factory.mktemp("impute"))
  synth.generate(8, 2, seed=0, output=os.path.join(folder, "synth"), fmt="parquet")
  pre = os.path.join(folder, "pre")
  os.environ.setdefault("LSM_SUBJECT_HASH_KEY", KEY)
  pipeline_main.run([f"--input={folder}/synth/raw/*", f"--output={pre}",
                     "--split=0.75,0.125,0.125", "--stride_minutes=60"])
  workdir = os.path.join(folder, "run")
  train.train_and_evaluate(make_config(pre, num_train_steps=120, batch_size=16,
                                       learning_rate=2e-3, eval_every_steps=120,
                                       checkpoint_every_steps=120), workdir)
  truth, recording = _recording(folder)
  out = os.path.join(folder, "out")
  proc = subprocess.run(
      [sys.executable, "-m", "trainer.impute", f"--checkpoint={workdir}",
       f"--input={recording}", f"--output={out}", f"--horizon_minutes={HORIZON}",
       "--noplots", "--csv"], env=_env(), capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return pre, workdir, truth, recording, out


def _minutes(stamps) -> np.ndarray:
  """int64 UTC minutes since the epoch of datetimes or ISO strings (any resolution)."""
  stamps = pd.to_datetime(pd.Series(stamps), utc=True)
  return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(minutes=1)).to_numpy(np.int64)


def _output(out: str) -> pd.DataFrame:
  return pq.read_table(os.path.join(out, "imputed.parquet")).to_pandas()


def test_minute_count_is_the_input_span(run):
  _, _, truth, _, out = run
  table = _output(out)
  kept = truth[~np.isin(truth["minute"] - truth["minute"].iloc[0],
                        np.r_[tuple(np.arange(a, b) for a, b in GAPS)])]
  span = kept["minute"].iloc[-1] - kept["minute"].iloc[0] + 1
  assert len(table) == span
  minutes = _minutes(table["minute"])
  assert (np.diff(minutes) == 1).all() and minutes[0] == kept["minute"].iloc[0]
  assert table["subject"].nunique() == 1 and len(table["subject"].iloc[0]) == 32
  assert "synth" not in table["subject"].iloc[0]  # the keyed hash, never the raw id
  csv = pd.read_csv(os.path.join(out, "imputed.csv"))
  assert len(csv) == span


def test_observed_minutes_pass_through_bit_for_bit(run):
  _, _, truth, recording, out = run
  table = _output(out).set_index(
      _minutes(_output(out)["minute"]))
  given = pd.read_parquet(recording)
  minute = _minutes(given["timestamp"])
  checked = 0
  for name in FEATURE_NAMES:
    if name not in table:
      continue
    have = given[name].notna().to_numpy()
    assert (table.loc[minute[have], f"{name}_status"] == "observed").all(), name
    got = table.loc[minute[have], name].to_numpy(np.float32)
    assert np.array_equal(got.view(np.uint32),
                          given[name].to_numpy(np.float32)[have].view(np.uint32)), name
    checked += have.sum()
  assert checked > 10_000
  # The CSV's text reads back to the same float32 values.
  csv = pd.read_csv(os.path.join(out, "imputed.csv"))
  np.testing.assert_array_equal(csv["HR"].to_numpy(np.float32),
                                table["HR"].to_numpy(np.float32))


def test_horizon_leaves_far_minutes_missing(run):
  _, _, truth, _, out = run
  table = _output(out)
  offset = (_minutes(table["minute"])
            - truth["minute"].iloc[0])
  a, b = GAPS[-1]  # 400 minutes without any reading
  status = table["HR_status"].astype(str).to_numpy()
  near = ((offset >= a) & (offset < a + HORIZON)) | ((offset >= b - HORIZON) & (offset < b))
  far = (offset >= a + HORIZON) & (offset < b - HORIZON)
  assert (status[near] == "imputed").all()
  assert (status[far] == "missing").all() and np.isnan(table["HR"].to_numpy()[far]).all()


def test_imputed_minutes_beat_mean_fill(run):
  """The short gaps, scored in normalised units over every feature with truth there
  (metrics as lsm-eval's): a 120-step nano model is no LSM, so the bound is the one
  baseline it must beat, the training mean, and the MAE is printed with linear
  interpolation's for comparison (benchmarks/generative_quality.py is the real
  measurement)."""
  import json
  pre, _, truth, _, out = run
  stats = json.load(open(os.path.join(pre, "manifest.json")))["train_statistics"]
  table = _output(out)
  offset = (_minutes(table["minute"])
            - truth["minute"].iloc[0])
  truth = truth.set_index(truth["minute"] - truth["minute"].iloc[0])
  rows = np.concatenate([np.arange(a, b) for a, b in GAPS[:3]])
  errors = {"model": [], "mean_fill": [], "linear": []}
  for name in FEATURE_NAMES:
    s = stats[name]
    scale = s["std"] or 1.0
    real = truth[name].reindex(rows).to_numpy()
    known = ~np.isnan(real)
    if not known.any() or name not in table:
      continue
    status = table[f"{name}_status"].astype(str).to_numpy()[np.isin(offset, rows)]
    assert (status[known] == "imputed").all(), name
    got = table[name].to_numpy()[np.isin(offset, rows)]
    linear = table[name].where(table[f"{name}_status"].astype(str) == "observed"
                               ).interpolate(limit_area="inside").to_numpy()[
        np.isin(offset, rows)]
    errors["model"].append(np.abs(got - real)[known] / scale)
    errors["mean_fill"].append(np.abs(s["mean"] - real)[known] / scale)
    errors["linear"].append(np.abs(linear - real)[known] / scale)
  mae = {k: float(np.mean(np.concatenate(v))) for k, v in errors.items()}
  print("normalised MAE over the short gaps:", mae)
  assert mae["model"] < mae["mean_fill"]


def test_a_different_transform_is_refused(run, tmp_path):
  pre, workdir, _, _, out = run
  other = str(tmp_path / "other_pre")
  shutil.copytree(pre, other)
  with open(os.path.join(other, "transform", "transformed_metadata", "extra"), "w") as f:
    f.write("another run's graph")
  proc = subprocess.run(
      [sys.executable, "-m", "trainer.impute", f"--checkpoint={workdir}",
       f"--prepared={out}/prepared", f"--output={tmp_path}/o", f"--data={other}"],
      env=_env(), capture_output=True, text=True, check=False)
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("lsm-impute: the windows were normalised with transform graph")
  assert "not the model's pre-training graph" in last
  assert not os.path.exists(tmp_path / "o" / "imputed.parquet")


def test_embed_one_row_per_window(run, tmp_path):
  _, workdir, _, _, out = run
  from trainer import inference
  model = inference.load(workdir)
  rows = impute.embed(model, os.path.join(out, "prepared"), str(tmp_path))
  table = pq.read_table(tmp_path / impute.EMBEDDINGS_NAME).to_pandas()
  meta = prepared.load_meta(os.path.join(out, "prepared"))
  assert rows == len(table) == sum(
      len(g["offsets"]) for g in prepared.grids(os.path.join(out, "prepared"), meta))
  assert len(table["embedding"].iloc[0]) == model.model_config.hidden
  assert table["window_start"].is_monotonic_increasing
