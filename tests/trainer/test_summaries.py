"""TensorBoard summaries: tensorboardX event files read back by TensorBoard, no TF."""

import os
import subprocess

from trainer import plots
from trainer import summaries


def test_scalars_and_figures_read_back_by_tensorboard(tmp_path, read_events):
  writer = summaries.Writer(str(tmp_path), "valid")
  writer.scalars(3, {"loss": 0.25, "mae": 1.5})
  writer.scalars(7, {"loss": 0.125})
  figure = plots.new_figure(size=(4, 2))
  figure.add_subplot().plot([0, 1], [1, 0])
  writer.figure(7, "reconstruction", figure)
  writer.close()
  events, acc = read_events(str(tmp_path / "tensorboard" / "valid"))
  assert sorted(events) == [(3, "loss"), (3, "mae"), (7, "loss"), (7, "reconstruction")]
  assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(3, 0.25), (7, 0.125)]
  image = acc.Images("reconstruction")[0]
  assert (image.width, image.height) == (400, 200)  # 4 x 2 inches at the figure's 100 dpi
  assert summaries.read_jsonl(str(tmp_path / "metrics_valid.jsonl")) == {
      3: {"loss": 0.25, "mae": 1.5}, 7: {"loss": 0.125}}


def test_a_disabled_writer_writes_nothing(tmp_path):
  writer = summaries.Writer(str(tmp_path), "train", enabled=False)
  writer.scalars(1, {"loss": 1.0})
  writer.close()
  assert os.listdir(tmp_path) == []


def test_trainer_modules_and_summaries_never_import_tensorflow(python, subprocess_env,
                                                               tmp_path):
  code = f"""
import sys
import trainer.train, trainer.evaluate, trainer.finetune, trainer.report, trainer.summaries
w = trainer.summaries.Writer({str(tmp_path)!r}, "train")
w.scalars(1, {{"loss": 1.0}})
w.close()
leaked = [m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")]
assert not leaked, leaked[:5]
"""
  out = subprocess.run([python, "-c", code], env=subprocess_env(), capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
