"""Orbax checkpoints: model, optimiser, step and the Grain iterator's state.

Saved asynchronously; the last N are kept plus the best by validation loss. A
checkpoint that fails to restore (a corrupted or half-deleted latest) is moved to
workdir/corrupt_checkpoints/ with a warning and the previous one is used, so a
restarted run always resumes from the newest intact state.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from absl import logging
import grain
import orbax.checkpoint as ocp

from trainer.input_pipeline import IteratorState

policies = ocp.checkpoint_managers


class Checkpoints:

  def __init__(self, workdir: str, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.workdir = workdir
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.keep = keep
    self.async_save = async_save
    self.read_only = read_only
    self.manager = self._manager()

  def _manager(self) -> ocp.CheckpointManager:
    policy = policies.AnyPreservationPolicy([
        policies.LatestN(n=self.keep),
        policies.BestN(get_metric_fn=lambda m: m["valid_loss"], reverse=True, n=1,
                       keep_checkpoints_without_metrics=False),
    ])
    options = ocp.CheckpointManagerOptions(
        # best_fn makes the manager write each step's metrics to disk, so the best
        # checkpoint is still known after a restart; the policy decides retention.
        best_fn=lambda m: m["valid_loss"], best_mode="min",
        preservation_policy=policy, enable_async_checkpointing=self.async_save,
        create=not self.read_only, cleanup_tmp_directories=not self.read_only,
        read_only=self.read_only)
    return ocp.CheckpointManager(self.directory, options=options,
                                 item_names=("state", "data"))

  def save(self, step: int, state: Any, iterator_state: dict,
           valid_loss: float | None = None) -> None:
    metrics = None if valid_loss is None else {"valid_loss": float(valid_loss)}
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(IteratorState(iterator_state))),
        metrics=metrics)

  def restore(self, abstract_state: Any, step: int | None = None
              ) -> tuple[int, Any, dict] | None:
    """(step, state, iterator state) of the newest intact checkpoint, None if none.

    `step` restores that one exactly (no fallback). Corrupted newer ones are set aside.
    """
    self.manager.wait_until_finished()
    steps = [step] if step is not None else sorted(self.manager.all_steps(), reverse=True)
    for s in steps:
      try:
        restored = self.manager.restore(s, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain.checkpoint.CheckpointRestore(IteratorState())))
      except Exception as e:  # pylint: disable=broad-except
        if step is not None:
          raise
        self._set_aside(s, e)
        continue
      return s, restored["state"], restored["data"].state
    return None

  def restore_params(self, abstract_state: Any, step: int | None = None) -> Any:
    """Only the model state (no data iterator), e.g. for inference."""
    self.manager.wait_until_finished()
    step = self.manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{self.directory}: no checkpoint")
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))
    return step, restored["state"]

  def _set_aside(self, step: int, error: Exception) -> None:
    aside = os.path.join(self.workdir, "corrupt_checkpoints", str(step))
    logging.warning("checkpoint %d in %s cannot be restored (%s: %s); moved to %s, "
                    "falling back to the previous checkpoint", step, self.directory,
                    type(error).__name__, str(error).splitlines()[0] if str(error) else "",
                    aside)
    os.makedirs(os.path.dirname(aside), exist_ok=True)
    if os.path.exists(aside):
      shutil.rmtree(aside)
    shutil.move(os.path.join(self.directory, str(step)), aside)
    self.manager.close()
    self.manager = self._manager()

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the lowest validation loss (None if no checkpoint has one).

    Computed here: the manager's own best_step only follows `best_fn`, which the
    preservation policy replaces.
    """
    scored = []
    for step in self.manager.all_steps():
      metrics = self.manager.metrics(step)
      if metrics and "valid_loss" in metrics:
        scored.append((float(metrics["valid_loss"]), step))
    return min(scored)[1] if scored else None

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
