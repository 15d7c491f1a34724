"""pipeline.gcs publishes ArrayRecord shards through a non-local Beam filesystem whole.

The fakegs:// file system and the `remote` fixture live in tests/pipeline/conftest.py.
"""

from __future__ import annotations

import os

import pytest
from apache_beam.io.filesystems import FileSystems
from array_record.python.array_record_module import ArrayRecordReader

from pipeline import gcs, write


def test_shard_goes_through_a_temporary_name_then_renames(remote):
  records = [f"window {i}".encode() for i in range(50)]
  write._write_array_record("fakegs://train-00000-of-00001", records)
  assert [e[0] for e in remote.events] == ["create", "rename"]
  staged = remote.events[0][1]
  assert staged.startswith("fakegs://.tmp-") and staged.endswith("-train-00000-of-00001")
  assert remote.events[0][2] == []  # nothing visible under the final name while uploading
  assert remote.events[1][1:] == (staged, "fakegs://train-00000-of-00001")
  assert os.listdir(remote.dir) == ["train-00000-of-00001"]
  reader = ArrayRecordReader(str(remote.dir / "train-00000-of-00001"))
  assert reader.read_all() == records
  reader.close()


def _broken(local):
  with open(local, "wb") as f:
    f.write(b"half a shard")
  raise OSError("disk full")


def test_failed_write_leaves_nothing_behind(remote):
  with pytest.raises(OSError, match="disk full"):
    gcs.write_via_local_file("fakegs://train-00000-of-00001", _broken)
  assert os.listdir(remote.dir) == []
  assert not FileSystems.exists("fakegs://train-00000-of-00001")


def test_local_output_is_published_by_rename_too(tmp_path):
  path = str(tmp_path / "pretrain" / "valid-00000-of-00001")
  write._write_array_record(path, [b"a", b"b"])
  assert os.listdir(tmp_path / "pretrain") == ["valid-00000-of-00001"]
  reader = ArrayRecordReader(path)
  assert reader.read_all() == [b"a", b"b"]
  reader.close()


def test_failed_local_write_leaves_nothing_behind(tmp_path):
  with pytest.raises(OSError, match="disk full"):
    gcs.write_via_local_file(str(tmp_path / "train-00000-of-00001"), _broken)
  assert os.listdir(tmp_path) == []
