"""The trainer's own file writes (metrics, event files, PNGs, reports, configs) via etils.epath.

epath (which Orbax and Grain already use) reads and writes local paths and URIs
(gs://, s3://) alike, so `--workdir gs://bucket/run` needs no gcsfuse mount; gs://
goes through fsspec and needs `gcsfs` installed. trainer/__init__.py sets
EPATH_USE_TF=false: epath would otherwise route URIs through tf.io.gfile whenever
TensorFlow is installed, and the trainer process never imports TensorFlow.
"""

from __future__ import annotations

import io
import os
import uuid

from etils import epath
from tensorboardX import record_writer

# Path schemes epath serves (etils.epath.gpath._URI_PREFIXES).
URI_SCHEMES = ("gs", "s3", "az", "hf")


def path(p: str | os.PathLike) -> epath.Path:
  """An epath.Path for a local path or a URI."""
  return epath.Path(p)


def join(base: str | os.PathLike, *parts: str) -> str:
  """base/parts as a string; a URI keeps its scheme."""
  return os.fspath(path(base).joinpath(*parts))


def is_local(p: str | os.PathLike) -> bool:
  return "://" not in os.fspath(p)


def makedirs(p: str | os.PathLike) -> None:
  """Creates a directory and its parents (a no-op on object stores)."""
  path(p).mkdir(parents=True, exist_ok=True)


def exists(p: str | os.PathLike) -> bool:
  return path(p).exists()


def read_text(p: str | os.PathLike) -> str:
  return path(p).read_text()


def write_text(p: str | os.PathLike, text: str) -> None:
  """Writes text whole: readers see the old file or the new one, never half of it
  (a temporary name then a rename locally; an object store's upload is atomic)."""
  target = path(p)
  target.parent.mkdir(parents=True, exist_ok=True)
  if not is_local(p):
    target.write_text(text)
    return
  staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
  staged.write_text(text)
  staged.replace(target)


def append_text(p: str | os.PathLike, text: str) -> None:
  """Appends text; on an object store (no append) the small file is rewritten."""
  if is_local(p):
    with path(p).open("a") as f:
      f.write(text)
  else:
    write_text(p, (read_text(p) if exists(p) else "") + text)


def save_figure(figure, p: str | os.PathLike, **savefig_kwargs) -> str:
  """Saves a matplotlib figure as PNG at p (any epath path); returns p as a string."""
  buf = io.BytesIO()
  figure.savefig(buf, format="png", **savefig_kwargs)
  target = path(p)
  target.parent.mkdir(parents=True, exist_ok=True)
  target.write_bytes(buf.getvalue())
  return os.fspath(p)


class _EventFile:
  """An event file on an object store: buffered, rewritten whole at each flush
  (the way tensorboardX's own GCS writer does it), through epath."""

  def __init__(self, p: str):
    self.path = path(p)
    self.buffer = io.BytesIO()

  def write(self, data: bytes) -> None:
    self.buffer.write(data)

  def flush(self) -> None:
    self.path.write_bytes(self.buffer.getvalue())

  def close(self) -> None:
    self.flush()


class _EventFileFactory:
  """tensorboardX's writer-factory interface (record_writer.register_writer_factory)."""

  def open(self, p: str) -> _EventFile:
    return _EventFile(p)

  def directory_check(self, p: str) -> None:
    makedirs(p)


for _scheme in URI_SCHEMES:  # replaces tensorboardX's google-cloud-storage writer for gs
  record_writer.register_writer_factory(_scheme, _EventFileFactory())
