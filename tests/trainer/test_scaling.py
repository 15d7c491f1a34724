"""lsm-scaling on a tiny grid: the arms' subsets, records, fits, comparison, resume."""

import json
import os
import subprocess

import pytest

from trainer import scaling
from trainer.configs import scaling as scaling_config


def sweep_config(data_dir):
  config = scaling_config.get_config()
  config.data_dir = data_dir
  config.data_size = "nano"
  config.subjects = "1,2,4"
  config.windows_per_subject = 4
  config.data_steps = 3
  config.model_sizes = "pico,nano"
  config.param_subjects = 4
  config.min_steps = 3
  config.tokens_per_parameter = 0.001
  config.fewer_subjects = 2
  config.evals_per_run = 1
  config.train.batch_size = 8
  config.train.eval_batches = 1
  config.train.async_checkpoints = False
  return config


def test_sweep_trains_both_arms_fits_and_resumes(labelled_data_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path / "sweep")
  results = scaling.sweep(sweep_config(labelled_data_dir), workdir)
  runs = {r["name"]: r for r in results["runs"]}
  assert list(runs) == ["nano_s1_w4", "nano_s2_w4", "nano_s4_w4", "pico_s4", "nano_s4",
                        "nano_s2_as_s4_w4"]
  # 64 train windows over 8 subjects: 8 per subject. The data arm takes each subject's
  # first 4; the parameter arm all of theirs; the comparison as many windows as the
  # largest data run (16) from half the subjects.
  assert [runs[f"nano_s{n}_w4"]["train_windows"] for n in (1, 2, 4)] == [4, 8, 16]
  assert runs["nano_s4"]["train_windows"] == 32
  assert runs["nano_s2_as_s4_w4"]["train_windows"] == 16
  assert runs["nano_s2_as_s4_w4"]["train_subjects"] == 2
  subset = json.load(open(os.path.join(workdir, "data", "nano_s2_w4", "manifest.json")))
  assert subset["subset"]["train_subjects"][0] in json.load(open(os.path.join(
      workdir, "data", "nano_s4_w4", "manifest.json")))["subset"]["train_subjects"]
  for run in runs.values():
    assert run["val_loss"] > 0 and run["params"] > 0 and run["flops"] > 0
    assert run["steps"] == 3 and run["curve"][-1][0] == pytest.approx(run["flops"])
    assert run["val_loss"] == min(loss for _, loss in run["curve"])
  assert runs["pico_s4"]["params"] < runs["nano_s4"]["params"]
  # Three data sizes: the data fit runs (exact with 3 points); two sizes cannot fit
  # parameters, and say so.
  fits = results["scaling"]
  assert "error" not in fits["data"] and fits["data"]["n"] == 3
  assert fits["data"]["x_key"] == "train_windows"
  assert "distinct x" in fits["params"]["error"]
  for axis in ("data", "params", "compute"):
    assert os.path.getsize(os.path.join(workdir, f"scaling_{axis}.png")) > 1000
  comparison = results["fewer_subjects"]
  assert comparison["fewer"]["train_subjects"] == 2 and comparison["more"]["train_subjects"] == 4
  md = open(os.path.join(workdir, "scaling.md")).read()
  assert "## Scaling laws" in md and "nano_s2_as_s4_w4" in md and "fewer subjects" in md
  # Resume: finished runs are read back, never retrained.
  def refuse(*args, **kwargs):
    raise AssertionError("a finished run was retrained")
  monkeypatch.setattr(scaling, "train_run", refuse)
  again = scaling.sweep(sweep_config(labelled_data_dir), workdir)
  assert again["runs"] == results["runs"]
  # A finished run planned differently now (steps, or how it trains) is an error, not
  # a silent mix of budgets.
  for key, value in (("data_steps", 5), ("mask_strategy", "extrapolation"),
                     ("early_stopping_evals", 1)):
    changed = sweep_config(labelled_data_dir)
    changed[key] = value
    with pytest.raises(scaling.SweepError, match="nano_s1_w4.*use a new --workdir"):
      scaling.sweep(changed, workdir)


def test_token_steps_follow_parameters_above_the_floor():
  config = scaling_config.get_config()
  steps = {size: scaling.token_steps(config, size) for size in ("pico", "mini", "tiny")}
  assert steps["pico"] == config.min_steps
  assert steps["mini"] < steps["tiny"]
  # tiny: 6 tokens per parameter of 2,363,660 at 32 windows x 180 patches a step.
  assert steps["tiny"] == -(-6 * 2363660 // (32 * 180))


def test_choose_windows_caps_each_subject_or_deals_round_robin():
  records = {"a": [b"a0", b"a1", b"a2"], "b": [b"b0"], "c": [b"c0", b"c1"]}
  assert scaling.choose_windows(records, ["a", "b"], per_subject=2) == [b"a0", b"a1", b"b0"]
  assert scaling.choose_windows(records, ["a", "b", "c"]) == [b"a0", b"a1", b"a2", b"b0",
                                                              b"c0", b"c1"]
  assert scaling.choose_windows(records, ["a", "c"], total=4) == [b"a0", b"c0", b"a1", b"c1"]
  with pytest.raises(ValueError, match="2 subjects hold 3 windows; the comparison run needs 6"):
    scaling.choose_windows(records, ["b", "c"], total=6)


@pytest.mark.parametrize("key, value, message", [
    ("fewer_subjects", -2, r"config.fewer_subjects=-2: must be at least 0"),
    ("fewer_subjects", 8, r"config.fewer_subjects=8: 1/8 of 4 subjects is less than one"),
    ("data_size", "huge", r"unknown size 'huge'; expected one of \['pico'"),
    ("evals_per_run", 0, r"config.evals_per_run=0: must be at least 1"),
    ("tokens_per_parameter", 0.0, r"tokens_per_parameter=0.0: must be positive")])
def test_bad_sweep_settings_stop_before_anything_trains(labelled_data_dir, tmp_path,
                                                        monkeypatch, key, value, message):
  monkeypatch.setattr(scaling, "train_run", lambda *a: pytest.fail("a run was trained"))
  config = sweep_config(labelled_data_dir)
  config[key] = value
  with pytest.raises(scaling.SweepError, match=message):
    scaling.sweep(config, str(tmp_path))


def test_a_comparison_run_that_cannot_be_filled_stops_before_anything_trains(
    labelled_data_dir, tmp_path, monkeypatch):
  monkeypatch.setattr(scaling, "train_run", lambda *a: pytest.fail("a run was trained"))
  config = sweep_config(labelled_data_dir)
  config.windows_per_subject = 0   # the largest data run: all 32 windows of 4 subjects
  with pytest.raises(scaling.SweepError, match=r"config.fewer_subjects=2: 2 subjects hold "
                     r"16 windows; the comparison run needs 32"):
    scaling.sweep(config, str(tmp_path))


def test_lsm_scaling_prints_a_sweep_error_in_one_line(labelled_data_dir, tmp_path, python,
                                                     subprocess_env, repo_dir):
  out = subprocess.run([python, "-m", "trainer.scaling", "--config=trainer/configs/scaling.py",
                        f"--workdir={tmp_path}", f"--config.data_dir={labelled_data_dir}",
                        "--config.subjects=2,50"], cwd=repo_dir, env=subprocess_env(),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  assert out.stderr.strip().splitlines()[-1].startswith("lsm-scaling: "), out.stderr[-500:]
  assert "has 8 subjects, the sweep asks for up to 64" in out.stderr


def test_lsm_scaling_names_an_override_of_a_field_the_config_lacks(tmp_path, python,
                                                                  subprocess_env, repo_dir):
  out = subprocess.run([python, "-m", "trainer.scaling", "--config=trainer/configs/scaling.py",
                        f"--workdir={tmp_path}", "--config.train.batch_sise=8"], cwd=repo_dir,
                       env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  assert out.stderr.strip().splitlines()[-1] == (
      "lsm-scaling: --config.train.batch_sise: the config has no field 'batch_sise'; did "
      "you mean 'batch_size'?")


def test_sweep_asking_for_more_subjects_than_exist_is_an_error(labelled_data_dir, tmp_path):
  config = sweep_config(labelled_data_dir)
  config.subjects = "2,50"
  with pytest.raises(ValueError, match="has 8 subjects, the sweep asks for up to 50"):
    scaling.sweep(config, str(tmp_path))
