"""TensorBoard event files and a JSON-lines metrics log, with no TensorFlow import.

tensorboard's EventFileWriter opens files through `tensorboard.compat.tf`, which
imports TensorFlow whenever it is installed; so events are framed here with
tensorboard's own RecordWriter and protos (standalone, TF-free) on a plain file.
The JSON-lines copy (metrics_NAME.jsonl) is for scripts and tests.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from typing import Mapping

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter


class EventFile:
  """One TensorBoard event file (events.out.tfevents.*) written synchronously."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
    self.path = os.path.join(logdir, name)
    self.writer = RecordWriter(open(self.path, "ab"))
    self.add_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

  def add_event(self, event: event_pb2.Event) -> None:
    self.writer.write(event.SerializeToString())

  def flush(self) -> None:
    self.writer.flush()

  def close(self) -> None:
    self.writer.close()


class Writer:
  """Writes scalars (and PNG images) for one run under workdir/tensorboard/<name>."""

  def __init__(self, workdir: str, name: str, enabled: bool = True):
    self.enabled = enabled
    self.jsonl = os.path.join(workdir, f"metrics_{name}.jsonl")
    self.events = EventFile(os.path.join(workdir, "tensorboard", name)) if enabled else None

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    summary = summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])
    self.events.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                          summary=summary))
    with open(self.jsonl, "a") as f:
      f.write(json.dumps({"step": int(step), **{k: float(v) for k, v in values.items()}})
              + "\n")

  def image(self, step: int, tag: str, png: bytes, height: int, width: int) -> None:
    if not self.enabled:
      return
    image = summary_pb2.Summary.Image(height=height, width=width, colorspace=4,
                                      encoded_image_string=png)
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])
    self.events.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                          summary=summary))

  def flush(self) -> None:
    if self.enabled:
      self.events.flush()

  def close(self) -> None:
    if self.enabled:
      self.events.close()


def read_jsonl(path: str) -> dict[int, dict[str, float]]:
  """step -> metrics; a step logged twice (a resumed run) keeps its last record."""
  out: dict[int, dict[str, float]] = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        if line.strip():
          row = json.loads(line)
          out[row.pop("step")] = row
  return out


def png_bytes(figure) -> tuple[bytes, int, int]:
  buf = io.BytesIO()
  figure.savefig(buf, format="png", dpi=80)
  w, h = figure.canvas.get_width_height()
  return buf.getvalue(), int(h * 80 / figure.dpi), int(w * 80 / figure.dpi)
