"""Checkpoint retention (last N plus the best by validation loss) and restore."""

import glob
import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainer import checkpoints as checkpoints_lib


def test_keeps_the_last_n_and_the_best_by_validation_loss(tmp_path):
  ckpts = checkpoints_lib.Checkpoints(str(tmp_path), keep=2, async_save=True)
  for step, valid in [(1, 0.9), (2, 0.4), (3, None), (4, 0.8), (5, 0.7), (6, None)]:
    ckpts.save(step, {"w": jnp.full((3,), float(step))}, {"next_index": step}, valid)
  ckpts.wait()
  assert ckpts.all_steps() == [2, 5, 6]  # 5 and 6 are the last two, 2 the best
  assert ckpts.best_step() == 2
  abstract = {"w": jax.ShapeDtypeStruct((3,), jnp.float32,
                                        sharding=jax.sharding.SingleDeviceSharding(
                                            jax.devices()[0]))}
  step, state, data = ckpts.restore(abstract)
  assert step == 6 and data == {"next_index": 6}
  np.testing.assert_array_equal(state["w"], np.full(3, 6.0))
  step, state, data = ckpts.restore(abstract, step=2)
  assert data == {"next_index": 2} and float(state["w"][0]) == 2.0
  ckpts.close()
  # A restarted process still knows which checkpoint is best, and keeps it.
  again = checkpoints_lib.Checkpoints(str(tmp_path), keep=2, async_save=False)
  assert again.best_step() == 2
  again.save(7, {"w": jnp.full((3,), 7.0)}, {"next_index": 7}, None)
  assert again.all_steps() == [2, 6, 7]
  again.close()


def test_no_checkpoint_restores_nothing(tmp_path):
  ckpts = checkpoints_lib.Checkpoints(str(tmp_path))
  assert ckpts.restore({"w": jax.ShapeDtypeStruct((3,), jnp.float32)}) is None
  ckpts.close()


def abstract_of(shape):
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return {"w": jax.ShapeDtypeStruct(shape, jnp.float32, sharding=sharding),
          "mu": jax.ShapeDtypeStruct(shape, jnp.float32, sharding=sharding)}


def moments(step):
  return jnp.linspace(0.0, float(step), 64 * 64).reshape(64, 64)


def saved(tmp_path, steps=(1, 2), async_save=True):
  """Checkpoints of steps whose state is {"w", "mu"} full of the step number (values
  differ from step to step, as an optimiser's moments do)."""
  ckpts = checkpoints_lib.Checkpoints(str(tmp_path), keep=3, async_save=async_save)
  for step in steps:
    ckpts.save(step, {"w": jnp.full((64, 64), float(step)),
                      "mu": moments(step)},
               {"next_index": step})
  ckpts.close()
  return str(tmp_path)


def flip_array_byte(workdir, step):
  """Flips one byte in the middle of the largest file of the checkpoint's array data."""
  files = [p for p in glob.glob(os.path.join(workdir, "checkpoints", str(step), "state", "**",
                                             "*"), recursive=True) if os.path.isfile(p)]
  path = max(files, key=os.path.getsize)
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0x01
  open(path, "wb").write(bytes(data))
  return os.path.relpath(path, os.path.join(workdir, "checkpoints", str(step)))


def test_each_checkpoint_gets_checksums_of_every_file_once_committed(tmp_path):
  workdir = saved(tmp_path)
  for step in (1, 2):
    directory = os.path.join(workdir, "checkpoints", str(step))
    sums = json.load(open(os.path.join(directory, checkpoints_lib.CHECKSUMS_NAME)))
    files = {os.path.relpath(os.path.join(root, f), directory)
             for root, _, names in os.walk(directory) for f in names}
    assert set(sums["files"]) == files - {checkpoints_lib.CHECKSUMS_NAME}
    assert any(name.startswith("state" + os.sep) for name in sums["files"])
    assert checkpoints_lib.checksum_problem(directory) is None


def test_a_flipped_array_byte_is_detected_and_the_previous_checkpoint_restored(
    tmp_path, caplog):
  workdir = saved(tmp_path)
  flipped = flip_array_byte(workdir, 2)
  ckpts = checkpoints_lib.Checkpoints(workdir)
  with caplog.at_level(logging.WARNING):
    step, state, data = ckpts.restore(abstract_of((64, 64)))
  ckpts.close()
  assert step == 1 and data == {"next_index": 1}
  np.testing.assert_array_equal(state["w"], np.full((64, 64), 1.0))
  np.testing.assert_array_equal(state["mu"], moments(1))
  assert f"checkpoint 2 in {os.path.join(workdir, 'checkpoints')} cannot be restored " \
         f"({flipped} checksum mismatch)" in caplog.text
  assert "falling back to checkpoint 1" in caplog.text
  assert os.listdir(os.path.join(workdir, "corrupt_checkpoints")) == ["2"]
  # Asked for by step (as lsm-eval does), a corrupt checkpoint is an error, not a fallback.
  flip_array_byte(workdir, 1)
  ckpts = checkpoints_lib.Checkpoints(workdir, read_only=True)
  with pytest.raises(checkpoints_lib.CheckpointError, match="checkpoint 1 in .* failed its "
                     "integrity check: state.* checksum mismatch"):
    ckpts.restore_params(abstract_of((64, 64)), 1)
  ckpts.close()


def test_every_checkpoint_corrupt_is_an_error_unless_restart_if_corrupt(tmp_path, caplog):
  workdir = saved(tmp_path, async_save=False)
  flip_array_byte(workdir, 1)
  flip_array_byte(workdir, 2)
  ckpts = checkpoints_lib.Checkpoints(workdir)
  with pytest.raises(checkpoints_lib.CheckpointError) as e:
    ckpts.restore(abstract_of((64, 64)))
  assert "no intact checkpoint: step 2 (state" in str(e.value)
  assert "step 1 (state" in str(e.value) and "restart_if_corrupt" in str(e.value)
  assert ckpts.all_steps() == [1, 2]  # nothing moved: a rerun refuses the same way
  with caplog.at_level(logging.WARNING):
    assert ckpts.restore(abstract_of((64, 64)), restart_if_corrupt=True) is None
  assert "starting over from step 1" in caplog.text
  assert ckpts.all_steps() == []
  assert sorted(os.listdir(os.path.join(workdir, "corrupt_checkpoints"))) == ["1", "2"]
  ckpts.close()


def test_a_missing_checksum_file_sets_the_checkpoint_aside(tmp_path):
  workdir = saved(tmp_path, steps=(1, 2, 3))
  os.remove(os.path.join(workdir, "checkpoints", "2", checkpoints_lib.CHECKSUMS_NAME))
  # The newest without checksums: killed between Orbax's commit and the checksums.
  os.remove(os.path.join(workdir, "checkpoints", "3", checkpoints_lib.CHECKSUMS_NAME))
  ckpts = checkpoints_lib.Checkpoints(workdir)
  assert ckpts.problem(3, newest=True) == checkpoints_lib.UNFINISHED
  assert ckpts.problem(2) == "lsm_checksums.json is missing"
  assert ckpts.restore(abstract_of((64, 64)))[0] == 1
  ckpts.close()
  # An unfinished save alone is not corruption: the run starts over without an error.
  workdir = saved(tmp_path / "one", steps=(1,))
  os.remove(os.path.join(workdir, "checkpoints", "1", checkpoints_lib.CHECKSUMS_NAME))
  ckpts = checkpoints_lib.Checkpoints(workdir)
  assert ckpts.restore(abstract_of((64, 64))) is None
  ckpts.close()
