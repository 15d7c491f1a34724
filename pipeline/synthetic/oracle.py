"""The noise-free oracle of a synthetic cohort's pipeline output: lsm-eval --oracle.

  python -m pipeline.synthetic.oracle --data PIPELINE_OUT --seed S --subjects N
      --days D --subject_hash_key_file KEY --output ORACLE.npz [--splits test,valid]

The generator knows each subject's signal (physiology.generate_subject(...,
noise_free=True): everything but the measurement noise), so on synthetic data the
best any imputer could do is known. For every pretrain window of the chosen splits
this writes the window's noise-free values, normalised with the constants of the
pipeline's saved transform (the manifest's train_statistics are the graph's float32
__mean/__std outputs, so pipeline.normalise.constants rebuilds them exactly; clip to
the clip range and to +-5 included), as a plain .npz: subject (keyed hash, str
[N]), start (UTC minutes since the epoch, int64 [N]), values (float32 [N, T, F]) and
smooth (the same with smooth=True: without the per-minute terms shared by features,
the approximate best prediction where a whole minute is hidden). lsm-eval scores
them as the "oracle" and "oracle_smooth" methods on exactly the masks of every other
method.

The cohort's arguments (seed, subjects, days: those lsm-synth was given) and the
subject-hash key (the pipeline's) find each window's subject and minutes: a window
starts at UTC minute `start`, the subject's minute `start - first_utc_minute`.
Every window is checked: the noisy subject regenerated and normalised the same way
must reproduce the window's observed values (to MATCH_TOLERANCE), so other
arguments, another key or data that is not this cohort raise an error naming the
window instead of writing an oracle of the wrong minutes. Lives in the pipeline
package because it needs the pipeline's transform (the trainer never imports it).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import Mapping, Sequence

from array_record.python.array_record_module import ArrayRecordReader
import numpy as np

from pipeline.synthetic import physiology
from schemas import manifest as manifest_lib
from schemas import record
from schemas.features import FEATURE_NAMES

# Largest |z| difference allowed between a window's observed value and the noisy
# regeneration's: float32 rounding of the same numbers (the pipeline parses the
# files' decimals back to the generator's float32), far below any misalignment.
MATCH_TOLERANCE = 1e-4


def graph_constants(manifest: Mapping):
  """pipeline.normalise.Constants from the manifest's train_statistics (the saved
  graph's float32 mean and std per feature, LSM order)."""
  from pipeline import normalise  # pylint: disable=g-import-not-at-top (imports Beam)
  stats = manifest["train_statistics"]
  mean = np.array([stats[name]["mean"] for name in FEATURE_NAMES], np.float32)
  std = np.array([stats[name]["std"] for name in FEATURE_NAMES], np.float32)
  return normalise.constants(mean, std)


def read_split(data_dir: str, split: str, manifest: Mapping) -> list[dict]:
  """schemas.record.decode of every pretrain window of one split (none: [])."""
  try:
    shards = manifest_lib.shards(data_dir, split, "pretrain", dict(manifest))
  except manifest_lib.ManifestError:
    return []
  windows = []
  for path, n in shards:
    if not n:
      continue
    reader = ArrayRecordReader(path)
    try:
      windows += [record.decode(r) for r in reader.read_all()]
    finally:
      reader.close()
  return windows


def first_utc_minute(subject: physiology.Subject) -> int:
  """UTC minutes since the epoch of the subject's minute 0 (local midnight of its
  start date at its fixed home offset)."""
  day = subject.start_date.astype("datetime64[D]").astype(np.int64)
  return int(day) * physiology.MINUTES_PER_DAY - subject.tz_offset_minutes


def subjects_by_hash(seed: int, subjects: int, key: bytes) -> dict[str, int]:
  """{keyed hash: subject index} of the cohort's subjects (schemas.record.subject_hash
  of physiology.subject_id)."""
  return {record.subject_hash(physiology.subject_id(seed, k), key): k for k in range(subjects)}


def oracle_windows(windows: Sequence[Mapping], seed: int, subjects: int, days: int,
                   key: bytes, constants) -> dict[str, np.ndarray]:
  """{"values", "smooth"}: float32 [N, T, F] each, every window's noise-free values
  (generate_subject noise_free=True; smooth: also smooth=True), normalised with
  `constants`.

  Raises ValueError naming the window (subject hash, start) when its subject is not
  one of the cohort's, its minutes fall outside the subject's days, or the noisy
  regeneration does not reproduce its observed values.
  """
  from pipeline import normalise  # pylint: disable=g-import-not-at-top (imports Beam)
  index = subjects_by_hash(seed, subjects, key)
  cache: dict[int, tuple[int, np.ndarray, np.ndarray, np.ndarray]] = {}
  out: dict[str, list[np.ndarray]] = {"values": [], "smooth": []}
  for w in windows:
    where = f"window of subject {w['subject']} starting at UTC minute {w['start']}"
    if w["subject"] not in index:
      raise ValueError(f"{where}: not a subject of cohort seed {seed} ({subjects} subjects) "
                       "under this key")
    k = index[w["subject"]]
    if k not in cache:
      noisy = physiology.generate_subject(seed, k, days)
      clean = physiology.generate_subject(seed, k, days, noise_free=True)
      smooth = physiology.generate_subject(seed, k, days, noise_free=True, smooth=True)
      cache = {k: (first_utc_minute(noisy), noisy.values, clean.values,  # one at a time
                   smooth.values)}
    first, noisy, clean, smooth = cache[k]
    t, _ = w["values"].shape
    offset = int(w["start"]) - first
    if offset < 0 or offset + t > len(clean):
      raise ValueError(f"{where}: outside the subject's {days} days (minute {offset})")
    z_noisy, z_clean, z_smooth = (_normalised(v[offset:offset + t], constants, normalise)
                                  for v in (noisy, clean, smooth))
    observed = np.asarray(w["mask"], bool)
    differ = np.abs(z_noisy - w["values"])[observed]
    if differ.size and differ.max() > MATCH_TOLERANCE:
      raise ValueError(f"{where}: the regenerated subject differs from the window's observed "
                       f"values by up to {differ.max():.3g} (normalised): not this cohort's "
                       "seed, days or key")
    out["values"].append(z_clean)
    out["smooth"].append(z_smooth)
  t, f = (windows[0]["values"].shape if windows else (0, len(FEATURE_NAMES)))
  return {name: np.stack(z) if z else np.zeros((0, t, f), np.float32)
          for name, z in out.items()}


def _normalised(values: np.ndarray, constants, normalise) -> np.ndarray:
  """[T, F] physical -> z through the transform's numpy path (the graph's, bit for bit)."""
  z = normalise.apply_constants(values[None], constants)
  if z is None:
    raise ValueError("subnormal values: the numpy transform defers them to the graph")
  return z[0]


def write(path: str, subject: np.ndarray, start: np.ndarray, values: np.ndarray,
          smooth: np.ndarray) -> None:
  """The oracle file: plain arrays (np.load(path, allow_pickle=False))."""
  buf = io.BytesIO()
  np.savez_compressed(buf, subject=np.asarray(subject, dtype="U64"),
                      start=np.asarray(start, np.int64), values=values.astype(np.float32),
                      smooth=smooth.astype(np.float32))
  with open(path, "wb") as f:
    f.write(buf.getvalue())


def build(data_dir: str, seed: int, subjects: int, days: int, key: bytes,
          splits: Sequence[str] = ("test", "valid")) -> dict[str, np.ndarray]:
  """{subject, start, values, smooth} of every pretrain window of `splits` (module
  docstring)."""
  manifest = manifest_lib.load(data_dir)
  windows = [w for split in splits for w in read_split(data_dir, split, manifest)]
  if not windows:
    raise ValueError(f"{data_dir}: no pretrain windows in splits {list(splits)}")
  windows.sort(key=lambda w: (w["subject"], w["start"]))   # one subject at a time
  arrays = oracle_windows(windows, seed, subjects, days, key, graph_constants(manifest))
  return {"subject": np.array([w["subject"] for w in windows], dtype="U64"),
          "start": np.array([w["start"] for w in windows], np.int64), **arrays}


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True, help="lsm-pipeline output (manifest.json)")
  parser.add_argument("--seed", type=int, required=True, help="lsm-synth --seed")
  parser.add_argument("--subjects", type=int, required=True, help="lsm-synth --subjects")
  parser.add_argument("--days", type=int, required=True, help="lsm-synth --days")
  parser.add_argument("--subject_hash_key_file", required=True,
                      help="the key file lsm-pipeline hashed subject ids with")
  parser.add_argument("--output", required=True, help="the .npz to write")
  parser.add_argument("--splits", default="test,valid", help="pretrain splits, comma-separated")
  args = parser.parse_args(argv)
  from pipeline import keys  # pylint: disable=g-import-not-at-top (imports Beam)
  key = keys.KeyRef(file=args.subject_hash_key_file).resolve()
  arrays = build(args.data, args.seed, args.subjects, args.days, key,
                 [s.strip() for s in args.splits.split(",") if s.strip()])
  write(args.output, **arrays)
  print(json.dumps({"output": args.output, "windows": int(len(arrays["start"])),
                    "subjects": int(len(set(arrays["subject"])))}))


if __name__ == "__main__":
  main(sys.argv[1:])
