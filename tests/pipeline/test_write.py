"""WriteShards and WriteManifest: deterministic shard contents, listing and counts."""

import json
import zlib

import apache_beam as beam
import grain.python as grain
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.normalise import Normalise
from pipeline.windows import WindowBlock
from pipeline.write import WriteManifest, WriteShards, nest_counts
from schemas import manifest, record


def _block(subject, starts):
  n = len(starts)
  values = np.full((n, 4, 26), np.nan, np.float32)
  values[:, 0, 0] = 1.5
  return WindowBlock(subject, "train", "pretrain", np.array(starts, np.int64), values,
                     np.full(n, 0.99, np.float32), np.full(n, 0.99, np.float32),
                     np.full(n, -1, np.int16), np.full(n, -1, np.int16),
                     np.full((n, 4), -1, np.int8), np.full((n, 4), -1, np.int8))


def test_shards_sorted_and_manifest_lists_them(tmp_path, make_pipeline):
  subjects = ("b", "a", "c", "d")
  blocks = [_block(s, [30, 10, 20]) for s in subjects]
  expected = sorted({zlib.crc32(s.encode()) % 2 for s in subjects})
  flat = {"rows_read": 3, "rows_parsed": 3, "readings_read": 5, "readings_used": 4,
          "readings_dead_letter/duplicate": 1, "subjects/train": 4,
          "windows/pretrain/cut": 12}
  staging = str(tmp_path / ".staging" / "run")
  with make_pipeline() as p:
    windows = p | "Windows" >> beam.Create(blocks)
    transform = windows | Normalise(4, f"{staging}/transform", str(tmp_path / "tmp"))
    written = {"windows": windows, "transform": transform} | WriteShards(
        staging, 4, 2, str(tmp_path / "exchange"))
    assert_that(written["shards"] | beam.Map(lambda s: s[:4]),
                equal_to([("pretrain", "train", i, 2) for i in expected]))
    counts = p | "Counts" >> beam.Create([flat])
    _ = ({"counts": counts, "shards": written["shards"],
          "statistics": written["statistics"]}
         | WriteManifest(str(tmp_path), {"datasets_written": ["pretrain"], "inputs": [
             {"path": "/raw/p1.csv", "format": "canonical_long", "id": "input-1"}]}, 4, 2,
                         staging=staging))
  m = manifest.load(str(tmp_path))
  assert not (tmp_path / ".staging").exists()  # everything published from staging
  assert (tmp_path / "transform" / "transform_fn" / "saved_model.pb").exists()
  entries = m["datasets"]["pretrain"]
  assert [e["path"] for e in entries["valid"]] == [
      "pretrain/valid-00000-of-00002.array_record", "pretrain/valid-00001-of-00002.array_record"]
  assert sum(e["records"] for e in entries["train"]) == 12
  assert m["counts"]["windows"]["pretrain"]["written"] == {"train": 12, "valid": 0, "test": 0}
  assert m["counts"]["readings"]["dead_lettered"]["duplicate"] == 1
  assert m["train_statistics"]["HR"]["count"] == 12 and m["inputs"] == [
      {"id": "input-1", "format": "canonical_long"}]  # never the path
  for split in ("train", "valid"):
    paths = [path for path, _ in manifest.shards(str(tmp_path), split)]
    source = grain.ArrayRecordDataSource(paths)
    keys = [(r["subject"], r["start"]) for r in map(record.decode, (source[i] for i in
                                                                    range(len(source))))]
    for path, n in manifest.shards(str(tmp_path), split):  # each shard sorted
      part = grain.ArrayRecordDataSource([path])
      shard_keys = [(record.decode(part[i])["subject"], record.decode(part[i])["start"])
                    for i in range(len(part))]
      assert shard_keys == sorted(shard_keys) and len(part) == n
    assert sorted(keys) == ([(s, t) for s in sorted(subjects) for t in (10, 20, 30)]
                            if split == "train" else [])


def test_counts_that_do_not_reconcile_are_refused():
  with pytest.raises(AssertionError, match="do not reconcile"):
    nest_counts({"rows_read": 3, "rows_parsed": 2}, ["pretrain"])
  nested = nest_counts({"rows_read": 3, "rows_parsed": 2,
                        "rows_dead_letter/bad_timestamp": 1}, ["pretrain"])
  assert nested["dead_letter"]["bad_timestamp"] == 1
  assert json.dumps(nested)
