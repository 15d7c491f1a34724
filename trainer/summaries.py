"""TensorBoard event files (tensorboardX, no TensorFlow) and a JSON-lines metrics log.

tensorboardX writes the same event files as TensorFlow's summary writer without
importing it (tensorboard's own EventFileWriter reaches TF through
`tensorboard.compat.tf` whenever TF is installed). The JSON-lines copy
(metrics_NAME.jsonl) is for scripts and tests. Both go through trainer.paths
(etils.epath), so the workdir may be a gs:// URI. Everything goes through
trainer.paths, so a gs:// workdir needs no local mount.
"""

from __future__ import annotations

import json
from typing import Mapping

from tensorboardX import SummaryWriter

from trainer import paths


class Writer:
  """Writes scalars (and PNG images) for one run under workdir/tensorboard/<name>.

  Args:
    workdir: the run's directory (local path or a URI such as gs://bucket/run).
    name: the run's name in TensorBoard ("train", "valid"); also names the
      JSON-lines log workdir/metrics_<name>.jsonl.
    enabled: False on every process but the lead one: all calls are no-ops.
  """

  def __init__(self, workdir: str, name: str, enabled: bool = True):
    self.enabled = enabled
    self.jsonl = paths.join(workdir, f"metrics_{name}.jsonl")
    self.events = None
    if enabled:
      logdir = paths.join(workdir, "tensorboard", name)
      # flush_secs: event files are flushed by flush()/close() and at most a
      # minute late otherwise (tensorboardX's default is 2 minutes).
      self.events = SummaryWriter(logdir, flush_secs=60)

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    """Logs float values under their tags at a step (an int)."""
    if not self.enabled:
      return
    for tag, value in values.items():
      self.events.add_scalar(tag, float(value), int(step))
    paths.append_text(self.jsonl, json.dumps(
        {"step": int(step), **{k: float(v) for k, v in values.items()}}) + "\n")

  def figure(self, step: int, tag: str, figure) -> None:
    """Logs a matplotlib figure as an RGB image under tag at a step (left open)."""
    if self.enabled:
      self.events.add_figure(tag, figure, int(step), close=False)

  def flush(self) -> None:
    if self.enabled:
      self.events.flush()

  def close(self) -> None:
    if self.enabled:
      self.events.close()


def read_jsonl(path: str) -> dict[int, dict[str, float]]:
  """step -> metrics; a step logged twice (a resumed run) keeps its last record."""
  out: dict[int, dict[str, float]] = {}
  if paths.exists(path):
    for line in paths.read_text(path).splitlines():
      if line.strip():
        row = json.loads(line)
        out[row.pop("step")] = row
  return out

