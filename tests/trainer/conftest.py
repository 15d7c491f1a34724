"""Shared fixtures: small pipeline-like data directories written with schemas.record."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import types

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordWriter

from schemas import manifest as manifest_lib
from schemas import record
from schemas.constants import NUM_FEATURES, WINDOW_MINUTES
from schemas.features import FEATURE_NAMES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Tests compile the same small models in several processes: share a compilation cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"lsm-jax-cache-{os.getuid()}"))


def make_window(rng: np.random.Generator, split: str, missing: float = 0.1,
                subject: int = 0, start: int = 0, label: int = -1,
                exercise: int = -1) -> dict:
  """A learnable window: a per-window level plus fixed per-feature daily-like curves,
  noise, and missing values; a labelled window (label >= 0) adds a class-dependent
  level to a few features, so a classifier has something to find."""
  t = np.arange(WINDOW_MINUTES)[:, None]
  freq = np.linspace(1, 3, NUM_FEATURES)[None] * 2 * np.pi / WINDOW_MINUTES
  phase = np.linspace(0, np.pi, NUM_FEATURES)[None]
  values = (rng.normal() + np.sin(freq * t + phase)
            + 0.1 * rng.normal(size=(WINDOW_MINUTES, NUM_FEATURES)))
  if exercise == 1:
    values[:, :4] += 1.0
  if label >= 0:
    values[:, 4 + label] += 1.5
  observed = rng.random((WINDOW_MINUTES, NUM_FEATURES)) >= missing
  values = np.where(observed, values, 0.0).astype(np.float32)
  return {"values": values, "mask": observed, "subject": f"{subject:032x}", "split": split,
          "start": int(start), "missing_ratio": float(1 - observed.mean()),
          "label": label, "exercise": exercise}


def _write_dataset(path: str, dataset: str, counts: dict[str, int], shards: int,
                   rng: np.random.Generator, subjects: int) -> dict[str, list]:
  """Shards of one dataset; window i of a split belongs to subject i % subjects (train
  subjects 0.., valid and test subjects offset so no subject spans splits); a
  "labelled" window i is exercise class i % 8 for odd i, non-exercise for even i."""
  splits = {}
  for s, (split, count) in enumerate(counts.items()):
    entries = []
    per_shard = np.array_split(np.arange(count), shards)
    for i, idx in enumerate(per_shard):
      name = manifest_lib.shard_name(split, i, shards)
      if dataset != "pretrain":
        name = f"{dataset}-{name}"
      writer = ArrayRecordWriter(os.path.join(path, name), "group_size:1")
      for j in idx:
        labels = {}
        if dataset == "labelled":
          labels = ({"label": int(j // 2 % 8), "exercise": 1} if j % 2
                    else {"label": -1, "exercise": 0})
        writer.write(record.encode(make_window(
            rng, split, subject=1000 * s + int(j % subjects), start=300 * int(j),
            **labels)))
      writer.close()
      entries.append({"path": name, "records": int(len(idx))})
    splits[split] = entries
  return splits


def write_data_dir(path: str, counts: dict[str, int], shards: int = 2, seed: int = 0,
                   labelled: dict[str, int] | None = None, subjects: int = 1) -> str:
  """Writes DIR/manifest.json and ArrayRecord shards like the pipeline does (with
  `labelled` counts also a "labelled" dataset, and train_statistics)."""
  os.makedirs(path, exist_ok=True)
  rng = np.random.default_rng(seed)
  datasets = {"pretrain": _write_dataset(path, "pretrain", counts, shards, rng, subjects)}
  if labelled:
    datasets["labelled"] = _write_dataset(path, "labelled", labelled, shards, rng, subjects)
  manifest = {"manifest_version": manifest_lib.MANIFEST_VERSION,
              "record_version": record.VERSION, "window_minutes": WINDOW_MINUTES,
              "feature_names": list(FEATURE_NAMES), "datasets": datasets,
              "train_statistics": {name: {"mean": 10.0 + i, "std": 2.0, "count": 1}
                                   for i, name in enumerate(FEATURE_NAMES)}}
  with open(os.path.join(path, manifest_lib.MANIFEST_NAME), "w") as f:
    json.dump(manifest, f)
  return path


def write_corrupt_copy(out: str, data_dir: str, split: str, shard: int, index: int,
                 how: str) -> tuple[str, str]:
  """A copy of data_dir (shards linked) at `out` whose pretrain `split` shard number
  `shard` is rewritten uncompressed with record `index` damaged; returns (out, that
  shard's path). how: "record" flips a byte of the record before it is written (the
  record's CRC32C fails, ArrayRecord's hashes pass); "chunk" flips a byte of its chunk
  in the written file (ArrayRecord's chunk data hash fails)."""
  from grain.sources import ArrayRecordDataSource  # pylint: disable=g-import-not-at-top
  os.makedirs(out)
  manifest = manifest_lib.load(data_dir)
  for entries in manifest["datasets"]["pretrain"].values():
    for entry in entries:
      os.symlink(os.path.join(data_dir, entry["path"]), os.path.join(out, entry["path"]))
  with open(os.path.join(out, manifest_lib.MANIFEST_NAME), "w") as f:
    json.dump(manifest, f)
  name = manifest["datasets"]["pretrain"][split][shard]["path"]
  source = ArrayRecordDataSource([os.path.join(data_dir, name)])
  records = [bytearray(source[i]) for i in range(len(source))]
  if how == "record":
    records[index][1000] ^= 0x01
  path = os.path.join(out, name)
  os.remove(path)
  writer = ArrayRecordWriter(path, "group_size:1,uncompressed")
  for data in records:
    writer.write(bytes(data))
  writer.close()
  if how == "chunk":
    data = bytearray(open(path, "rb").read())
    data[data.index(records[index][2000:2064]) + 10] ^= 0x01
    with open(path, "wb") as f:
      f.write(data)
  return out, path


@pytest.fixture(name="corrupt_copy", scope="session")
def corrupt_copy_fixture():
  return write_corrupt_copy


@pytest.fixture(scope="session")
def labelled_data_dir(tmp_path_factory) -> str:
  """Pretrain 64/16/16 windows of 8 subjects plus a "labelled" dataset (train 96 windows:
  48 exercise with 6 of each class, 48 non-exercise; test 32)."""
  return write_data_dir(str(tmp_path_factory.mktemp("labelled")),
                        {"train": 64, "valid": 16, "test": 16},
                        labelled={"train": 96, "test": 32}, subjects=8)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
  """64 train, 16 valid, 16 test windows in two shards per split."""
  return write_data_dir(str(tmp_path_factory.mktemp("data")),
                        {"train": 64, "valid": 16, "test": 16})


def small_config(data_dir: str, size: str = "nano", **overrides):
  """A config for fast CPU tests."""
  from trainer.configs import mae  # pylint: disable=g-import-not-at-top
  config = mae.get_config(size)
  config.data_dir = data_dir
  config.batch_size = 8
  config.num_train_steps = 6
  config.learning_rate = 1e-3
  config.log_every_steps = 1
  config.eval_every_steps = 3
  config.eval_batches = 1
  config.checkpoint_every_steps = 2
  config.progress_bar = False
  config.plot_windows = 2
  config.async_checkpoints = False
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.fixture(scope="session")
def make_config():
  return small_config


def device_losses(data_dir: str, shard_params: list, steps: int = 3) -> dict:
  """Losses of the first steps on this process's devices, per shard_params setting.

  Run in-process (one CPU device) and in a subprocess with 8 simulated devices.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from trainer import input_pipeline, train  # pylint: disable=g-import-not-at-top
  out = {}
  for shard in shard_params:
    config = small_config(data_dir, shard_params=shard)
    trainer = train.Trainer(config)
    iterator = input_pipeline.train_iterator(config)
    losses = []
    for _ in range(steps):
      trainer.state, m = trainer.train_step(trainer.state, trainer.device_batch(next(iterator)))
      losses.append(float(m["loss"]))
    out[str(shard)] = losses
  return {"devices": jax.device_count(), "losses": out}


@pytest.fixture(name="device_losses", scope="session")
def device_losses_fixture():
  return device_losses


@pytest.fixture(scope="session")
def repo_dir():
  return REPO


def run_env(**extra) -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  env.update(extra)
  return env


@pytest.fixture
def subprocess_env():
  return run_env


@pytest.fixture
def python():
  return sys.executable


def read_events(logdir: str):
  """(step, tag) of every scalar and image in a directory's event files, and the accumulator.

  Read back with TensorBoard's own EventAccumulator; an empty
  `tensorboard.compat.notf` module is TensorBoard's switch to its TF-free stub.
  """
  import glob  # pylint: disable=g-import-not-at-top
  sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  assert glob.glob(os.path.join(logdir, "events.out.tfevents.*")), f"no event file in {logdir}"
  acc = event_accumulator.EventAccumulator(logdir, size_guidance={"scalars": 0, "images": 0})
  acc.Reload()
  tags = acc.Tags()
  events = [(e.step, tag) for tag in tags["scalars"] for e in acc.Scalars(tag)]
  events += [(e.step, tag) for tag in tags["images"] for e in acc.Images(tag)]
  return events, acc


@pytest.fixture(name="read_events")
def read_events_fixture():
  return read_events
