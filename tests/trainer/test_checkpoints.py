"""Checkpoint retention (last N plus the best by validation loss) and restore."""

import jax
import jax.numpy as jnp
import numpy as np

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
