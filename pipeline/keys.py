"""The subject-hash key: only a reference to it enters the job graph.

Everything a Beam pipeline's stages hold as arguments is pickled into the pipeline
proto (and on Dataflow staged to the temp bucket and shown with the job), so the
HMAC key that replaces raw subject ids (schemas.record.subject_hash) must never be
one of them. A KeyRef names where the key lives: a file (local, a mounted secret, or
gs://; --subject_hash_key_file), a Secret Manager secret version
(--subject_hash_key_secret, Dataflow), or an environment variable (LSM_SUBJECT_HASH_KEY;
local runs only, as workers elsewhere do not inherit it). KeyedFlatMap resolves it in
DoFn.setup on the worker; files and secrets are read once per process.

A literal --subject_hash_key is moved into the environment variable before the
pipeline options are built (literal_to_env), so that it is in neither the graph nor
the options a runner passes to its workers; in-process and multi_processing workers
inherit the variable.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import os
import re

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

KEY_ENV = "LSM_SUBJECT_HASH_KEY"
LITERAL_FLAG = "--subject_hash_key"
SECRET_NAME = re.compile(r"^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$")


class MissingKeyError(ValueError):
  """The key reference cannot be resolved (no variable, empty file, no client...)."""


@dataclasses.dataclass(frozen=True)
class KeyRef:
  """Where the subject-hash key lives (at most one of file and secret; else env).

  file: path of a file holding the key (any Beam file system); secret: a Secret
  Manager resource name, projects/P/secrets/S[/versions/V] (V default latest); env:
  the environment variable read when neither is given.
  """
  file: str | None = None
  secret: str | None = None
  env: str = KEY_ENV

  def resolve(self) -> bytes:
    """The key bytes; raises MissingKeyError saying which reference gave none."""
    if self.file or self.secret:
      return _stored(self.file, self.secret)
    key = os.environ.get(self.env, "").encode("utf-8")
    if not key:
      raise MissingKeyError(f"the environment variable {self.env} is not set")
    return key

  @property
  def reaches_workers(self) -> bool:
    """False for an environment variable: remote workers (Dataflow) do not have it."""
    return bool(self.file or self.secret)


@functools.lru_cache(maxsize=None)
def _stored(file: str | None, secret: str | None) -> bytes:
  """A file's or a secret's key, read once per process (DoFn instances share it)."""
  if secret:
    key = read_secret(secret)
    where = f"secret {secret}"
  else:
    with FileSystems.open(file, compression_type=CompressionTypes.UNCOMPRESSED) as f:
      key = f.read()
    where = f"key file {file}"
  key = key.strip()
  if not key:
    raise MissingKeyError(f"the {where} is empty")
  return key


def secret_version(name: str) -> str:
  """projects/P/secrets/S[/versions/V] -> the full version name (V default 'latest');
  raises MissingKeyError on another form."""
  if not SECRET_NAME.match(name):
    raise MissingKeyError(f"--subject_hash_key_secret {name!r} is not a Secret Manager "
                          "name projects/PROJECT/secrets/SECRET[/versions/VERSION]")
  return name if "/versions/" in name else name + "/versions/latest"


def _secret_client():
  """A Secret Manager client; raises MissingKeyError when the library is missing."""
  try:
    from google.cloud import secretmanager  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise MissingKeyError(
        "--subject_hash_key_secret needs the google-cloud-secret-manager package on the "
        "launcher and the workers (pip install google-cloud-secret-manager)") from None
  return secretmanager.SecretManagerServiceClient()


def read_secret(name: str) -> bytes:
  """The payload of a Secret Manager secret version (the worker's credentials)."""
  response = _secret_client().access_secret_version(request={"name": secret_version(name)})
  return response.payload.data


def literal_to_env(argv: list[str]) -> list[str]:
  """argv without --subject_hash_key VALUE (or =VALUE), whose value goes to KEY_ENV
  in this process's environment (inherited by local worker processes)."""
  out, i = [], 0
  while i < len(argv):
    arg = argv[i]
    if arg == LITERAL_FLAG and i + 1 < len(argv):
      os.environ[KEY_ENV] = argv[i + 1]
      i += 2
      continue
    if arg.startswith(LITERAL_FLAG + "="):
      os.environ[KEY_ENV] = arg[len(LITERAL_FLAG) + 1:]
    else:
      out.append(arg)
    i += 1
  return out


def input_id(path: str, key: bytes) -> str:
  """Keyed hash naming an input file or folder in the shareable output (manifest,
  extras) instead of its path, which may hold a participant's name: 'input-' + 16 hex.
  The data owner recomputes it from the path and the key."""
  digest = hmac.new(key, b"input-path\0" + path.encode("utf-8"), hashlib.sha256)
  return "input-" + digest.hexdigest()[:16]


class KeyedFlatMap(beam.DoFn):
  """FlatMap of fn(element, key bytes, *args) whose key is resolved on the worker.

  The DoFn holds the KeyRef; the bytes are fetched in setup(), after the DoFn was
  unpickled on the worker, so they are never serialised.
  """

  def __init__(self, fn, ref: KeyRef, *args):
    super().__init__()
    self._fn, self._ref, self._args = fn, ref, args
    self._key = None

  def setup(self):
    self._key = self._ref.resolve()

  def process(self, element):
    yield from self._fn(element, self._key, *self._args)
