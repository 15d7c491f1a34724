"""What may hold identifiers, and the check that the shareable output holds none.

The shareable output (shards, manifest.json, the transform graph, extras) names
subjects by their keyed hash and inputs by keys.input_id only. The dead letters
hold raw rows (raw subject ids, raw paths) for the data owner: they go to their own
folder (--dead_letter_dir), owner-only where the file system has permissions.
find_identifiers() is the automated check: it reads every file under a folder
(bytes, ArrayRecord records decoded, file names) for a list of strings.
"""

from __future__ import annotations

import os
import stat

from pipeline import gcs

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_folder(path: str) -> None:
  """Creates a local folder readable by its owner only (0700), or makes an existing one
  so; nothing on other file systems (there bucket IAM decides who reads it)."""
  if gcs.is_local(path):
    os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)


def owner_only(path: str) -> str:
  """Makes a written local file owner-only (0600); returns the path (a Beam Map step)."""
  if gcs.is_local(path) and os.path.exists(path):
    os.chmod(path, PRIVATE_FILE_MODE)
  return path


def is_owner_only(path: str) -> bool:
  """No permission bit for group or others."""
  return not stat.S_IMODE(os.stat(path).st_mode) & 0o077


def identifiers(ids, paths, root: str | None = None) -> list[str]:
  """The strings that must not appear in a shareable output: the raw ids, the input
  paths, and each path's components below `root` (a file or folder named after a
  participant), longest first."""
  out = set(map(str, ids)) | set(paths)
  for path in paths:
    rel = os.path.relpath(path, root) if root else path
    out.update(p for p in rel.split(os.sep) if p not in ("", ".", ".."))
  return sorted(out, key=lambda s: (-len(s), s))


def find_identifiers(folder: str, needles) -> dict[str, list[str]]:
  """{file under `folder` (relative): [needles found in its name or bytes]}; ArrayRecord
  shards are searched record by record (decompressed). Empty when the folder is clean.
  Local folders only."""
  needles = [n for n in needles if n]
  found = {}
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, folder)
      hits = [n for n in needles if n in rel or n.encode("utf-8") in _contents(path)]
      if hits:
        found[rel] = hits
  return found


def _contents(path: str) -> bytes:
  """A file's bytes, and for an ArrayRecord shard its records' bytes too."""
  with open(path, "rb") as f:
    data = f.read()
  if path.endswith(".array_record") and data:
    from array_record.python.array_record_module import ArrayRecordReader
    reader = ArrayRecordReader(path)
    try:
      data += b"".join(reader.read_all())
    finally:
      reader.close()
  return data
