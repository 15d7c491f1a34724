"""pipeline.gcs publishes ArrayRecord shards through a non-local Beam filesystem whole."""

from __future__ import annotations

import os

import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem
from array_record.python.array_record_module import ArrayRecordReader

from pipeline import gcs, write

ROOT = {"dir": None}
EVENTS = []


class FakeRemoteFileSystem(LocalFileSystem):
  """fakegs://PATH -> a local directory; records what becomes visible when."""

  @classmethod
  def scheme(cls):
    return "fakegs"

  @staticmethod
  def _local(path):
    return os.path.join(ROOT["dir"], path[len("fakegs://"):])

  def create(self, path, *args, **kwargs):
    EVENTS.append(("create", path, sorted(os.listdir(ROOT["dir"]))))
    return super().create(self._local(path), *args, **kwargs)

  def rename(self, sources, destinations):
    EVENTS.append(("rename", sources[0], destinations[0]))
    return super().rename([self._local(p) for p in sources],
                          [self._local(p) for p in destinations])

  def exists(self, path):
    return super().exists(self._local(path))

  def delete(self, paths):
    EVENTS.append(("delete", paths[0]))
    return super().delete([self._local(p) for p in paths])


@pytest.fixture(name="remote")
def remote_fixture(tmp_path):
  ROOT["dir"] = str(tmp_path)
  EVENTS.clear()
  return tmp_path


def test_shard_goes_through_a_temporary_name_then_renames(remote):
  records = [f"window {i}".encode() for i in range(50)]
  write._write_array_record("fakegs://train-00000-of-00001", records)
  assert [e[0] for e in EVENTS] == ["create", "rename"]
  staged = EVENTS[0][1]
  assert staged.startswith("fakegs://.tmp-") and staged.endswith("-train-00000-of-00001")
  assert EVENTS[0][2] == []  # nothing visible under the final name while uploading
  assert EVENTS[1][1:] == (staged, "fakegs://train-00000-of-00001")
  assert os.listdir(remote) == ["train-00000-of-00001"]
  reader = ArrayRecordReader(str(remote / "train-00000-of-00001"))
  assert reader.read_all() == records
  reader.close()


def test_failed_write_leaves_nothing_behind(remote):
  def broken(local):
    with open(local, "wb") as f:
      f.write(b"half a shard")
    raise OSError("disk full")

  with pytest.raises(OSError, match="disk full"):
    gcs.write_via_local_file("fakegs://train-00000-of-00001", broken)
  assert os.listdir(remote) == []
  assert not FileSystems.exists("fakegs://train-00000-of-00001")


def test_local_output_is_published_by_rename_too(tmp_path):
  path = str(tmp_path / "pretrain" / "valid-00000-of-00001")
  write._write_array_record(path, [b"a", b"b"])
  assert os.listdir(tmp_path / "pretrain") == ["valid-00000-of-00001"]
  reader = ArrayRecordReader(path)
  assert reader.read_all() == [b"a", b"b"]
  reader.close()
