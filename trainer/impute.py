"""lsm-impute and lsm-embed: a person's own export in, their minutes filled (or embedded) out.

  lsm-impute --checkpoint=RUN --input=EXPORT [--input=...] --output=OUT [--tz=ZONE]
      [--format=auto] [--horizon_minutes=120] [--draws=4] [--csv] [--noplots]
  lsm-embed --checkpoint=RUN --input=EXPORT --output=OUT [--tz=ZONE]

Two steps. The pipeline step (`python -m pipeline.prepare`, run here as a
subprocess because it needs TensorFlow, which never enters this process) reads the
inputs with lsm-pipeline's adapters and validation, aligns each subject to its UTC
minute grid, cuts overlapping windows that cover every minute and normalises them
with the checkpoint's pre-training output's saved transform graph (applied, never
re-analysed); schemas/prepared.py is the folder it writes. `--prepared=DIR` skips
it (a folder prepared earlier, e.g. for a cohort on Dataflow). The model step
(this module) refuses a folder whose transform graph is not the pre-training run's
(SHA-256 over the graph's files), fills every missing minute of every window,
blends overlapping windows, inverts the normalisation with the graph's own
constants (checked against the manifest's train_statistics the model was trained
with), and writes one row per subject and UTC minute.

Observed minutes are passed through as the aligned physical values the pipeline
read (float32, bit for bit), never a de-normalised round trip. A missing minute is
imputed when an observation of the same feature lies within --horizon_minutes;
farther away, and for features the export never observed, it stays missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any, Iterable

from absl import app
from absl import flags
from absl import logging
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas import manifest as manifest_lib
from schemas import prepared
from schemas.features import FEATURE_NAMES, feature_array

FLAGS = flags.FLAGS
STATUS = ("missing", "observed", "imputed")  # the status column's values, by code
MISSING, OBSERVED, IMPUTED = range(3)
IMPUTED_NAME = "imputed"
EMBEDDINGS_NAME = "embeddings.parquet"
CLIP = feature_array("clip_range")  # [F, 2] physical clip range of each feature
# Extra positions hidden in each uncertainty draw after the first: a tenth of what
# the model sees, so a draw keeps most of its context (our choice, not LSM's).
DRAW_HIDE_RATIO = 0.1


class ImputeError(ValueError):
  """Input the model step refuses: another transform graph, other constants."""


# ------------------------------------------------------------------ the pre-training run

def pretrain_transform(config, data: str | None) -> tuple[str, str, dict]:
  """(pre-training output dir, SHA-256 of its transform graph, its manifest) of a
  checkpoint: --data, or the data_dir the run was trained on."""
  data_dir = data or config.data_dir
  manifest = manifest_lib.load(data_dir)
  transform_dir = os.path.join(data_dir, manifest.get("transform_dir", "transform"))
  return data_dir, prepared.transform_fingerprint(transform_dir), manifest


def check_transform(meta: dict, expected: str, data_dir: str) -> None:
  """Raises ImputeError unless the prepared folder was normalised by the graph the
  model was trained on."""
  got = meta.get("transform_sha256")
  if got != expected:
    raise ImputeError(
        f"the windows were normalised with transform graph sha256 {str(got)[:12]}..., "
        f"not the model's pre-training graph ({data_dir}/transform, sha256 "
        f"{expected[:12]}...); prepare them with --data={data_dir}")


def check_constants(grid: dict, statistics: dict) -> None:
  """Raises ImputeError when the graph's centre / scale differ from the manifest's
  train_statistics (float32 tolerance): the model learnt on those numbers."""
  mean = np.array([statistics[n]["mean"] for n in FEATURE_NAMES], np.float32)
  std = np.array([statistics[n]["std"] for n in FEATURE_NAMES], np.float32)
  scale = np.where(std > 0, std, 1.0).astype(np.float32)
  bad = ~(np.isclose(grid["mean"], mean, rtol=1e-5, atol=1e-6)
          & np.isclose(grid["scale"], scale, rtol=1e-5, atol=1e-6))
  if bad.any():
    raise ImputeError(f"normalisation constants of {FEATURE_NAMES[np.argmax(bad)]} differ "
                      "from the pre-training manifest's train_statistics")


# --------------------------------------------------------------------------- filling

def blend_weights(window: int) -> np.ndarray:
  """float32 [T]: a window's say over its minutes, highest mid-window (1 at the
  centre, 1/(T/2) at the edges) where the model has context on both sides."""
  t = np.arange(window)
  return (np.minimum(t + 1, window - t) / (window / 2)).astype(np.float32)


def blend(predictions: np.ndarray, offsets: np.ndarray, minutes: int) -> np.ndarray:
  """Window predictions [n, T, F] -> per-minute weighted mean [M, F] (NaN where no
  window covers a minute, e.g. one left out for holding no observation)."""
  n, window, f = predictions.shape
  index = (offsets[:, None] + np.arange(window)).reshape(-1)
  inside = index < minutes  # a grid shorter than a window pads its one window
  index = index[inside]
  w = np.broadcast_to(blend_weights(window), (n, window)).reshape(-1)[inside]
  weighted = predictions.reshape(-1, f)[inside] * w[:, None]
  total = np.stack([np.bincount(index, weights=weighted[:, k], minlength=minutes)
                    for k in range(f)], axis=1)
  weight = np.bincount(index, weights=w, minlength=minutes)[:, None]
  with np.errstate(invalid="ignore"):
    return np.where(weight > 0, total / weight, np.nan)


def window_observed(grid: dict) -> np.ndarray:
  """bool [n, T, F]: which window positions hold an observed value."""
  values, offsets = grid["values"], grid["offsets"]
  window = grid["z"].shape[1]
  index = offsets[:, None] + np.arange(window)
  inside = index < len(values)
  out = np.zeros(index.shape + values.shape[1:], bool)
  out[inside] = ~np.isnan(values[index[inside]])
  return out


def fill(model, grid: dict, draws: int, seed: int,
         wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(blended normalised prediction [M, F], spread over draws [M, F], NaN for one draw).

  Only windows holding a minute in `wanted` (bool [M, F]) go through the model: every
  window covering such a minute does, so its blend is exact, and a recording that is
  mostly observed costs little.

  Draw 0 shows the model everything observed; each further draw also hides a random
  DRAW_HIDE_RATIO of the observed positions, so the spread of the draws says how
  much a filled value depends on the exact context (a cheap uncertainty, not a
  calibrated interval).
  """
  minutes = len(grid["values"])
  needed = np.concatenate([[0], np.cumsum(wanted.any(axis=1))])
  ends = np.minimum(grid["offsets"] + grid["z"].shape[1], minutes)
  keep = needed[ends] > needed[grid["offsets"]]
  z, offsets = grid["z"][keep], grid["offsets"][keep]
  observed = window_observed(grid)[keep]
  rng = np.random.default_rng([seed, grid["start"]])
  runs = []
  for d in range(max(draws, 1)):
    hidden = ~observed
    if d:
      hidden = hidden | (rng.random(observed.shape) < DRAW_HIDE_RATIO)
    runs.append(blend(model.reconstruct(z, observed, hidden), offsets, minutes)
                if len(z) else np.full(wanted.shape, np.nan))
  spread = np.std(runs, axis=0) if len(runs) > 1 else np.full_like(runs[0], np.nan)
  return runs[0], spread


def distance_to_observed(observed: np.ndarray) -> np.ndarray:
  """int64 [M, F]: minutes to the nearest observed minute of the same feature
  (a large number where the feature is never observed)."""
  m = len(observed)
  big = np.int64(1) << 40
  index = np.arange(m, dtype=np.int64)[:, None]
  before = np.maximum.accumulate(np.where(observed, index, -big), axis=0)
  after = np.minimum.accumulate(np.where(observed, index, 2 * big)[::-1], axis=0)[::-1]
  return np.minimum(index - before, after - index)


def impute_grid(model, grid: dict, horizon: int, draws: int, seed: int) -> dict:
  """One prepared grid to physical per-minute arrays: value float32 [M, F] (observed
  minutes exactly the grid's values), status int8 [M, F] (STATUS codes), sd float32
  [M, F] (physical spread over draws, imputed minutes only)."""
  values = grid["values"]
  observed = ~np.isnan(values)
  wanted = ~observed & (distance_to_observed(observed) <= horizon)
  z, spread = fill(model, grid, draws, seed, wanted)
  physical = np.clip(z * grid["scale"] + grid["mean"], CLIP[:, 0], CLIP[:, 1])
  imputed = wanted & ~np.isnan(z)
  status = np.where(observed, OBSERVED, np.where(imputed, IMPUTED, MISSING)).astype(np.int8)
  value = np.where(observed, values, np.where(imputed, physical, np.nan)).astype(np.float32)
  sd = np.where(imputed, spread * grid["scale"], np.nan).astype(np.float32)
  return {"start": grid["start"], "value": value, "status": status, "sd": sd}


def subject_table(subject: str, pieces: list[dict], features: np.ndarray) -> pa.Table:
  """One subject's rows, one per UTC minute from its first to its last (minutes
  between segments are missing), columns: subject, minute, then per feature f in
  `features`: f (float32), f_status (observed / imputed / missing), f_sd."""
  first = min(p["start"] for p in pieces)
  minutes = max(p["start"] + len(p["value"]) for p in pieces) - first
  f = len(FEATURE_NAMES)
  value = np.full((minutes, f), np.nan, np.float32)
  status = np.full((minutes, f), MISSING, np.int8)
  sd = np.full((minutes, f), np.nan, np.float32)
  for p in pieces:
    rows = slice(p["start"] - first, p["start"] - first + len(p["value"]))
    value[rows], status[rows], sd[rows] = p["value"], p["status"], p["sd"]
  columns = {"subject": pa.array(np.full(minutes, subject)),
             "minute": pa.array((first + np.arange(minutes, dtype=np.int64)) * 60,
                                pa.timestamp("s", tz="UTC"))}
  dictionary = pa.array(STATUS)
  for i in features:
    name = FEATURE_NAMES[i]
    columns[name] = pa.array(value[:, i])
    columns[f"{name}_status"] = pa.DictionaryArray.from_arrays(pa.array(status[:, i]),
                                                               dictionary)
    columns[f"{name}_sd"] = pa.array(sd[:, i])
  return pa.table(columns)


def by_subject(grids: Iterable[dict]):
  """Consecutive grids of one subject (prepared.json lists them sorted)."""
  subject, group = None, []
  for g in grids:
    if group and g["subject"] != subject:
      yield subject, group
      group = []
    subject = g["subject"]
    group.append(g)
  if group:
    yield subject, group


def present_features(folder: str, meta: dict) -> np.ndarray:
  """Indices of the features observed at least once in the prepared recording."""
  seen = np.zeros(len(FEATURE_NAMES), bool)
  for g in prepared.grids(folder, meta):
    seen |= ~np.all(np.isnan(g["values"]), axis=0)
  return np.flatnonzero(seen)


def impute(model, folder: str, out: str, statistics: dict, horizon: int, draws: int,
           seed: int = 0, csv: bool = False, plots: bool = True) -> dict:
  """Fills a prepared recording; writes OUT/imputed.parquet (+ .csv, plots/);
  returns a summary (minutes per status and feature, subjects)."""
  meta = prepared.load_meta(folder)
  features = present_features(folder, meta)
  tables = []
  for subject, grids in by_subject(prepared.grids(folder, meta)):
    pieces = []
    for g in grids:
      check_constants(g, statistics)
      pieces.append(impute_grid(model, g, horizon, draws, seed))
    tables.append(subject_table(subject, pieces, features))
  if not tables:
    raise ImputeError(f"{folder}: no subject with an observed minute to impute from")
  table = pa.concat_tables(tables)
  os.makedirs(out, exist_ok=True)
  pq.write_table(table, os.path.join(out, IMPUTED_NAME + ".parquet"))
  if csv:
    table.to_pandas().to_csv(os.path.join(out, IMPUTED_NAME + ".csv"), index=False)
  if plots:
    from trainer import impute_plots  # pylint: disable=g-import-not-at-top
    impute_plots.subject_days(table, [FEATURE_NAMES[i] for i in features],
                              os.path.join(out, "plots"))
  return summary(table, features)


def summary(table: pa.Table, features: np.ndarray) -> dict[str, Any]:
  """Minutes per status per feature, rows and subjects of the written table."""
  out = {"rows": table.num_rows,
         "subjects": len(pc.unique(table["subject"])), "features": {}}
  for i in features:
    name = FEATURE_NAMES[i]
    codes = table[f"{name}_status"].combine_chunks().indices.to_numpy()
    out["features"][name] = {s: int((codes == k).sum()) for k, s in enumerate(STATUS)}
  return out


def embed(model, folder: str, out: str) -> int:
  """One embedding per prepared window: OUT/embeddings.parquet with subject,
  window_start (UTC), observed_fraction and embedding (float32 [D]); returns rows."""
  meta = prepared.load_meta(folder)
  subjects, starts, fractions, vectors = [], [], [], []
  for g in prepared.grids(folder, meta):
    observed = window_observed(g)
    vectors.append(model.embed(g["z"], observed).astype(np.float32))
    starts.append(g["start"] + g["offsets"])
    fractions.append(observed.mean(axis=(1, 2)).astype(np.float32))
    subjects += [g["subject"]] * len(g["offsets"])
  vectors = np.concatenate(vectors)
  table = pa.table({
      "subject": pa.array(subjects),
      "window_start": pa.array(np.concatenate(starts) * 60, pa.timestamp("s", tz="UTC")),
      "observed_fraction": pa.array(np.concatenate(fractions)),
      "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)),
                                                     vectors.shape[1])})
  os.makedirs(out, exist_ok=True)
  pq.write_table(table, os.path.join(out, EMBEDDINGS_NAME))
  return table.num_rows


# ------------------------------------------------------------------------- commands

def define_flags(embedding: bool) -> None:
  """Flags of lsm-impute (embedding False) or lsm-embed."""
  flags.DEFINE_string("checkpoint", None, "lsm-train workdir (config.json, checkpoints).")
  flags.DEFINE_string("step", "best", "Checkpoint: best, latest or a step number.")
  flags.DEFINE_multi_string("input", [], "Input file, glob or E4 folder (repeatable), "
                            "anything lsm-pipeline reads.")
  flags.DEFINE_string("output", None, "Output folder.")
  flags.DEFINE_string("format", "auto", "Input format, as lsm-pipeline's --format.")
  flags.DEFINE_string("tz", None, "Timezone of local-time exports (Fitbit), as "
                      "lsm-pipeline's --tz.")
  flags.DEFINE_string("subject_id", None, "Subject of exports that name none.")
  flags.DEFINE_string("subject_hash_key_file", None, "The pipeline's subject-hash key "
                      "(or LSM_SUBJECT_HASH_KEY); the same key as the pipeline's runs.")
  flags.DEFINE_multi_string("pipeline_arg", [], "Further lsm-pipeline reading option for "
                            "the pipeline step, e.g. --pipeline_arg=--csv_delimiter=;")
  flags.DEFINE_string("data", None, "The pre-training lsm-pipeline output (default: the "
                      "checkpoint's config.data_dir): its transform graph normalises.")
  flags.DEFINE_string("prepared", None, "A folder pipeline.prepare wrote; skips the "
                      "pipeline step.")
  flags.DEFINE_integer("stride_minutes", 0, "Window stride of the pipeline step (0: half "
                       "a window for lsm-impute, a whole one for lsm-embed).")
  if embedding:
    return
  flags.DEFINE_integer("horizon_minutes", 120, "Impute a missing minute only when the "
                       "feature is observed within this many minutes.")
  flags.DEFINE_integer("draws", 4, "Model passes per window (uncertainty = their spread; "
                       "1: no uncertainty, a quarter of the time).")
  flags.DEFINE_integer("seed", 0, "Seed of the uncertainty draws.")
  flags.DEFINE_bool("csv", False, "Also write imputed.csv.")
  flags.DEFINE_bool("plots", True, "One PNG per subject-day under OUT/plots.")


def prepare(inputs: list[str], out: str, data_dir: str, stride: int,
            extra: list[str]) -> str:
  """Runs the pipeline step in a subprocess (TensorFlow stays out of this process);
  returns the prepared folder OUT/prepared. Exits with its one-line error."""
  folder = os.path.join(out, "prepared")
  shutil.rmtree(folder, ignore_errors=True)
  argv = [sys.executable, "-m", "pipeline.prepare", "--pretrain_data", data_dir,
          "--output", folder, "--dead_letter_dir", out.rstrip("/") + ".dead_letter",
          "--stride_minutes", str(stride)]
  for path in inputs:
    argv += ["--input", path]
  proc = subprocess.run(argv + extra, check=False)
  if proc.returncode:
    raise SystemExit(proc.returncode)
  return folder


def _pipeline_args() -> list[str]:
  out = [f"--format={FLAGS.format}"]
  for name in ("tz", "subject_id", "subject_hash_key_file"):
    if FLAGS[name].value is not None:
      out.append(f"--{name}={FLAGS[name].value}")
  return out + list(FLAGS.pipeline_arg)


def _run(embedding: bool) -> None:
  from trainer import inference  # pylint: disable=g-import-not-at-top
  if not FLAGS.checkpoint or not FLAGS.output or not (FLAGS.input or FLAGS.prepared):
    raise SystemExit("lsm-impute: --checkpoint, --output and --input (or --prepared) "
                     "are required")
  config = inference.load_config(FLAGS.checkpoint)
  data_dir, fingerprint, manifest = pretrain_transform(config, FLAGS.data)
  window = int(manifest["window_minutes"])
  folder = FLAGS.prepared or prepare(
      FLAGS.input, FLAGS.output, data_dir,
      FLAGS.stride_minutes or (window if embedding else window // 2), _pipeline_args())
  check_transform(prepared.load_meta(folder), fingerprint, data_dir)
  model = inference.load(FLAGS.checkpoint, FLAGS.step)
  if embedding:
    rows = embed(model, folder, FLAGS.output)
    logging.info("lsm-embed: %d windows -> %s", rows, os.path.join(FLAGS.output,
                                                                    EMBEDDINGS_NAME))
    return
  result = impute(model, folder, FLAGS.output, manifest["train_statistics"],
                  FLAGS.horizon_minutes, FLAGS.draws, FLAGS.seed, FLAGS.csv, FLAGS.plots)
  result.update(transform_sha256=fingerprint, checkpoint_step=model.step,
                horizon_minutes=FLAGS.horizon_minutes, draws=FLAGS.draws)
  with open(os.path.join(FLAGS.output, "summary.json"), "w") as f:
    json.dump(result, f, indent=1)
  logging.info("lsm-impute: %s", json.dumps(result))


def _main(embedding: bool):
  def run(argv):
    del argv
    try:
      _run(embedding)
    except (ImputeError, prepared.PreparedError, manifest_lib.ManifestError,
            FileNotFoundError) as e:
      sys.exit(f"lsm-{'embed' if embedding else 'impute'}: {e}")
  define_flags(embedding)
  app.run(run)


def main():
  _main(embedding=False)


def embed_main():
  _main(embedding=True)


if __name__ == "__main__":
  main()
