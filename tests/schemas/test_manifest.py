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


GOOD = {"manifest_version": manifest.MANIFEST_VERSION, "record_version": 1,
        "window_minutes": 300, "feature_names": ["HR"], "transform_dir": "transform",
        "datasets": {"pretrain": {"train": [{"path": "train-00000-of-00001.array_record",
                                             "records": 7}]}},
        "train_statistics": {"HR": {"mean": 70.0, "std": 10.0, "count": 3, "source": "train"}}}


def test_a_truncated_manifest_names_the_file_line_and_column(tmp_path):
  path = tmp_path / manifest.MANIFEST_NAME
  text = json.dumps(GOOD, indent=1)[:150]
  path.write_text(text)
  with pytest.raises(manifest.ManifestError) as e:
    manifest.load(str(tmp_path))
  assert str(e.value).startswith(f"{path}: not valid JSON (truncated or corrupted?): ")
  assert f" at line {text.count(chr(10)) + 1} column " in str(e.value)  # where it ends
  path.write_bytes(b'{"manifest_version": 1, "\xff"}')
  with pytest.raises(manifest.ManifestError, match=r"not UTF-8 text .* at byte 25"):
    manifest.load(str(tmp_path))


@pytest.mark.parametrize("change, message", [
    ({"datasets": None}, "no 'datasets' object"),
    ({"datasets": []}, "'datasets' is not an object"),
    ({"datasets": {"pretrain": []}}, "datasets.pretrain is not an object of splits"),
    ({"datasets": {"pretrain": {"train": {}}}}, "datasets.pretrain.train is not a list"),
    ({"datasets": {"pretrain": {"train": [{"path": "a"}]}}},
     r"datasets.pretrain.train\[0\] is not .*: \{'path': 'a'\}"),
    ({"datasets": {"pretrain": {"train": [{"path": "a", "records": "7"}]}}},
     r"datasets.pretrain.train\[0\]"),
    ({"datasets": {"pretrain": {"train": [{"path": 3, "records": 7}]}}},
     r"datasets.pretrain.train\[0\]"),
    ({"record_version": "1"}, "record_version is not an integer"),
    ({"window_minutes": 300.5}, "window_minutes is not an integer"),
    ({"feature_names": "HR"}, "feature_names is not a list of strings"),
    ({"transform_dir": None}, "transform_dir is not a string"),
    ({"train_statistics": {"HR": {"mean": "70", "std": 1.0, "count": 1}}},
     "train_statistics is not an object"),
])
def test_wrong_or_missing_keys_are_named(tmp_path, change, message):
  bad = {**GOOD, **change}
  bad = {k: v for k, v in bad.items() if v is not None or k != "datasets"}
  (tmp_path / manifest.MANIFEST_NAME).write_text(json.dumps(bad))
  with pytest.raises(manifest.ManifestError, match=f"^{tmp_path / manifest.MANIFEST_NAME}: "
                     + message):
    manifest.load(str(tmp_path))


def test_a_manifest_that_is_not_an_object_is_refused(tmp_path):
  (tmp_path / manifest.MANIFEST_NAME).write_text("[1, 2]")
  with pytest.raises(manifest.ManifestError, match="a JSON list, expected an object"):
    manifest.load(str(tmp_path))
  (tmp_path / manifest.MANIFEST_NAME).write_text(json.dumps(GOOD))
  assert manifest.load(str(tmp_path)) == GOOD
