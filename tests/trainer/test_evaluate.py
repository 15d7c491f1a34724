"""lsm-eval end to end on small shards, fine-tuning heads, identical masks."""

import json
import os

import numpy as np
import pytest

from schemas import record
from trainer import evaluate, evaluators, finetune, inference, models, train
from trainer.evaluators import data as eval_data
from trainer.evaluators import discriminative, generative


@pytest.fixture(scope="module")
def trained(labelled_data_dir, make_config, tmp_path_factory):
  """A nano model pre-trained a few steps (mixture masking) on the labelled fixture."""
  workdir = str(tmp_path_factory.mktemp("run"))
  config = make_config(labelled_data_dir, num_train_steps=8, **{"mask.strategy": "mixture"})
  train.train_and_evaluate(config, workdir)
  return workdir


@pytest.fixture(scope="module")
def results(trained, labelled_data_dir):
  """Run with a workdir relative to the current directory, as `make demo` gives it."""
  cwd = os.getcwd()
  os.chdir(os.path.dirname(trained))
  try:
    return evaluate.evaluate(
        os.path.basename(trained), labelled_data_dir, ["generative", "discriminative"],
        export=True, mice_max_iter=2, mice_jobs=1, cross_feature_windows=16, seeds=(0, 1),
        shots=(5, 10),
        finetune_steps=4, few_shot_finetune_steps=2, finetune_batch=8, plot_windows=2)
  finally:
    os.chdir(cwd)


def test_results_hold_every_task_and_method(results, trained):
  assert set(results["generative"]) == set(generative.TASKS)
  for task, methods in results["generative"].items():
    assert set(methods) == {"model", "mean_fill", "linear_interpolation", "nearest", "mice",
                            "cross_feature"}
    for entry in methods.values():
      assert entry["mae"] > 0 and entry["mse"] > 0 and entry["count"] > 0
      assert set(entry["per_feature"]) and "steps" in entry["per_feature"]
    assert task in results["improvement"]["generative"]
  # The model's numbers come from the model: none equals a baseline's.
  for task, methods in results["generative"].items():
    baselines = [methods[m]["mae"] for m in methods if m != "model"]
    assert all(abs(methods["model"]["mae"] - b) > 1e-9 for b in baselines), task
  for task in ("exercise_detection", "activity_recognition"):
    assert set(results["discriminative"][task]) == {"linear_probe", "fine_tune", "supervised",
                                                  "random_forest"}
    for entry in results["discriminative"][task].values():
      assert 0 <= entry["accuracy"] <= 1 and entry["runs"] == 2
      assert {"accuracy_std", "macro_f1_std", "map_std"} <= set(entry)
  # Few-shot: 5 per class exists (6 per class in the fixture) with spread over 2 seeds;
  # 10-shot is skipped for activity (too few examples), and the notes say why.
  few = results["discriminative"]["activity_recognition_5_shot"]
  assert set(few) == {"linear_probe", "fine_tune", "supervised", "random_forest"}
  assert few["linear_probe"]["runs"] == few["supervised"]["runs"] == 2
  assert few["linear_probe"]["accuracy_std"] >= 0
  assert "activity_recognition_10_shot" not in results["discriminative"]
  notes = results["meta"]["notes"]["discriminative_tasks"]["activity_recognition"]
  assert "fewer than the 10" in notes["10_shot_skipped"]
  assert "exercise_detection_10_shot" in results["discriminative"]
  eval_dir = os.path.join(trained, "eval")
  for caption, path in results["figures"].items():
    assert os.path.getsize(os.path.join(eval_dir, path)) > 1000, caption
  assert {"training curve", "generative tasks", "discriminative tasks",
          "reconstructions, interpolation_30m"} <= set(results["figures"])
  with open(os.path.join(eval_dir, "results.json")) as f:
    assert json.load(f)["generative"] == results["generative"]
  report = open(os.path.join(eval_dir, "report.md")).read()
  assert "interpolation_30m" in report and "Budget" in report
  # The data summary: the windows and class counts behind the numbers, and what was
  # skipped; the time each phase took.
  assert "## Data" in report
  notes = results["meta"]["notes"]
  assert notes["cross_feature"].startswith("fitted on 16 pretrain train windows of ")
  basis = results["data"]["generative tasks rest on"]
  assert set(basis) == set(generative.TASKS)
  assert basis["interpolation_30m"]["windows"] == 16  # every test window is scored
  assert 1 <= basis["interpolation_30m"]["subjects"] <= 8
  assert "- interpolation_30m: rests on 16 windows of " in report
  assert results["data"]["exercise_detection"]["test subjects"] >= 1
  assert "few-shot not run 10-shot (class 0 (weightlifting) has 6 training" in report
  assert results["data"]["activity_recognition"]["train class counts"]["swim"] == 6
  assert results["data"]["windows per split"]["labelled"] == {"train": 96, "test": 32}
  assert {"load", "generative", "discriminative", "figures"} <= set(
      results["meta"]["seconds_by_phase"])


def test_embeddings_export_is_keyed_and_readable(results, trained, labelled_data_dir):
  data = np.load(os.path.join(trained, "eval", "embeddings.npz"), allow_pickle=False)
  n = len(data["embedding"])
  assert n == 16 + 96 + 32  # pretrain test, labelled train, labelled test
  for key in ("subject", "start", "dataset", "split", "label", "exercise"):
    assert len(data[key]) == n
  assert data["embedding"].shape[1] == models.ModelConfig.from_config(
      inference.load_config(trained).model).hidden
  assert np.isfinite(data["embedding"]).all()
  keys = set(zip(data["dataset"], data["subject"], data["start"]))
  assert len(keys) == n  # (dataset, subject hash, start) identifies a window
  assert all(len(s) == 32 for s in data["subject"])


def test_every_method_sees_identical_masks(labelled_data_dir, monkeypatch):
  windows = eval_data.read_windows(labelled_data_dir, "pretrain", "test")
  seen = {}

  def recorder(name):
    def method(values, observed, hidden):
      seen.setdefault(name, []).append((values.copy(), observed.copy(), hidden.copy()))
      return np.zeros_like(values)
    return method

  class FakeModel:
    reconstruct = staticmethod(recorder("model"))

  monkeypatch.setattr(generative, "generative_methods", lambda *a, **k: {
      "model": FakeModel.reconstruct, "mean_fill": recorder("mean_fill"),
      "mice": recorder("mice")})
  tasks = ["interpolation_30m", "sensor_imputation_6"]
  _, masks, _ = generative.run_generative(FakeModel(), windows, tasks, None, seed=3,
                                        mice_max_iter=1, mice_jobs=1)
  for i, task in enumerate(tasks):
    calls = [seen[m][i] for m in ("model", "mean_fill", "mice")]
    for values, observed, hidden in calls[1:]:
      np.testing.assert_array_equal(hidden, calls[0][2])
      np.testing.assert_array_equal(values, calls[0][0])
    np.testing.assert_array_equal(calls[0][2], masks[task])
    assert not calls[0][0][masks[task]].any()  # hidden values never reach a method
  again = generative.task_masks(tasks[::-1], len(windows["values"]), 3, (300, 26))
  for task in tasks:  # same seed: same masks, whatever the task order
    np.testing.assert_array_equal(again[task], masks[task])


def test_few_shot_methods_train_on_the_same_draws(labelled_data_dir, make_config,
                                                  monkeypatch):
  """Pre-trained and from-scratch few-shot runs, the probe and the random forest see,
  seed by seed, the same k examples per class; no JAX training: the classifier is
  recorded."""
  from trainer import forest, probe
  train = eval_data.read_windows(labelled_data_dir, "labelled", "train")
  test = eval_data.read_windows(labelled_data_dir, "labelled", "test")
  pretrained = {"encoder": "checkpoint parameters"}
  model = type("FakeModel", (), {
      "config": make_config(labelled_data_dir), "params": pretrained,
      "embed": staticmethod(lambda values, observed: values.mean(axis=1))})()
  classifier_calls, probe_calls = [], []

  def fake_classifier(values, observed, labels, num_classes, model_config, *,
                      pretrained=None, config=None, seed=0):
    classifier_calls.append({"scratch": pretrained is None, "steps": config.steps,
                             "seed": seed, "labels": labels.copy(),
                             "embedding": values.mean(axis=1), "classes": num_classes,
                             "statistics": forest.window_summary_statistics(values, observed)})
    return lambda v, o: np.full((len(v), num_classes), 1 / num_classes)

  real_probe = probe.linear_probe

  def recording_probe(train_x, train_y, *args, seed=0, **kwargs):
    probe_calls.append({"seed": seed, "embedding": train_x.copy(), "labels": train_y})
    return real_probe(train_x, train_y, *args, seed=seed, **kwargs)

  forest_calls = []
  real_forest = forest.random_forest

  def recording_forest(train_x, train_y, *args, seed=0, **kwargs):
    forest_calls.append({"seed": seed, "statistics": train_x.copy(), "labels": train_y})
    return real_forest(train_x, train_y, *args, seed=seed, **kwargs)

  monkeypatch.setattr(finetune, "train_classifier", fake_classifier)
  monkeypatch.setattr(probe, "linear_probe", recording_probe)
  monkeypatch.setattr(forest, "random_forest", recording_forest)
  full, few = finetune.FinetuneConfig(steps=3), finetune.FinetuneConfig(steps=2)
  results, _ = discriminative.run_discriminative(
      model, train, test, ["activity_recognition"], seeds=(0, 1), shots=(5, 10),
      finetune_config=full, few_shot_config=few)
  assert set(results["activity_recognition_5_shot"]) == {"linear_probe", "fine_tune",
                                                         "supervised", "random_forest"}
  assert "activity_recognition_10_shot" not in results  # 6 per class: skipped
  assert results["activity_recognition_5_shot"]["supervised"]["runs"] == 2
  shot_runs = [c for c in classifier_calls if c["steps"] == 2]
  assert len(shot_runs) == 4  # (pre-trained, scratch) x 2 seeds
  draws = {}
  for seed in (0, 1):
    pre, scratch = (next(c for c in shot_runs if c["seed"] == seed and c["scratch"] == s)
                    for s in (False, True))
    np.testing.assert_array_equal(pre["labels"], scratch["labels"])
    np.testing.assert_array_equal(pre["embedding"], scratch["embedding"])
    assert np.bincount(pre["labels"], minlength=8).tolist() == [5] * 8
    probe_draw = next(c for c in probe_calls if c["seed"] == seed and len(c["labels"]) == 40)
    np.testing.assert_array_equal(probe_draw["embedding"], pre["embedding"])
    forest_draw = next(c for c in forest_calls if c["seed"] == seed and len(c["labels"]) == 40)
    np.testing.assert_array_equal(forest_draw["statistics"], pre["statistics"])
    np.testing.assert_array_equal(forest_draw["labels"], pre["labels"])
    draws[seed] = pre["embedding"]
  assert not np.array_equal(draws[0], draws[1])  # a new draw per seed
  # Full-data runs: every training window, pre-trained and scratch.
  assert sorted(c["scratch"] for c in classifier_calls if c["steps"] == 3) == [
      False, False, True, True]


def test_classifier_scores_have_the_right_shape(labelled_data_dir, trained):
  windows = eval_data.read_windows(labelled_data_dir, "labelled", "train")
  model = inference.load(trained)
  config = finetune.FinetuneConfig(steps=2, batch_size=8)
  x, m = windows["values"][:20], windows["observed"][:20]
  y = np.arange(20) % 8
  for pretrained in (model.params, None):
    predict = finetune.train_classifier(x, m, y, 8, model.model_config,
                                        pretrained=pretrained, config=config)
    scores = predict(x[:11], m[:11])
    assert scores.shape == (11, 8)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-5)
  # Fine-tuning starts from the checkpoint's encoder, not a random one.
  classifier = finetune.Classifier(model.model_config, 8)
  params = finetune.init_params(classifier, 0, model.params)
  np.testing.assert_array_equal(params["mae"]["patch_embedding"]["kernel"],
                                model.params["patch_embedding"]["kernel"])
  scratch = finetune.init_params(classifier, 0, None)
  assert not np.array_equal(scratch["mae"]["patch_embedding"]["kernel"],
                            model.params["patch_embedding"]["kernel"])


def test_unknown_task_is_an_error():
  with pytest.raises(ValueError, match="unknown task 'interpolation_7m'"):
    evaluators.resolve_tasks(["interpolation_7m"])


def test_cli_help_exits_zero(python, subprocess_env):
  import subprocess
  out = subprocess.run([python, "-c", "from trainer.evaluate import main; main()", "--help"],
                       env=subprocess_env(), capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert "export_embeddings" in out.stdout and "--max_windows" in out.stdout


def test_evaluation_process_never_imports_tensorflow(python, subprocess_env,
                                                     labelled_data_dir):
  import subprocess
  code = f"""
import sys
import numpy as np
from trainer import evaluate, finetune, inference, scaling, metrics
from trainer.evaluators import data as eval_data
from trainer.evaluators import generative
w = eval_data.read_windows({labelled_data_dir!r}, "labelled", "test", max_windows=4)
masks = generative.task_masks(["interpolation_30m"], 4, 0, (300, 26))
import types
model = types.SimpleNamespace(reconstruct=lambda v, o, h: np.zeros_like(v))
methods = generative.generative_methods(model, 1, 1, 0)
metrics.score_tasks(methods, w["values"], w["observed"], masks)
assert "tensorflow" not in sys.modules, "tensorflow was imported"
"""
  out = subprocess.run([python, "-c", code], env=subprocess_env(), capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("how, reason", [("record", "record checksum mismatch"),
                                         ("chunk", "chunk data hash mismatch")])
def test_a_corrupt_record_names_its_shard_and_index(labelled_data_dir, tmp_path,
                                                    corrupt_copy, how, reason):
  data, shard = corrupt_copy(str(tmp_path / "data"), labelled_data_dir, "test", 1, 3, how)
  with pytest.raises(record.RecordError, match=f"^{shard}: record 3: .*{reason}"):
    eval_data.read_windows(data, "pretrain", "test")
  assert len(eval_data.read_windows(data, "pretrain", "valid")["values"]) == 16


def lsm_eval_error(python, env, *flags, timeout=300) -> str:
  """Runs lsm-eval with flags, expecting it to fail with a one-line error (exit 1, no
  traceback); returns that last stderr line."""
  import subprocess
  out = subprocess.run([python, "-c", "from trainer.evaluate import main; main()", *flags],
                       env=env, capture_output=True, text=True, timeout=timeout)
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  return out.stderr.strip().splitlines()[-1]


def test_lsm_eval_names_a_truncated_manifest_in_one_line(labelled_data_dir, tmp_path,
                                                         python, subprocess_env):
  import shutil
  data = tmp_path / "data"
  shutil.copytree(labelled_data_dir, data)
  (data / "manifest.json").write_text((data / "manifest.json").read_text()[:300])
  last = lsm_eval_error(python, subprocess_env(), f"--workdir={tmp_path / 'run'}",
                        f"--data={data}")
  assert last.startswith(
      f"lsm-eval: {data / 'manifest.json'}: not valid JSON (truncated or corrupted?): ")


def test_sensor_imputation_over_a_span_hides_k_features_for_that_many_minutes():
  masks = generative.task_masks(["sensor_imputation_6_60m", "sensor_imputation_12_60m",
                                 "sensor_imputation_2"], 4, 0, (300, 26))
  for task, k, span in (("sensor_imputation_6_60m", 6, 60),
                        ("sensor_imputation_12_60m", 12, 60), ("sensor_imputation_2", 2, 300)):
    for hidden in masks[task]:
      features = np.flatnonzero(hidden.any(axis=0))
      minutes = np.flatnonzero(hidden.any(axis=1))
      assert len(features) == k and hidden.sum() == k * span, task
      assert minutes[-1] - minutes[0] + 1 == span, task


def test_basis_counts_the_windows_subjects_and_features_behind_a_task():
  observed = np.ones((3, 10, 4), bool)
  observed[:, :, 3] = False  # never observed: cannot be judged
  observed[2] = False  # window 2 has nothing at all
  windows = {"observed": observed, "subject": np.array(["a", "a", "b"])}
  hidden = np.zeros_like(observed)
  hidden[:, 2:5, 1:] = True
  basis = generative.basis(windows, hidden, ["f0", "f1", "f2", "f3"])
  assert basis == {"windows": 2, "windows_without_visible_input": 0, "subjects": 1,
                   "features_scored": 2, "features": 4,
                   "features_without_scores": ["f0", "f3"],
                   "scored_positions_per_feature": {"f0": 0, "f1": 6, "f2": 6, "f3": 0}}
  hidden[1] = observed[1]  # window 1: everything observed is hidden
  assert generative.basis(windows, hidden, ["f0", "f1", "f2", "f3"])[
      "windows_without_visible_input"] == 1


def _oracle_file(path, windows, order, **extra):
  """An oracle .npz holding each window's own values, rows in `order`."""
  np.savez(path, subject=windows["subject"][order], start=windows["start"][order],
           values=windows["values"][order], **{k: v[order] for k, v in extra.items()})
  return str(path)


def test_oracle_values_are_matched_by_subject_and_start(labelled_data_dir, tmp_path):
  windows = eval_data.read_windows(labelled_data_dir, "pretrain", "test")
  n = len(windows["values"])
  path = _oracle_file(tmp_path / "oracle.npz", windows, np.arange(n)[::-1])
  known = generative.oracle_values(path, windows)
  assert set(known) == {"oracle"}              # a file without smooth values
  np.testing.assert_array_equal(known["oracle"], windows["values"])
  partial = _oracle_file(tmp_path / "partial.npz", windows, np.arange(1, n))
  with pytest.raises(ValueError, match=rf"no oracle values for 1 of {n} windows \(first: "
                     rf"subject {windows['subject'][0]}, start {windows['start'][0]}\)"):
    generative.oracle_values(partial, windows)


def test_oracle_is_scored_on_the_same_positions_as_every_method(labelled_data_dir,
                                                                 tmp_path):
  """No model (the baselines alone) plus an oracle that knows the truth (and a smooth
  one that is 0.5 off): MAE 0 (0.5) on exactly the count of positions every baseline
  is scored on."""
  windows = eval_data.read_windows(labelled_data_dir, "pretrain", "test")
  path = _oracle_file(tmp_path / "oracle.npz", windows,
                      np.random.default_rng(0).permutation(len(windows["values"])),
                      smooth=windows["values"] + np.float32(0.5))
  tasks = ["interpolation_30m", "sensor_imputation_6"]
  results, masks, _ = generative.run_generative(None, windows, tasks, None, seed=3,
                                             mice_max_iter=1, mice_jobs=1, oracle=path)
  for task in tasks:
    methods = results[task]
    assert set(methods) == {"mean_fill", "linear_interpolation", "nearest", "mice", "oracle",
                            "oracle_smooth"}
    count = int((masks[task] & windows["observed"]).sum())
    assert {e["count"] for e in methods.values()} == {count}
    assert methods["oracle"]["mae"] == 0 and methods["mean_fill"]["mae"] > 0
    assert methods["oracle_smooth"]["mae"] == pytest.approx(0.5)


def test_lsm_eval_names_an_unknown_task_in_one_line(tmp_path, python, subprocess_env):
  last = lsm_eval_error(python, subprocess_env(), f"--workdir={tmp_path / 'run'}",
                        f"--data={tmp_path / 'data'}", "--tasks=interpolation_45m")
  assert last.startswith("lsm-eval: --tasks: unknown task 'interpolation_45m'; expected a group")


@pytest.mark.parametrize("flag", ["--seeds=", "--shots=-5", "--shots=0", "--seeds=a",
                                  "--finetune_layer_decay=0", "--finetune_layer_decay=1.5"])
def test_lsm_eval_refuses_bad_numeric_flags_in_one_line(flag, tmp_path, python,
                                                         subprocess_env):
  last = lsm_eval_error(python, subprocess_env(), f"--workdir={tmp_path / 'run'}",
                        f"--data={tmp_path / 'data'}", flag)
  name = flag[2:].split("=")[0]
  assert last.startswith(f"lsm-eval: --{name}="), last


def test_lsm_eval_on_a_folder_that_is_not_a_training_workdir_says_so_in_one_line(
    data_dir, tmp_path, python, subprocess_env):
  (tmp_path / "run").mkdir()
  last = lsm_eval_error(python, subprocess_env(), f"--workdir={tmp_path / 'run'}",
                        f"--data={data_dir}", "--tasks=interpolation_30m")
  assert last.startswith("lsm-eval: ") and last.endswith("no config; is "
                                                        f"{tmp_path / 'run'} an lsm-train workdir?")


def test_lsm_eval_fails_when_nothing_could_be_evaluated(trained, data_dir, tmp_path, python,
                                                        subprocess_env):
  """Discriminative tasks asked of pipeline output without --labels: one line saying
  why, exit 1 (the report is still written)."""
  import shutil
  run = str(tmp_path / "run")
  shutil.copytree(trained, run)
  last = lsm_eval_error(python, subprocess_env(), f"--workdir={run}", f"--data={data_dir}",
                        "--tasks=activity_recognition", timeout=600)
  assert last.startswith("lsm-eval: nothing was evaluated: discriminative tasks skipped"), last
  assert "--labels" in last
