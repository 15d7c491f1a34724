"""Grain input pipeline: batches, determinism, state, process sharding, augmentation."""

import json
import os

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordWriter

from schemas import manifest as manifest_lib
from schemas import record
from trainer import input_pipeline as ip
from trainer import patching


def test_batches_hold_masked_windows_and_their_encoder_token_counts(data_dir, make_config):
  config = make_config(data_dir)
  batch = next(ip.train_iterator(config))
  assert batch["values"].shape == (8, 300, 26) and batch["values"].dtype == np.float32
  assert batch["observed"].dtype == bool and batch["hidden"].dtype == bool
  visible = batch["observed"] & ~batch["hidden"]
  np.testing.assert_array_equal(batch["tokens"],
                                patching.token_any(visible, (10, 5)).sum(-1))
  assert batch["tokens"].dtype == np.int32
  assert not batch["values"][~batch["observed"]].any()  # missing stays zero after noise


def test_a_random_masking_window_keeps_lsms_36_encoder_tokens(data_dir, make_config):
  config = make_config(data_dir, **{"mask.strategy": "random"})
  batch = next(ip.train_iterator(config))
  assert (batch["tokens"] <= 36).all() and batch["tokens"].max() == 36


@pytest.mark.parametrize("adaptive", [True, False])
def test_an_interpolation_window_keeps_all_its_visible_tokens(data_dir, make_config,
                                                              adaptive):
  """Adaptive budget: the hidden mask is exactly the 60-minute block (nothing dropped
  beside it); the fixed budget of LSM-1 drops all but 36 tokens."""
  config = make_config(data_dir, **{"mask.strategy": "interpolation", "mask.min_gap_minutes": 0,
                                    "mask.adaptive_budget": adaptive, "augment.enabled": False})
  batch = next(ip.train_iterator(config))
  if adaptive:
    assert (batch["hidden"].sum(axis=(1, 2)) == 60 * 26).all()
    assert (batch["hidden"].all(axis=2).sum(axis=1) == 60).all()
    assert batch["tokens"].min() > 100
  else:
    assert batch["tokens"].max() == 36


def test_a_mixture_draws_one_strategy_per_batch_and_all_over_the_stream(data_dir, make_config):
  """Per batch: every window of a batch has the same kind of mask (random: 36 tokens;
  extrapolation: the last 60 minutes hidden); over batches both strategies appear."""
  config = make_config(data_dir, **{"mask.weights": "random:1,extrapolation:1",
                                    "mask.min_gap_minutes": 0, "augment.enabled": False})
  ds = ip.dataset(config, "train", train=True)
  kinds = []
  for i in range(12):
    batch = ds[i]
    tail = batch["hidden"][:, -60:].all(axis=(1, 2))
    assert tail.all() or not tail.any()
    kinds.append(bool(tail.all()))
    if not tail.any():
      assert (batch["tokens"] <= 36).all()
  assert 0 < sum(kinds) < 12
  per_window = make_config(data_dir, **{"mask.weights": "random:1,extrapolation:1",
                                        "mask.per_batch": False, "mask.min_gap_minutes": 0,
                                        "augment.enabled": False})
  tails = ip.dataset(per_window, "train", train=True)[0]["hidden"][:, -60:].all(axis=(1, 2))
  assert 0 < tails.sum() < 8  # drawn per window (8 windows, each strategy half the time)


@pytest.mark.parametrize("overrides, want", [
    ({}, (36, 72, 108, 144, 180)),
    ({"mask.token_buckets": "100, 36"}, (36, 100, 180)),
    ({"mask.max_encoder_tokens": 120}, (36, 72, 108, 120)),
    ({"mask.adaptive_budget": False}, (36,)),
    ({"mask.adaptive_budget": False, "mask.encoder_tokens": 108}, (108,)),
])
def test_token_buckets(overrides, want):
  from trainer.configs import mae  # pylint: disable=g-import-not-at-top
  config = mae.get_config("nano")
  for key, value in overrides.items():
    config.mask[key.split(".")[1]] = value
  assert ip.token_buckets(config) == want


def test_malformed_token_buckets_are_named():
  from trainer.configs import mae  # pylint: disable=g-import-not-at-top
  config = mae.get_config("nano")
  config.mask.token_buckets = "36,lots"
  with pytest.raises(ValueError, match="token_buckets '36,lots': expected comma-separated"):
    ip.token_buckets(config)


def test_iterator_state_resumes_exactly(data_dir, make_config):
  config = make_config(data_dir)
  it = ip.train_iterator(config)
  for _ in range(3):
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(2)]
  resumed = ip.train_iterator(config)
  resumed.set_state(state)
  for want in expected:
    got = next(resumed)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])


def test_epochs_are_reshuffled_and_cover_the_split(data_dir, make_config):
  config = make_config(data_dir, **{"augment.enabled": False})
  ds = ip.dataset(config, "train", train=True)
  epoch = [ds[i]["values"] for i in range(8)]  # 64 windows / batch 8 = one epoch
  second = [ds[i]["values"] for i in range(8, 16)]
  first_rows = {v.tobytes() for b in epoch for v in b}
  assert len(first_rows) == 64
  assert first_rows == {v.tobytes() for b in second for v in b}
  assert not np.array_equal(epoch[0], second[0])


def test_processes_get_disjoint_shards(data_dir, make_config):
  config = make_config(data_dir, **{"augment.enabled": False})
  rows = []
  for index in range(2):
    ds = ip.dataset(config, "valid", train=False, process_index=index, process_count=2)
    rows.append({v.tobytes() for i in range(len(ds)) for v in ds[i]["values"]})
    assert len(ds[0]["values"]) == 4  # per-process batch
  assert not rows[0] & rows[1] and len(rows[0] | rows[1]) == 16


def test_stretch_and_crop_keeps_shape_and_never_invents_observations():
  r = np.random.default_rng(0)
  values = r.normal(size=(300, 26)).astype(np.float32)
  observed = r.random((300, 26)) > 0.3
  v, o = ip.stretch_and_crop(np.where(observed, values, 0).astype(np.float32), observed,
                             1.5, r)
  assert v.shape == (300, 26) and o.shape == (300, 26)
  assert not v[~o].any() and o.mean() <= observed.mean() + 0.05
  same_v, same_o = ip.stretch_and_crop(values, observed, 1.0, r)
  np.testing.assert_allclose(same_v[same_o], values[same_o])
  np.testing.assert_array_equal(same_o, observed)


def test_augmentations_can_be_switched_off(data_dir, make_config):
  on = ip.dataset(make_config(data_dir), "train", train=True)[0]
  off = ip.dataset(make_config(data_dir, **{"augment.enabled": False}), "train", train=True)[0]
  source = ip.split_source(data_dir, "train")
  raw = {ip.window_arrays(source[i])["values"].tobytes() for i in range(len(source))}
  assert all(v.tobytes() in raw for v in off["values"])
  assert not all(v.tobytes() in raw for v in on["values"])


def write_shard(path, records, options="group_size:1"):
  writer = ArrayRecordWriter(str(path), options)
  for data in records:
    writer.write(data)
  writer.close()
  return str(path)


@pytest.mark.parametrize("how, reason", [
    ("record", "record checksum mismatch"),
    ("chunk", "chunk data hash mismatch"),
])
def test_a_corrupt_record_names_its_shard_and_index(tmp_path, data_dir, make_config,
                                                    corrupt_copy, how, reason):
  data, shard = corrupt_copy(str(tmp_path / "data"), data_dir, "train", 1, 17, how)
  source = ip.split_source(data, "train")
  assert ip.window_arrays(source[32 + 16])["values"].shape == (300, 26)  # its neighbours
  with pytest.raises(record.RecordError) as e:
    source[32 + 17]  # the second shard's record 17
  assert str(e.value).startswith(f"{shard}: record 17: ") and reason in str(e.value)
  # Through the shuffled, augmented training stream the message is the same.
  iterator = ip.train_iterator(make_config(data, batch_size=64))
  with pytest.raises(record.RecordError, match=f"^{shard}: record 17: .*{reason}"):
    next(iterator)


def test_bad_record_and_wrong_counts_are_named(tmp_path, data_dir):
  path = write_shard(tmp_path / "bad.array_record", [b"LSMW not a record at all, just bytes"])
  with pytest.raises(record.RecordError, match=f"^{path}: record 0: record truncated"):
    ip.ShardSource([(path, 1)])[0]
  truncated = tmp_path / "truncated.array_record"
  truncated.write_bytes(open(os.path.join(data_dir, "train-00000-of-00002.array_record"),
                             "rb").read()[:5000])
  with pytest.raises(record.RecordError, match=f"^{truncated}: not a readable ArrayRecord"):
    ip.ShardSource([(str(truncated), 32)])
  manifest = manifest_lib.load(data_dir)
  manifest["datasets"]["pretrain"]["train"][0]["records"] += 1
  for entry in manifest["datasets"]["pretrain"]["train"]:
    os.symlink(os.path.join(data_dir, entry["path"]), tmp_path / entry["path"])
  (tmp_path / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(manifest_lib.ManifestError,
                     match="train-00000-of-00002.array_record: 32 records, the manifest says 33"):
    ip.split_source(str(tmp_path), "train")


def test_a_shard_the_manifest_does_not_list_is_refused(tmp_path, data_dir):
  """Another run's shard beside this run's would be read by a glob: refused by name."""
  manifest = manifest_lib.load(data_dir)
  (tmp_path / "pretrain").mkdir()
  for split, entries in manifest["datasets"]["pretrain"].items():
    for entry in entries:
      entry["path"] = f"pretrain/{entry['path']}"
      os.symlink(os.path.join(data_dir, os.path.basename(entry["path"])),
                 tmp_path / entry["path"])
  (tmp_path / "manifest.json").write_text(json.dumps(manifest))
  assert len(ip.split_source(str(tmp_path), "train")) == 64
  stale = tmp_path / "pretrain" / manifest_lib.shard_name("train", 2, 3)
  os.symlink(os.path.join(data_dir, manifest_lib.shard_name("train", 0, 2)), stale)
  (tmp_path / "pretrain" / ".tmp-0a1b-train-00000-of-00002.array_record").touch()  # ignored
  with pytest.raises(manifest_lib.ManifestError) as error:
    ip.split_source(str(tmp_path), "valid")
  assert str(error.value).startswith(f"{stale}: a shard that manifest.json does not list")
