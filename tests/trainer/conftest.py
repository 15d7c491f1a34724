"""Shared fixtures: small pipeline-like data directories (schemas.testing.write_data_dir)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import types

import pytest
from array_record.python.array_record_module import ArrayRecordWriter

from schemas import manifest as manifest_lib
from schemas.testing import write_data_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Tests compile the same small models in several processes: share a compilation cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"lsm-jax-cache-{os.getuid()}"))


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


def device_losses(data_dir: str, settings: dict, steps: int = 3) -> dict:
  """Losses of the first steps on this process's devices, per named setting (config
  overrides, as small_config takes them).

  Run in-process (one CPU device) and in a subprocess with more simulated devices.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from trainer import input_pipeline, train  # pylint: disable=g-import-not-at-top
  out = {}
  for name, overrides in settings.items():
    config = small_config(data_dir, **overrides)
    trainer = train.Trainer(config)
    iterator = input_pipeline.train_iterator(config)
    losses = []
    for _ in range(steps):
      trainer.state, m = trainer.train_step(trainer.state, trainer.device_batch(next(iterator)))
      losses.append(float(m["loss"]))
    out[name] = losses
  return {"devices": trainer.mesh.devices.size, "losses": out}


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
