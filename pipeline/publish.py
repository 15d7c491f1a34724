"""Atomic publication of a run's output, on any Beam file system (local, gs://).

A run writes what it publishes (shards, transform graph, dead letters, extras) under
its own staging folder OUTPUT/.staging/<run id>/, never into OUTPUT's published
folders, and its scratch files (exchange, tf.Transform's temp) under OUTPUT/tmp/.
Only the manifest step publishes, once the run has passed every check, inside the
pipeline (so on Dataflow as locally):

  1. the manifest is written into the staging folder;
  2. an earlier run's OUTPUT/manifest.json is deleted, then that run's files;
  3. the staged files the manifest names are renamed into place;
  4. the staged manifest is renamed to OUTPUT/manifest.json, last (a reader sees the
     whole manifest or none: a rename is atomic locally, an object appears whole on
     GCS);
  5. what is left of the staging folder (temporaries of retried writes) goes.

A kill at any point leaves either the earlier run complete (before 2) or no manifest
(from 2 until 4), never an earlier manifest beside new shards; the next run removes
the leftovers of such a run, and every staging folder, before it starts
(pipeline.main._clear_output). Steps 2 and 3 survive a retried manifest step
(Dataflow retries a failed bundle): the marker CLEARED in the staging folder says 2
is done, 3 moves what is still staged, and a staging folder already gone means 5 was
reached.
"""

from __future__ import annotations

import os
import shutil
import uuid

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from pipeline import gcs
from schemas import manifest

STAGING = ".staging"
# What a finished run publishes under OUTPUT beside manifest.json.
PUBLISHED = ("pretrain", "labelled", "transform", "dead_letter", "extras", "statistics")
# A run's working folders, never published: any run's leftovers go when the next starts.
SCRATCH = ("tmp", STAGING)
CLEARED = ".cleared"


def staging_dir(output: str) -> str:
  """A new run's staging folder, OUTPUT/.staging/<random run id>."""
  return os.path.join(output, STAGING, uuid.uuid4().hex)


def files_under(root: str, folders) -> list[str]:
  """Paths of every file under root/<folder>/ for each folder (any Beam file system)."""
  patterns = [os.path.join(root, folder, "**") for folder in folders]
  return sorted(m.path for result in FileSystems.match(patterns)
                for m in result.metadata_list)


def remove(root: str, folders) -> int:
  """Deletes every file under root/<folder>/ (and, locally, the folders); returns how
  many files."""
  paths = files_under(root, folders)
  if paths:
    FileSystems.delete(paths)
  for folder in folders:
    path = os.path.join(root, folder)
    if gcs.is_local(path) and os.path.isdir(path):
      shutil.rmtree(path)
  return len(paths)


def staged(staging: str) -> set[str]:
  """The staged files, as paths relative to the staging folder."""
  prefix = staging.rstrip("/") + "/"
  return {path[len(prefix):] for path in files_under(staging, [""])}


def check_writable(output: str) -> None:
  """Creates and deletes a small file under OUTPUT/.staging, so that an output the run
  cannot write fails before any work. Raises SystemExit with one line naming the path
  and why (a read-only folder, a parent that is a file, a bucket without write access).
  Leaves no trace: local folders it had to create go again.
  """
  probe = os.path.join(output, STAGING, f"probe-{uuid.uuid4().hex}")
  existing, created = _existing_ancestor(output) if gcs.is_local(output) else (None, None)
  try:
    with FileSystems.create(probe) as f:
      f.write(b"lsm-pipeline write probe\n")
    FileSystems.delete([probe])
  except Exception as e:  # pylint: disable=broad-except  # whatever the file system raises
    why = (f"{existing} is a file, not a folder" if existing and not os.path.isdir(existing)
           else _why(e))
    raise SystemExit(f"lsm-pipeline: cannot write to --output {output}: {why}") from None
  finally:
    if created and os.path.isdir(created):
      shutil.rmtree(created)


def _existing_ancestor(path: str) -> tuple[str, str | None]:
  """(the nearest existing local path at or above `path`, its child on the way to `path`
  or None when `path` exists)."""
  path, child = os.path.abspath(path), None
  while not os.path.exists(path):
    path, child = os.path.dirname(path), path
  return path, child


def _why(error: BaseException) -> str:
  """The reason of a failed write in a few words, without the file system's traceback."""
  if isinstance(error, BeamIOError) and error.exception_details:
    error = next(iter(error.exception_details.values()))
  if isinstance(error, OSError) and error.strerror:
    return error.strerror + (f" ({error.filename})" if error.filename else "")
  lines = str(error).strip().splitlines()
  return lines[0] if lines else type(error).__name__


def _rename(sources: list[str], destinations: list[str]) -> None:
  """FileSystems.rename, creating local destination folders first (GCS has none)."""
  for path in destinations:
    if gcs.is_local(path):
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  if sources:
    FileSystems.rename(sources, destinations)


def publish(output: str, staging: str, body: bytes, names, folders=("transform",)) -> str:
  """Publishes a run staged in `staging`: the files `names` and every file under
  `folders` (paths relative to both folders), then `body` as OUTPUT/manifest.json,
  in the order of the module docstring. Returns the manifest's path.

  The caller checks first that the staging folder still holds files (gone: an earlier
  attempt of the step published the run).
  """
  final = os.path.join(output, manifest.MANIFEST_NAME)
  present = staged(staging)
  staged_manifest = os.path.join(staging, manifest.MANIFEST_NAME)
  with FileSystems.create(staged_manifest) as f:
    f.write(body)
  if CLEARED not in present:
    if FileSystems.exists(final):
      FileSystems.delete([final])
    remove(output, PUBLISHED)
    FileSystems.create(os.path.join(staging, CLEARED)).close()
  names = set(names)
  moving = sorted(n for n in present if n in names or n.split("/", 1)[0] in folders)
  _rename([os.path.join(staging, n) for n in moving], [os.path.join(output, n) for n in moving])
  _rename([staged_manifest], [final])
  remove(os.path.join(output, STAGING), [os.path.basename(staging.rstrip("/"))])
  parent = os.path.join(output, STAGING)
  if gcs.is_local(parent) and os.path.isdir(parent) and not os.listdir(parent):
    os.rmdir(parent)
  return final
