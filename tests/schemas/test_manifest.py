import json

import pytest

from schemas import manifest


def test_shard_name():
  assert manifest.shard_name("train", 3, 16) == "train-00003-of-00016.array_record"


def test_shards_resolve_relative_paths(tmp_path):
  (tmp_path / manifest.MANIFEST_NAME).write_text(json.dumps({
      "manifest_version": manifest.MANIFEST_VERSION,
      "datasets": {"pretrain": {"train": [{"path": "train-00000-of-00001.array_record",
                                           "records": 7}]}}}))
  assert manifest.shards(str(tmp_path), "train") == [
      (str(tmp_path / "train-00000-of-00001.array_record"), 7)]
  with pytest.raises(manifest.ManifestError, match="'valid'"):
    manifest.shards(str(tmp_path), "valid")


def test_missing_or_foreign_manifest_is_refused(tmp_path):
  with pytest.raises(manifest.ManifestError, match="no manifest"):
    manifest.load(str(tmp_path))
  (tmp_path / manifest.MANIFEST_NAME).write_text('{"manifest_version": 99}')
  with pytest.raises(manifest.ManifestError, match="manifest_version 99"):
    manifest.load(str(tmp_path))
