"""The trainer writes its metrics, event files, PNGs, config and report through
etils.epath: a gs:// workdir on a fake (in-memory) object store, nothing local."""

from __future__ import annotations

import json
import os

import fsspec
from fsspec.implementations.memory import MemoryFileSystem
import ml_collections
import pytest

from trainer import inference, paths, plots, report, summaries, train


class FakeGCS(MemoryFileSystem):
  """An in-memory file system serving gs:// (epath's fsspec backend asks for "gcs")."""
  protocol = ("gs", "gcs")
  root_marker = ""
  store: dict = {}
  pseudo_dirs = [""]

  def __init__(self, *args, finalize_on_close=False, **kwargs):  # gcsfs's argument
    super().__init__(*args, **kwargs)


@pytest.fixture(name="bucket")
def bucket_fixture(tmp_path, monkeypatch):
  """gs://bucket served from memory; the test runs in an empty local folder."""
  for name in FakeGCS.protocol:
    fsspec.register_implementation(name, FakeGCS, clobber=True)
  FakeGCS.store.clear()
  FakeGCS.pseudo_dirs[:] = [""]
  FakeGCS.clear_instance_cache()
  monkeypatch.chdir(tmp_path)
  yield FakeGCS.store
  assert os.listdir(tmp_path) == [], "something was written locally"


def stored(store, path):
  return store[path].getvalue()


def test_metrics_and_event_files_go_to_the_object_store(bucket, tmp_path_factory,
                                                        read_events):
  writer = summaries.Writer("gs://bucket/run", "valid")
  writer.scalars(6, {"loss": 0.5})
  writer.scalars(12, {"loss": 0.25})
  figure = plots.new_figure(size=(2, 1))
  figure.add_subplot().plot([0, 1])
  writer.figure(12, "reconstruction", figure)
  writer.close()
  assert summaries.read_jsonl("gs://bucket/run/metrics_valid.jsonl") == {
      6: {"loss": 0.5}, 12: {"loss": 0.25}}
  [event_file] = [k for k in bucket if k.startswith("gs://bucket/run/tensorboard/valid/events.out")]
  local = tmp_path_factory.mktemp("events")
  (local / os.path.basename(event_file)).write_bytes(bucket[event_file].getvalue())
  events, acc = read_events(str(local))
  assert sorted(events) == [(6, "loss"), (12, "loss"), (12, "reconstruction")]
  assert [e.value for e in acc.Scalars("loss")] == [0.5, 0.25]


def test_config_plots_and_report_go_to_the_object_store(bucket):
  config = ml_collections.ConfigDict({"num_train_steps": 12, "model": {"size": "nano"}})
  train.save_config(config, "gs://bucket/run")
  assert inference.load_config("gs://bucket/run").to_dict() == config.to_dict()
  figure = plots.new_figure()
  figure.add_subplot().plot([0, 1])
  plots.save(figure, "gs://bucket/run/eval/curve.png")
  assert stored(bucket, "gs://bucket/run/eval/curve.png").startswith(b"\x89PNG")
  results_path, report_path = report.write_report(
      "gs://bucket/run", {}, {}, budget_note="a test", figures={"curve": "curve.png"})
  assert results_path == "gs://bucket/run/eval/results.json"
  results = json.loads(stored(bucket, results_path))
  assert results["figures"] == {"curve": "curve.png"}
  assert "![curve](curve.png)" in stored(bucket, report_path).decode()


def test_a_missing_figure_on_the_object_store_is_named(bucket):
  with pytest.raises(FileNotFoundError, match="gs://bucket/run/eval/none.png does not exist"):
    report.write_report("gs://bucket/run", {}, {}, budget_note="x",
                        figures={"curve": "none.png"})


def test_join_keeps_the_scheme():
  assert paths.join("gs://bucket/run", "eval", "a.png") == "gs://bucket/run/eval/a.png"
  assert paths.join("/tmp/run", "eval") == "/tmp/run/eval"
