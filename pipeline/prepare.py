"""lsm-impute's pipeline step: an export to windows normalised by a pre-training run's graph.

  python -m pipeline.prepare --pretrain_data PRETRAIN_OUTPUT --input EXPORT... \
      --output PREPARED [--stride_minutes 150] [--tz ...] [--format auto] [any lsm-pipeline
      reading option: --subject_id, --csv_delimiter, --decimal, --subject_hash_key_file ...]

Reads the inputs exactly as lsm-pipeline does (pipeline.main.read_subjects: the same
detection, adapters, validation, dead letters and alignment), then per subject grid
cuts windows of the pre-training run's window_minutes every --stride_minutes from
the grid's first minute, plus one ending at its last minute (so every minute is in
a window; a grid shorter than a window is one window padded with missing minutes),
drops windows without any observed value, and normalises them with the
pre-training output's saved transform graph (pipeline.normalise.Transformer): the
graph is applied, never analysed again, so the numbers are exactly those the model
was trained on. Writes the folder schemas/prepared.py documents; the model step
(trainer/impute.py) runs without TensorFlow. Dead letters go to
--dead_letter_dir (default PREPARED.dead_letter), as lsm-pipeline's do.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline import counts, keys, main as pipeline_main, options as lsm_options
from pipeline.align import Grid
from pipeline.normalise import Transformer
from pipeline.read import match_inputs
from pipeline.windows import _take
from schemas import manifest as manifest_lib
from schemas import prepared
from schemas.features import FEATURE_NAMES


class PrepareOptions(PipelineOptions):
  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument("--pretrain_data",
                        help="the pre-training run's lsm-pipeline output (its manifest.json "
                             "and transform/); required")


def window_offsets(minutes: int, window: int, stride: int) -> np.ndarray:
  """int64 [n] window starts (minutes from the grid's first) covering all `minutes`:
  every `stride`, plus one ending at the last minute when the stride misses it."""
  last = max(minutes - window, 0)
  offsets = np.arange(0, last + 1, stride, dtype=np.int64)
  return offsets if offsets[-1] == last else np.append(offsets, last)


def cut(grid: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
  """(offsets [n], windows float32 [n, T, F] NaN missing) of one grid, without the
  windows that hold no observed value (the model has nothing to go on there)."""
  offsets = window_offsets(len(grid), window, stride)
  windows = _take(grid, offsets, window, np.nan)
  keep = ~np.isnan(windows).all(axis=(1, 2))
  return offsets[keep], windows[keep]


class PrepareGrid(beam.DoFn):
  """(subject, Grid) -> writes DIR/grids/<subject>-<segment>.npz; yields its path and
  counts (grids, windows prepared, minutes)."""

  def __init__(self, transform_dir: str, folder: str, window: int, stride: int):
    self._args = (transform_dir, folder, window, stride)
    self._transform = None

  def setup(self):
    self._transform = Transformer(self._args[0])

  def process(self, item):
    subject, grid = item
    _, folder, window, stride = self._args
    offsets, windows = cut(grid.values, window, stride)
    if not len(offsets):
      yield counts.emit({"prepare/grids_without_observations": 1})
      return
    z = self._transform(windows)
    stats = self._transform.statistics
    mean = np.array([stats[n]["mean"] for n in FEATURE_NAMES], np.float32)
    std = np.array([stats[n]["std"] for n in FEATURE_NAMES], np.float32)
    rel = prepared.grid_name(subject, grid.segment)
    with FileSystems.create(os.path.join(folder, rel)) as f:
      f.write(prepared.grid_bytes({
          "subject": subject, "start": np.int64(grid.start), "values": grid.values,
          "offsets": offsets, "z": z.astype(np.float32), "mean": mean,
          "scale": np.where(std > 0, std, 1.0).astype(np.float32)}))
    yield rel
    yield counts.emit({"prepare/grids": 1, "prepare/windows": len(offsets),
                       "prepare/minutes": len(grid.values)})


def build(p, opts, inputs, key, transform_dir: str, window: int):
  """The reading stages, then PrepareGrid; returns the written paths and the
  counts (one dict) as PCollections."""
  _, _, aligned, count_parts, letter_parts = pipeline_main.read_subjects(p, opts, inputs,
                                                                          key)
  stride = lsm_options.stride(opts)
  written = aligned.grids | "Prepare" >> beam.ParDo(
      PrepareGrid(transform_dir, opts.output, window, stride)).with_input_types(
      tuple[str, Grid]).with_outputs(counts.COUNTS, main="paths")
  count_parts.append(written[counts.COUNTS])
  letter_dir = lsm_options.dead_letter_dir(opts)
  pipeline_main._private_dead_letters(letter_dir, opts.output)  # pylint: disable=protected-access
  _ = (letter_parts | "AllDeadLetters" >> beam.Flatten()
       | "WriteDeadLetters" >> beam.io.WriteToText(
           os.path.join(letter_dir, "dead_letter"), file_name_suffix=".jsonl",
           num_shards=1, shard_name_template=""))
  total = (count_parts | "AllCounts" >> beam.Flatten()
           | "SumCounts" >> beam.CombineGlobally(counts.SumCounts()))
  return written.paths, total


def pretrain_transform(pretrain_data: str) -> tuple[str, int]:
  """(transform directory, window_minutes) of a pre-training lsm-pipeline output."""
  try:
    manifest = manifest_lib.load(pretrain_data)
  except manifest_lib.ManifestError as e:
    raise SystemExit(f"lsm-impute: {e}") from None
  return (os.path.join(pretrain_data, manifest.get("transform_dir", "transform")),
          int(manifest["window_minutes"]))


def run(argv=None) -> dict:
  """Runs the preparation; returns the prepared.json it wrote."""
  argv = list(argv or sys.argv[1:])
  lsm_options.check_no_stray_arguments(argv)
  opts = PipelineOptions(keys.literal_to_env(argv)).view_as(lsm_options.LsmOptions)
  pretrain_data = opts.view_as(PrepareOptions).pretrain_data
  if not opts.input or not opts.output or not pretrain_data:
    raise SystemExit("lsm-impute: --input, --output and --pretrain_data are required")
  standard = opts.view_as(StandardOptions)
  standard.runner = standard.runner or pipeline_main.LOCAL_RUNNER
  transform_dir, window = pretrain_transform(pretrain_data)
  fingerprint = prepared.transform_fingerprint(transform_dir)
  opts.window_minutes = window
  if not opts.stride_minutes:
    opts.stride_minutes = window // 2
  key = lsm_options.subject_key(opts)
  inputs = match_inputs(opts.input)
  lsm_options.check(opts)
  p = beam.Pipeline(options=opts)
  paths, total = build(p, opts, inputs, key, transform_dir, window)
  # Small: one path per subject segment, one counts dict.
  paths = paths | "PathList" >> beam.combiners.ToList()
  meta_dir = opts.output

  def write_meta(path_list, total_counts):
    meta = {"prepared_version": prepared.VERSION, "transform_sha256": fingerprint,
            "window_minutes": window, "stride_minutes": lsm_options.stride(opts),
            "grids": sorted(path_list), "counts": total_counts}
    with FileSystems.create(os.path.join(meta_dir, prepared.META_NAME)) as f:
      f.write(json.dumps(meta, indent=1, sort_keys=True).encode())
  _ = paths | "WriteMeta" >> beam.Map(write_meta, beam.pvalue.AsSingleton(total))
  p.run().wait_until_finish()
  if standard.runner == pipeline_main.LOCAL_RUNNER:
    tmp = os.path.join(opts.output, "tmp")
    if FileSystems.exists(tmp):
      FileSystems.delete([tmp])
  return prepared.load_meta(opts.output)


def main(argv=None) -> None:
  logging.getLogger().setLevel(logging.INFO)
  try:
    meta = run(argv)
  except Exception as e:  # the runner wraps a user error in its own
    message = pipeline_main.user_error(e)
    if message is None:
      raise
    sys.exit(message)
  c = meta["counts"]
  logging.info("lsm-impute: prepared %d grids, %d windows, %d minutes",
               c.get("prepare/grids", 0), c.get("prepare/windows", 0),
               c.get("prepare/minutes", 0))


if __name__ == "__main__":
  main()
