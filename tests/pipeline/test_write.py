"""WriteShards and WriteManifest: deterministic shard contents, listing and counts."""

import json

import apache_beam as beam
import grain.python as grain
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.write import WriteManifest, WriteShards, nest_counts
from schemas import manifest, record


def _record(subject, start):
  mask = np.zeros((4, 26), bool)
  mask[0, 0] = True
  return record.encode({"values": np.where(mask, 1.5, 0), "mask": mask, "subject": subject,
                        "split": "train", "start": start, "missing_ratio": 0.99})


def test_shards_sorted_and_manifest_lists_them(tmp_path, make_pipeline):
  items = [(("pretrain", "train"), (s, t, _record(s, t)))
           for s in ("b", "a", "c") for t in (30, 10, 20)]
  flat = {"rows_read": 3, "rows_parsed": 3, "readings_read": 5, "readings_used": 4,
          "readings_dead_letter/duplicate": 1, "subjects/train": 3,
          "windows/pretrain/cut": 9}
  with make_pipeline() as p:
    shards = p | "Records" >> beam.Create(items[::-1]) | WriteShards(str(tmp_path), 4, 2)
    assert_that(shards | beam.Map(lambda s: s[:4]),
                equal_to([("pretrain", "train", 0, 2), ("pretrain", "train", 1, 2)]))
    counts = p | "Counts" >> beam.Create([flat])
    stats = p | "Stats" >> beam.Create([{"HR": {"mean": 1.0, "std": 2.0, "count": 3}}])
    _ = ({"counts": counts, "shards": shards, "statistics": stats}
         | WriteManifest(str(tmp_path), {"datasets_written": ["pretrain"], "inputs": ["x"]},
                         4, 2))
  m = manifest.load(str(tmp_path))
  entries = m["datasets"]["pretrain"]
  assert [e["path"] for e in entries["valid"]] == [
      "pretrain/valid-00000-of-00002.array_record", "pretrain/valid-00001-of-00002.array_record"]
  assert sum(e["records"] for e in entries["train"]) == 9
  assert m["counts"]["windows"]["pretrain"]["written"] == {"train": 9, "valid": 0, "test": 0}
  assert m["counts"]["readings"]["dead_lettered"]["duplicate"] == 1
  assert m["train_statistics"]["HR"]["std"] == 2.0 and m["inputs"] == ["x"]
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
    assert len(keys) == (9 if split == "train" else 0)


def test_counts_that_do_not_reconcile_are_refused():
  with pytest.raises(AssertionError, match="do not reconcile"):
    nest_counts({"rows_read": 3, "rows_parsed": 2}, ["pretrain"])
  nested = nest_counts({"rows_read": 3, "rows_parsed": 2,
                        "rows_dead_letter/bad_timestamp": 1}, ["pretrain"])
  assert nested["dead_letter"]["bad_timestamp"] == 1
  assert json.dumps(nested)
