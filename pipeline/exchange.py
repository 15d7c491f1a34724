"""Big arrays between stages: through Arrow IPC files, with only references in the runner.

Beam's local runner moves every element that crosses from one fused stage to the
next through its own in-process buffers (encode, copy into the data plane, group,
re-encode, decode), which is slow for big arrays (benchmarks/README.md), and it
holds each crossing's whole data in the runner process until the next stage has
run. A subject's readings and its windows are megabytes of numpy arrays, so with
exchange "files" they are written as Arrow IPC files under a scratch directory and
only a small `Stored` reference (path, batch index, scalar fields) travels through
the runner; the consumer memory-maps the file (zero copy). Runner memory then holds
references only, and a worker holds what one stage step needs (a batch, a subject,
a shard's batch of windows). Exchange "runner" sends the objects themselves, for
runners whose shuffle lives outside the workers (Dataflow).

Objects are dataclasses whose fields are numpy arrays (each stored as one Arrow list
row of its raw bytes, with dtype and shape in the reference) or small scalars (kept
in the reference). Files are never read back with pickle.

ArraysCoder is the Beam coder of those objects (and of Arrow batches) inside the
runner: Beam samples the size of elements on every edge, even between fused steps,
by encoding them, which for megabyte arrays cost more than the steps themselves;
this coder reports the arrays' size without encoding anything.
"""

from __future__ import annotations

import dataclasses
import pickle
import uuid

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from pipeline import gcs

FLUSH_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class Stored:
  """Where an object's arrays are (file, record batch) and everything else about it."""
  path: str
  index: int
  kind: type
  arrays: tuple  # (field, dtype str, shape) in column order
  scalars: tuple  # (field, value)


class ArraysCoder(beam.coders.Coder):
  """Pickle inside the runner (as Beam's default); the size estimate from the arrays."""

  def encode(self, value) -> bytes:
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

  def decode(self, encoded: bytes):
    return pickle.loads(encoded)

  def is_deterministic(self) -> bool:
    return False

  def estimate_size(self, value) -> int:
    if dataclasses.is_dataclass(value):
      return sum(_nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return _nbytes(value) if isinstance(value, _ARRAYS) else len(self.encode(value))


_ARRAYS = (np.ndarray, pa.RecordBatch, pa.Table)


def _nbytes(value) -> int:
  """An array's bytes; a scalar field counts as 8."""
  return value.nbytes if isinstance(value, _ARRAYS) else 8


def register(*types) -> None:
  """Makes ArraysCoder the coder of PCollections typed (with_output_types) as `types`."""
  for kind in types:
    beam.coders.registry.register_coder(kind, ArraysCoder)


register(pa.RecordBatch)


def _columns(obj):
  arrays, scalars = [], []
  for field in dataclasses.fields(obj):
    value = getattr(obj, field.name)
    (arrays if isinstance(value, np.ndarray) else scalars).append((field.name, value))
  return arrays, scalars


def _schema(arrays) -> pa.Schema:
  return pa.schema([pa.field(name, pa.large_list(pa.uint8())) for name, _ in arrays])


def _to_batch(arrays) -> pa.RecordBatch:
  """Each array as one list row of its raw bytes; no copy until the file write."""
  columns = []
  for _, value in arrays:
    raw = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
    columns.append(pa.LargeListArray.from_arrays(
        pa.array([0, len(raw)], pa.int64()), pa.Array.from_buffers(
            pa.uint8(), len(raw), [None, pa.py_buffer(raw)])))
  return pa.RecordBatch.from_arrays(columns, schema=_schema(arrays))


def write(directory: str, objects: list) -> list[Stored]:
  """Writes objects that share one schema to one new file; returns their references."""
  parts = [_columns(o) for o in objects]
  schema = _schema(parts[0][0])
  path = f"{directory.rstrip('/')}/{uuid.uuid4().hex}.arrow"
  with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    with pa.ipc.new_file(f, schema) as writer:
      for arrays, _ in parts:
        writer.write_batch(_to_batch(arrays))
  return [Stored(path, i, type(o),
                 tuple((n, v.dtype.str, v.shape) for n, v in arrays), tuple(scalars))
          for i, (o, (arrays, scalars)) in enumerate(zip(objects, parts))]


def _open(path: str):
  if gcs.is_local(path):
    return pa.ipc.open_file(pa.memory_map(path))
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    return pa.ipc.open_file(pa.py_buffer(f.read()))


def fetch(item):
  """The object behind a reference (read zero-copy, arrays read-only); others as they are."""
  if not isinstance(item, Stored):
    return item
  batch = _open(item.path).get_batch(item.index)
  fields = dict(item.scalars)
  for column, (name, dtype, shape) in zip(batch.columns, item.arrays):
    raw = column.values
    if not len(raw):
      fields[name] = np.empty(shape, np.dtype(dtype))
      continue
    fields[name] = np.frombuffer(raw.buffers()[1], np.uint8, len(raw), raw.offset).view(
        np.dtype(dtype)).reshape(shape)
  return item.kind(**fields)


class _StashFn(beam.DoFn):
  """Buffers (key, object) pairs, writes each FLUSH_BYTES of them as one file."""

  def __init__(self, directory: str):
    self._directory = directory

  def start_bundle(self):
    self._pending, self._bytes = {}, 0

  def process(self, item):
    key, obj = item
    arrays, _ = _columns(obj)
    signature = (type(obj), tuple(name for name, _ in arrays))
    self._pending.setdefault(signature, []).append((key, obj))
    self._bytes += sum(v.nbytes for _, v in arrays)
    if self._bytes >= FLUSH_BYTES:
      yield from self._flush()

  def finish_bundle(self):
    for pair in self._flush():
      yield GlobalWindows.windowed_value(pair)

  def _flush(self):
    pending, self._pending, self._bytes = self._pending, {}, 0
    for items in pending.values():
      refs = write(self._directory, [obj for _, obj in items])
      for (key, _), ref in zip(items, refs):
        yield key, ref


class Stash(beam.PTransform):
  """(key, object) -> (key, Stored) with a directory, or unchanged without one (runner)."""

  def __init__(self, directory: str | None):
    super().__init__()
    self._directory = directory

  def expand(self, pairs):
    """Writes each object's numpy arrays to an Arrow IPC file under the directory and
    emits its Stored reference (OSError when the directory is not writable)."""
    if not self._directory:
      return pairs
    return pairs | "Write" >> beam.ParDo(_StashFn(self._directory))
