"""Training: learning, device-count invariance, exact resume, fallback, NaN stop, no TF."""

import glob
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from trainer import checkpoints as checkpoints_lib
from trainer import input_pipeline as ip
from trainer import summaries
from trainer import train

RESUME_OVERRIDES = {"num_train_steps": 12, "checkpoint_every_steps": 4, "eval_every_steps": 6,
                    "keep_checkpoints": 3}


def step_losses(workdir):
  return {s: m["step_loss"] for s, m in summaries.read_jsonl(
      os.path.join(workdir, "metrics_train.jsonl")).items()}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data_dir, make_config):
  """One uninterrupted run that the resume and fallback tests compare against."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  config = make_config(data_dir, **RESUME_OVERRIDES)
  result = train.train_and_evaluate(config, workdir)
  return config, workdir, result


def test_a_tiny_model_overfits_one_batch(data_dir, make_config):
  config = make_config(data_dir, num_train_steps=120, learning_rate=1e-2,
                       **{"augment.enabled": False})
  trainer = train.Trainer(config)
  batch = trainer.device_batch(next(ip.train_iterator(config)))
  losses = []
  for _ in range(config.num_train_steps):
    trainer.state, metrics = trainer.train_step(trainer.state, batch)
    losses.append(float(metrics["loss"]))
  # Below 0.2x the start and below ~0.5, what predicting each window's level alone scores.
  assert losses[-1] < 0.2 * losses[0] and losses[-1] < 0.4, losses[::10]


def test_run_writes_logs_plots_and_checkpoints(reference_run, read_events):
  config, workdir, result = reference_run
  assert result["step"] == 12 and np.isfinite(result["valid_loss"])
  assert result["flops_per_step"] > 0 and result["windows_per_second"] > 0
  train_events, train_acc = read_events(os.path.join(workdir, "tensorboard", "train"))
  assert {"loss", "learning_rate", "grad_norm", "windows_per_second",
          "flops_per_second"} <= {tag for _, tag in train_events}
  assert sorted({step for step, tag in train_events if tag == "loss"}) == list(range(1, 13))
  valid_events, valid_acc = read_events(os.path.join(workdir, "tensorboard", "valid"))
  assert {(6, "loss"), (12, "loss"), (12, "reconstruction")} <= set(valid_events)
  rows = summaries.read_jsonl(os.path.join(workdir, "metrics_valid.jsonl"))
  assert [e.step for e in valid_acc.Scalars("loss")] == [6, 12]
  assert [e.value for e in valid_acc.Scalars("loss")] == pytest.approx(
      [rows[s]["loss"] for s in (6, 12)])
  image = valid_acc.Images("reconstruction")[-1]
  assert image.width > 500 and image.height > 200
  assert image.encoded_image_string.startswith(b"\x89PNG")
  assert os.path.getsize(os.path.join(workdir, "plots", "validation_0000012.png")) > 10_000
  rows = summaries.read_jsonl(os.path.join(workdir, "metrics_train.jsonl"))
  assert sorted(rows) == list(range(1, 13))
  assert [e.value for e in train_acc.Scalars("loss")] == pytest.approx(
      [rows[s]["loss"] for s in range(1, 13)])
  assert {"loss", "learning_rate", "grad_norm", "windows_per_second",
          "flops_per_second"} <= set(rows[12])
  assert rows[1]["learning_rate"] == 0.0 and rows[2]["learning_rate"] > rows[12]["learning_rate"]
  ckpts = checkpoints_lib.Checkpoints(workdir, read_only=True)
  assert ckpts.all_steps() == [4, 8, 12] and ckpts.best_step() == 12  # the only checkpoint with a validation loss
  ckpts.close()
  assert json.load(open(os.path.join(workdir, "config.json")))["num_train_steps"] == 12


def cli(workdir, data_dir, overrides):
  args = [f"--config.{k}={v}" for k, v in overrides.items()]
  return [sys.executable, "-m", "trainer", "--config=trainer/configs/mae.py:nano",
          f"--workdir={workdir}", f"--config.data_dir={data_dir}", "--config.batch_size=8",
          "--config.learning_rate=0.001", "--config.log_every_steps=1",
          "--config.eval_batches=1", "--config.plot_windows=2",
          "--config.progress_bar=False", *args]


def test_killed_run_resumes_with_the_same_losses(reference_run, data_dir, tmp_path,
                                                  subprocess_env, repo_dir):
  _, ref_dir, _ = reference_run
  workdir = str(tmp_path / "run")
  command = cli(workdir, data_dir, RESUME_OVERRIDES)
  proc = subprocess.Popen(command, cwd=repo_dir, env=subprocess_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  # Complete: committed and checksummed (killed before its checksums, it is set aside).
  first = os.path.join(workdir, "checkpoints", "4", checkpoints_lib.CHECKSUMS_NAME)
  deadline = time.time() + 300
  while not os.path.isfile(first) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  still_running = proc.poll() is None
  proc.send_signal(signal.SIGKILL)
  stderr = proc.communicate()[1].decode()
  assert still_running, f"the run ended before it could be killed:\n{stderr[-3000:]}"
  killed_at = max(step_losses(workdir))
  assert killed_at < 12
  # The same command again, in a fresh process that also reports its imports.
  probe = os.path.join(tmp_path, "modules.json")
  wrapper = ("import atexit, json, runpy, sys\n"
             f"atexit.register(lambda: json.dump(sorted(sys.modules), open({probe!r}, 'w')))\n"
             f"sys.argv = {['lsm-train'] + command[3:]!r}\n"
             "runpy.run_module('trainer', run_name='__main__')\n")
  done = subprocess.run([sys.executable, "-c", wrapper], cwd=repo_dir, env=subprocess_env(),
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "resumed from checkpoint step" in done.stderr
  resumed = step_losses(workdir)
  reference = step_losses(ref_dir)
  assert sorted(resumed) == list(range(1, 13))
  np.testing.assert_allclose([resumed[s] for s in range(1, 13)],
                             [reference[s] for s in range(1, 13)], rtol=1e-6)
  modules = json.load(open(probe))
  assert "trainer.train" in modules and "grain" in modules
  assert not [m for m in modules if m == "tensorflow" or m.startswith("tensorflow.")]


def test_corrupted_latest_checkpoint_falls_back_to_the_previous(reference_run, tmp_path,
                                                                 caplog):
  config, ref_dir, _ = reference_run
  workdir = str(tmp_path / "copy")
  shutil.copytree(ref_dir, workdir)
  for path in glob.glob(os.path.join(workdir, "checkpoints", "12", "state", "**", "*"),
                        recursive=True):
    if os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(b"\x00garbage")
  trainer = train.Trainer(config)
  ckpts = checkpoints_lib.Checkpoints(workdir, async_save=False)
  with caplog.at_level(logging.WARNING):
    step, state, iterator_state = ckpts.restore(trainer.abstract_state())
  ckpts.close()
  assert step == 8 and int(state.step) == 8 and iterator_state == {"next_index": 8}
  assert "checkpoint 12" in caplog.text and "checksum mismatch" in caplog.text
  assert "falling back to checkpoint 8" in caplog.text
  assert os.path.isdir(os.path.join(workdir, "corrupt_checkpoints", "12"))
  # Training on from the fallback reproduces the reference's last steps.
  os.remove(os.path.join(workdir, "metrics_train.jsonl"))
  train.train_and_evaluate(config, workdir)
  resumed, reference = step_losses(workdir), step_losses(ref_dir)
  assert sorted(resumed) == [9, 10, 11, 12]
  np.testing.assert_allclose([resumed[s] for s in resumed], [reference[s] for s in resumed],
                             rtol=1e-6)


def flip_byte(path):
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0x01
  open(path, "wb").write(bytes(data))


def test_every_checkpoint_corrupt_stops_lsm_train_unless_restart_if_corrupt(
    reference_run, data_dir, tmp_path, subprocess_env, repo_dir, caplog):
  config, ref_dir, _ = reference_run
  workdir = str(tmp_path / "copy")
  shutil.copytree(ref_dir, workdir)
  for step in (4, 8, 12):
    files = glob.glob(os.path.join(workdir, "checkpoints", str(step), "state", "**", "*"),
                      recursive=True)
    flip_byte(max((p for p in files if os.path.isfile(p)), key=os.path.getsize))
  done = subprocess.run(cli(workdir, data_dir, RESUME_OVERRIDES), cwd=repo_dir,
                        env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith(f"lsm-train: {os.path.join(workdir, 'checkpoints')}: no intact "
                         "checkpoint: step 12 (state"), last
  assert "step 8 (state" in last and "step 4 (state" in last and "checksum mismatch" in last
  assert "--config.restart_if_corrupt=True" in last
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["12", "4", "8"]
  # Asked to, the run sets them aside and starts over.
  config = config.copy_and_resolve_references()
  config.restart_if_corrupt = True
  config.num_train_steps = 2
  with caplog.at_level(logging.WARNING):
    result = train.train_and_evaluate(config, workdir)
  assert result["step"] == 2 and "starting over from step 1" in caplog.text
  assert sorted(os.listdir(os.path.join(workdir, "corrupt_checkpoints"))) == ["12", "4", "8"]


@pytest.mark.parametrize("override, field", [("model.minute_kernal", "minute_kernal"),
                                             ("mask.no_such_thing.ratio", "no_such_thing")])
def test_lsm_train_names_an_override_of_a_field_the_config_lacks(
    override, field, data_dir, tmp_path, subprocess_env, repo_dir):
  done = subprocess.run(cli(str(tmp_path / "a"), data_dir, {override: 1}), cwd=repo_dir,
                        env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
  assert done.stderr.strip().splitlines()[-1].startswith(
      f"lsm-train: --config.{override}: the config has no field '{field}'")
  assert not os.path.exists(tmp_path / "a")


def test_lsm_train_names_a_bad_manifest_or_record_in_one_line(
    data_dir, tmp_path, subprocess_env, repo_dir, corrupt_copy):
  truncated = tmp_path / "truncated"
  shutil.copytree(data_dir, truncated)
  manifest = truncated / "manifest.json"
  manifest.write_text(manifest.read_text()[:200])
  done = subprocess.run(cli(str(tmp_path / "a"), str(truncated), {}), cwd=repo_dir,
                        env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
  assert done.stderr.strip().splitlines()[-1].startswith(
      f"lsm-train: {manifest}: not valid JSON (truncated or corrupted?): ")
  bad, shard = corrupt_copy(str(tmp_path / "bad"), data_dir, "train", 0, 5, "chunk")
  done = subprocess.run(cli(str(tmp_path / "b"), bad, {"num_train_steps": 8}), cwd=repo_dir,
                        env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
  assert done.stderr.strip().splitlines()[-1].startswith(
      f"lsm-train: {shard}: record 5: Corrupted Riegeli/records file: chunk data hash "
      "mismatch")


def test_non_finite_loss_stops_naming_the_step_and_keeps_good_checkpoints(
    data_dir, make_config, tmp_path):
  # A learning rate of 1e30 (after one warm-up step at 0) blows the weights up at step 2.
  config = make_config(data_dir, learning_rate=1e30, checkpoint_every_steps=1,
                       eval_every_steps=100, plot_windows=0, num_train_steps=20)
  workdir = str(tmp_path)
  with pytest.raises(train.NonFiniteLossError, match="at step 3") as e:
    train.train_and_evaluate(config, workdir)
  assert "last good checkpoint is step 2" in str(e.value)
  ckpts = checkpoints_lib.Checkpoints(workdir, read_only=True)
  assert ckpts.all_steps()[-1] == 2
  ckpts.close()


DEVICE_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from conftest import device_losses
print(json.dumps(device_losses({data!r}, {settings!r}, {steps})))
"""


def losses_on_devices(devices, settings, steps, data_dir, subprocess_env, repo_dir):
  """device_losses in a subprocess with `devices` simulated CPU devices."""
  script = DEVICE_SCRIPT.format(tests=os.path.join(repo_dir, "tests", "trainer"),
                                data=data_dir, settings=settings, steps=steps)
  flags = f"--xla_force_host_platform_device_count={devices}"
  return subprocess.Popen([sys.executable, "-c", script], cwd=repo_dir, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=subprocess_env(XLA_FLAGS=flags, JAX_PLATFORMS="cpu"))


def results_of(process):
  stdout, stderr = process.communicate(timeout=600)
  assert process.returncode == 0, stderr[-3000:]
  return json.loads(stdout.strip().splitlines()[-1])


def test_one_device_and_eight_devices_give_the_same_losses(data_dir, subprocess_env,
                                                           repo_dir, device_losses):
  settings = {"replicated": {"shard_params": False}, "sharded": {"shard_params": True}}
  eight = losses_on_devices(8, settings, 3, data_dir, subprocess_env, repo_dir)
  one = device_losses(data_dir, {"replicated": settings["replicated"]})  # one CPU device
  results = results_of(eight)
  assert one["devices"] == 1 and results["devices"] == 8
  losses = one["losses"]["replicated"]
  assert len(set(losses)) > 1
  np.testing.assert_allclose(results["losses"]["replicated"], losses, rtol=2e-5)
  np.testing.assert_allclose(results["losses"]["sharded"], losses, rtol=2e-5)


def test_the_fast_step_trains_like_the_reference_step_for_20_steps(
    data_dir, subprocess_env, repo_dir, device_losses):
  """The CPU defaults (batched attention, the batch split over one device per core)
  against Flax's attention on one device: the same losses for a fixed seed."""
  fast = losses_on_devices(2, {"fast": {}}, 20, data_dir, subprocess_env, repo_dir)
  reference = device_losses(data_dir, {"flax": {"model.attention": "flax"}}, steps=20)
  results = results_of(fast)
  assert reference["devices"] == 1 and results["devices"] == 2
  losses = reference["losses"]["flax"]
  assert len(set(losses)) == 20 and losses[-1] < losses[0]
  np.testing.assert_allclose(results["losses"]["fast"], losses, rtol=1e-4)


def test_inference_loads_a_workdir_and_never_reads_hidden_values(reference_run, data_dir):
  from trainer import inference, masking  # pylint: disable=g-import-not-at-top
  _, workdir, _ = reference_run
  model = inference.load(workdir, chunk=4)
  assert model.step == 12  # the best (only) checkpoint with a validation loss
  batch = ip.dataset(model.config, "test", train=False)[0]
  values, observed = batch["values"][:5], batch["observed"][:5]
  r = np.random.default_rng(0)
  hidden = np.stack([masking.interpolation(r, 60) for _ in range(5)])
  filled = model.reconstruct(values, observed, hidden)
  assert filled.shape == values.shape and np.isfinite(filled).all()
  keep = observed & ~hidden
  np.testing.assert_array_equal(filled[keep], values[keep])
  poisoned = np.where(hidden, 1e6, values).astype(np.float32)
  np.testing.assert_array_equal(model.reconstruct(poisoned, observed, hidden)[hidden],
                                filled[hidden])
  embeddings = model.embed(values, observed)
  assert embeddings.shape == (5, 64) and np.isfinite(embeddings).all()


def test_commands_split_the_cpu_into_one_device_per_core(python, subprocess_env, repo_dir):
  script = ("from trainer import cli, train; cli.use_cpu_cores(); import jax; "
            "print(jax.device_count(), train.make_mesh(15).devices.size, "
            "train.make_mesh(32).devices.size)")
  env = subprocess_env(JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([python, "-c", script], cwd=repo_dir, env=env, text=True,
                       capture_output=True, timeout=120, check=True)
  cores = len(os.sched_getaffinity(0))
  expected = [cores, max(d for d in range(1, cores + 1) if 15 % d == 0),
              max(d for d in range(1, cores + 1) if 32 % d == 0)]
  assert [int(x) for x in out.stdout.split()] == expected


def test_the_train_step_is_compiled_once_per_token_bucket(data_dir, make_config,
                                                          monkeypatch):
  """Batches of 36 (random) and up to 180 (gap) visible tokens run at their bucket's
  encoder size; each bucket compiles once, whatever the number of steps."""
  config = make_config(data_dir, **{"mask.weights": "random:1,interpolation:1"})
  built = []
  make_step = train.make_train_step
  monkeypatch.setattr(train, "make_train_step",
                      lambda model, tx, k, *a: built.append(k) or make_step(model, tx, k, *a))
  trainer = train.Trainer(config)
  assert trainer.buckets == (36, 72, 108, 144, 180)
  iterator = ip.train_iterator(config)
  used = []
  for _ in range(10):
    batch = trainer.device_batch(next(iterator))
    k = trainer.budget(batch)
    assert k == min(b for b in trainer.buckets if b >= int(np.max(batch["tokens"])))
    trainer.state, metrics = trainer.train_step(trainer.state, batch)
    assert np.isfinite(float(metrics["loss"]))
    used.append(k)
  assert 36 in used and max(used) > 36  # both kinds of batch ran
  assert sorted(built) == sorted(set(used)) and len(built) <= len(trainer.buckets)
  assert trainer.budget({"values": batch["values"]}) == 180  # no counts: the largest


def test_evals_since_best_counts_evaluations_after_the_lowest_loss():
  assert train.evals_since_best([[10, 0.5]]) == 0
  assert train.evals_since_best([[10, 0.5], [20, 0.4], [30, 0.45], [40, 0.41]]) == 2
  assert train.evals_since_best([[10, 0.5], [20, 0.5]]) == 1   # equal is not better


def test_early_stopping_stops_after_patience_and_stays_stopped_on_resume(
    data_dir, make_config, tmp_path, monkeypatch):
  # Validation losses 0.9, 0.8, then worse: best at step 4, stop at step 8 (patience 2).
  losses = iter([0.9, 0.8, 0.85, 0.81, 0.7])
  monkeypatch.setattr(train.Trainer, "evaluate",
                      lambda self, batches: (next(losses), None))
  config = make_config(data_dir, num_train_steps=20, eval_every_steps=2,
                       checkpoint_every_steps=100, early_stopping_evals=2, plot_windows=0)
  workdir = str(tmp_path / "run")
  result = train.train_and_evaluate(config, workdir)
  assert result["step"] == 8 and result["stopped_early"]
  assert result["best_valid_loss"] == 0.8 and result["best_step"] == 4
  assert result["valid_history"] == [[2, 0.9], [4, 0.8], [6, 0.85], [8, 0.81]]
  assert max(step_losses(workdir)) == 8
  ckpts = checkpoints_lib.Checkpoints(workdir, 3, False)
  # checkpoint_every_steps is 100: with early stopping every evaluation is checkpointed,
  # so the best step is there for lsm-eval --step=best.
  assert ckpts.latest_step() == 8 and ckpts.best_step() == 4 and 4 in ckpts.all_steps()
  # Run again: resumes at step 8, finds patience spent, trains nothing more.
  again = train.train_and_evaluate(config, workdir)
  assert again["step"] == 8 and again["stopped_early"] and again["best_step"] == 4
  assert max(step_losses(workdir)) == 8
