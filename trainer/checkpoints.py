"""Orbax checkpoints: model, optimiser, step and the Grain iterator's state.

Saved asynchronously; the last N are kept plus the best by validation loss. Once a
save is complete (Orbax has committed it), a background thread writes
STEP/lsm_checksums.json (sha256 and size of every file of the checkpoint, written
atomically), because Orbax itself restores a flipped byte in array data silently.
Every restore checks it first. A checkpoint that fails the check or fails to
restore (a corrupted or half-deleted latest) is moved to workdir/corrupt_checkpoints/
with a warning and the previous one is used, so a restarted run always resumes from
the newest intact state. The newest checkpoint without its checksum file, when it was
written to have one, is an unfinished save (the process died between Orbax's commit
and the checksums): it is set aside the same way, but it is not corruption. When
checkpoints exist and none is intact, restore raises CheckpointError and moves
nothing, so every rerun refuses the same way, unless restart_if_corrupt (then they
are set aside and training starts over).
"""

from __future__ import annotations

from concurrent import futures
import hashlib
import json
import os
import shutil
from typing import Any

from absl import logging
import grain
import jax
import orbax.checkpoint as ocp

from trainer import cli
from trainer.input_pipeline import IteratorState

policies = ocp.checkpoint_managers
CHECKSUMS_NAME = "lsm_checksums.json"
# Written into each checkpoint's Orbax metadata: this checkpoint must have checksums
# (those written before checksums existed are restored unverified, with a warning).
CHECKSUMS_KEY = "lsm_checksums"
UNFINISHED = "unfinished save"


class CheckpointError(cli.CommandError):
  """No intact checkpoint to restore, or the one asked for failed its integrity check."""


def file_digests(directory: str) -> dict[str, dict[str, Any]]:
  """{path relative to directory: {"sha256": hex, "bytes": int}} of every file below it,
  except the checksum file itself (and its temporary)."""
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, directory)
      if rel in (CHECKSUMS_NAME, CHECKSUMS_NAME + ".tmp"):
        continue
      digest = hashlib.sha256()
      with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
          digest.update(chunk)
      out[rel] = {"sha256": digest.hexdigest(), "bytes": os.path.getsize(path)}
  return out


def write_checksums(directory: str) -> None:
  """Writes directory/lsm_checksums.json atomically (temporary file, fsync, rename)."""
  path = os.path.join(directory, CHECKSUMS_NAME)
  with open(path + ".tmp", "w") as f:
    json.dump({"algorithm": "sha256", "files": file_digests(directory)}, f, indent=1,
              sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(path + ".tmp", path)


def checksum_problem(directory: str) -> str | None:
  """What differs between a checkpoint's files and its lsm_checksums.json (None: all
  match). Raises FileNotFoundError when it has no checksum file."""
  with open(os.path.join(directory, CHECKSUMS_NAME)) as f:
    try:
      expected = json.load(f)["files"]
    except (ValueError, KeyError, TypeError) as e:
      return f"{CHECKSUMS_NAME} is unreadable ({e})"
  actual = file_digests(directory)
  problems = [f"{name} missing" for name in sorted(set(expected) - set(actual))]
  problems += [f"{name} not in the checksums" for name in sorted(set(actual) - set(expected))]
  problems += [f"{name} checksum mismatch" for name in sorted(set(expected) & set(actual))
               if expected[name] != actual[name]]
  if not problems:
    return None
  more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
  return "; ".join(problems[:3]) + more


class Checkpoints:

  def __init__(self, workdir: str, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.workdir = workdir
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.keep = keep
    self.async_save = async_save
    self.read_only = read_only
    self.manager = self._manager()
    self._hasher = futures.ThreadPoolExecutor(1, thread_name_prefix="lsm_checksums")
    self._hashing: futures.Future | None = None

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
    """Starts saving (asynchronously unless async_save=False); its checksums follow
    in the background once Orbax has committed it."""
    # The previous checkpoint's checksums first: this save may delete it (retention).
    self._wait_for_checksums()
    metrics = None if valid_loss is None else {"valid_loss": float(valid_loss)}
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(IteratorState(iterator_state))),
        metrics=metrics, custom_metadata={CHECKSUMS_KEY: True})
    if jax.process_index() == 0:
      self._hashing = self._hasher.submit(self._checksum_when_committed, step)

  def _checksum_when_committed(self, step: int) -> None:
    self.manager.wait_until_finished()
    if step in self.manager.all_steps():  # not removed by retention meanwhile
      write_checksums(self._step_dir(step))

  def _wait_for_checksums(self) -> None:
    """Blocks until the last save's checksums are written (re-raises its error)."""
    if self._hashing is not None:
      hashing, self._hashing = self._hashing, None
      hashing.result()

  def _step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def problem(self, step: int, newest: bool = False) -> str | None:
    """Why checkpoint `step` must not be restored (None: its checksums match, or it was
    written before checksums existed). `newest`: a missing checksum file is an
    unfinished save (UNFINISHED) rather than corruption."""
    try:
      return checksum_problem(self._step_dir(step))
    except FileNotFoundError:
      pass
    try:
      custom = self.manager.metadata(step).custom_metadata or {}
    except Exception as e:  # pylint: disable=broad-except
      return f"{CHECKSUMS_NAME} is missing and the Orbax metadata unreadable ({e})"
    if not custom.get(CHECKSUMS_KEY):
      logging.warning("checkpoint %d in %s predates checksums: restored unverified",
                      step, self.directory)
      return None
    return UNFINISHED if newest else f"{CHECKSUMS_NAME} is missing"

  def restore(self, abstract_state: Any, step: int | None = None,
              restart_if_corrupt: bool = False) -> tuple[int, Any, dict] | None:
    """(step, state, iterator state) of the newest intact checkpoint, None if none.

    `step` restores that one exactly (no fallback; CheckpointError if it fails its
    check). Newer checkpoints that fail are set aside once an intact one is found.
    Raises CheckpointError, moving nothing, when checkpoints exist and none is
    intact (an unfinished save alone does not count), unless restart_if_corrupt:
    then they are set aside and None is returned.
    """
    self.wait()
    if step is not None:
      self._check(step)
      return self._restore(step, abstract_state)
    failed: list[tuple[int, str]] = []
    for i, s in enumerate(sorted(self.manager.all_steps(), reverse=True)):
      problem = self.problem(s, newest=i == 0)
      if problem is None:
        try:
          restored = self._restore(s, abstract_state)
        except Exception as e:  # pylint: disable=broad-except
          problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        else:
          self._set_aside(failed)
          if failed:
            logging.warning("falling back to checkpoint %d", s)
          return restored
      failed.append((s, problem))
    corrupt = [f"step {s} ({p})" for s, p in failed if p != UNFINISHED]
    if corrupt and not restart_if_corrupt:
      raise CheckpointError(
          f"{self.directory}: no intact checkpoint: {'; '.join(corrupt)}. Nothing was "
          f"moved; pass --config.restart_if_corrupt=True to set them aside in "
          f"{self._aside_dir()} and train from step 1")
    if corrupt:
      logging.warning("no intact checkpoint; restart_if_corrupt: starting over from step 1")
    self._set_aside(failed)
    return None

  def _restore(self, step: int, abstract_state: Any) -> tuple[int, Any, dict]:
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=grain.checkpoint.CheckpointRestore(IteratorState())))
    return step, restored["state"], restored["data"].state

  def _check(self, step: int) -> None:
    problem = self.problem(step)
    if problem is not None:
      raise CheckpointError(f"checkpoint {step} in {self.directory} failed its integrity "
                            f"check: {problem}")

  def restore_params(self, abstract_state: Any, step: int | None = None) -> Any:
    """Only the model state (no data iterator), e.g. for inference; CheckpointError
    when the checkpoint fails its checksums."""
    self.wait()
    step = self.manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{self.directory}: no checkpoint")
    self._check(step)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))
    return step, restored["state"]

  def _aside_dir(self) -> str:
    return os.path.join(self.workdir, "corrupt_checkpoints")

  def _set_aside(self, failed: list[tuple[int, str]]) -> None:
    """Moves each (step, reason) to workdir/corrupt_checkpoints/STEP with a warning."""
    for step, reason in failed:
      aside = os.path.join(self._aside_dir(), str(step))
      logging.warning("checkpoint %d in %s cannot be restored (%s); moved to %s", step,
                      self.directory, reason, aside)
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      if os.path.exists(aside):
        shutil.rmtree(aside)
      shutil.move(self._step_dir(step), aside)
    if failed:
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
    """Blocks until every save is committed and checksummed."""
    self._wait_for_checksums()
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.wait()
    self.manager.close()
    self._hasher.shutdown()
