"""lsm-scaling on a tiny grid: subsets by subject, records, fits, resume."""

import json
import os

from trainer import scaling
from trainer.configs import scaling as scaling_config


def sweep_config(data_dir):
  config = scaling_config.get_config()
  config.data_dir = data_dir
  config.model_sizes = "nano"
  config.subjects = "1,2,4"
  config.train.batch_size = 8
  config.train.num_train_steps = 3
  config.train.eval_every_steps = 3
  config.train.eval_batches = 1
  config.train.checkpoint_every_steps = 3
  config.train.async_checkpoints = False
  config.train.learning_rate = 1e-3
  return config


def test_sweep_fits_and_resumes(labelled_data_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path / "sweep")
  results = scaling.sweep(sweep_config(labelled_data_dir), workdir)
  runs = {r["name"]: r for r in results["runs"]}
  assert set(runs) == {"nano_s1", "nano_s2", "nano_s4"}
  # 64 train windows over 8 subjects: 8 per subject, nested subsets.
  assert [runs[f"nano_s{n}"]["train_windows"] for n in (1, 2, 4)] == [8, 16, 32]
  subset = json.load(open(os.path.join(workdir, "data", "subjects_2", "manifest.json")))
  assert len(subset["subset"]["train_subjects"]) == 2
  assert subset["subset"]["train_subjects"][0] in json.load(open(os.path.join(
      workdir, "data", "subjects_4", "manifest.json")))["subset"]["train_subjects"]
  for run in runs.values():
    assert run["val_loss"] > 0 and run["params"] > 0 and run["flops"] > 0
    assert run["windows_seen"] == 3 * 8 and run["steps"] == 3
  # Three data sizes of the largest model: the data fit runs (exact with 3 points);
  # one model size cannot fit parameters, and says so.
  data_fit = results["scaling"]["data"]
  assert "error" not in data_fit and data_fit["n"] == 3 and data_fit["x_key"] == "train_subjects"
  assert "distinct x" in results["scaling"]["params"]["error"]
  for axis in ("data", "params", "compute"):
    assert os.path.getsize(os.path.join(workdir, f"scaling_{axis}.png")) > 1000
  md = open(os.path.join(workdir, "scaling.md")).read()
  assert "## Scaling laws" in md and "nano_s4" in md
  # Resume: finished runs are read back, never retrained.
  def refuse(*args, **kwargs):
    raise AssertionError("a finished run was retrained")
  monkeypatch.setattr(scaling, "train_run", refuse)
  again = scaling.sweep(sweep_config(labelled_data_dir), workdir)
  assert again["runs"] == results["runs"]


def test_sweep_asking_for_more_subjects_than_exist_is_an_error(labelled_data_dir, tmp_path):
  import pytest
  config = sweep_config(labelled_data_dir)
  config.subjects = "2,50"
  with pytest.raises(ValueError, match="has 8 subjects, the sweep asks for up to 50"):
    scaling.sweep(config, str(tmp_path))
