"""Writing files that only a local-file writer can produce to any Beam filesystem.

ArrayRecord's writer takes a local path, so a shard bound for gs:// (or any other
Beam FileSystems scheme) is written to a local temporary file, uploaded through
FileSystems to a temporary name beside its destination, then renamed. A reader of
the output directory, or a retried bundle, never sees a half-written file under its
final name: the rename is atomic locally and an object appears whole on GCS. A local
destination is written in place under the temporary name (no copy).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from typing import Callable

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

COPY_CHUNK = 16 << 20


def is_local(path: str) -> bool:
  """A path of the local file system (no scheme://), where local shortcuts apply."""
  return FileSystems.get_scheme(path) is None


def temporary_name(path: str) -> str:
  """A unique sibling of `path` that no reader globbing for shards can mistake for one."""
  directory, name = path.rsplit("/", 1) if "/" in path else ("", path)
  temp = f".tmp-{uuid.uuid4().hex}-{name}"
  return f"{directory}/{temp}" if directory else temp


def write_via_local_file(path: str, write_local: Callable[[str], None]) -> None:
  """Calls write_local(local_path), then publishes that file at `path` in one rename."""
  staged = temporary_name(path)
  if is_local(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
      write_local(staged)
      os.replace(staged, path)
    finally:
      if os.path.exists(staged):
        os.remove(staged)
    return
  local_dir = tempfile.mkdtemp(prefix="lsm-write-")
  try:
    local = os.path.join(local_dir, os.path.basename(path))
    write_local(local)
    with open(local, "rb") as src, FileSystems.create(
        staged, compression_type=CompressionTypes.UNCOMPRESSED) as dst:
      shutil.copyfileobj(src, dst, COPY_CHUNK)
    FileSystems.rename([staged], [path])
  except BaseException:
    if FileSystems.exists(staged):
      FileSystems.delete([staged])
    raise
  finally:
    shutil.rmtree(local_dir, ignore_errors=True)
