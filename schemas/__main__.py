"""Writes the data contract to a folder: feature table, TFMD schema, a sample record.

`python -m schemas --output DIR`: the first stage of the demo, and a quick way for a
user to see exactly what the pipeline's records and the trainer's inputs hold.
"""

import argparse
import json
import pathlib

import numpy as np

from schemas import constants, features, record, tfmd


def write_contract(output: pathlib.Path) -> list[pathlib.Path]:
  """Writes features.md (the feature table), window_schema.pbtxt (schemas.tfmd) and
  sample_record.json (a round-tripped sample record) under output; returns their
  paths. Raises OSError when output cannot be written."""
  output.mkdir(parents=True, exist_ok=True)
  table = output / "features.md"
  rows = ["| # | name | group | unit | valid range | clip range | aggregation | "
          "population mean | std |", "|---|---|---|---|---|---|---|---|---|"]
  for i, f in enumerate(features.FEATURES):
    rows.append(f"| {i} | {f.name} | {f.group} | {f.unit} | {f.valid_range} | "
                f"{f.clip_range} | {f.aggregation} | {f.population_mean} | "
                f"{f.population_std} |")
  table.write_text("\n".join(rows) + "\n")
  schema_path = output / "window_schema.pbtxt"
  schema_path.write_text(str(tfmd.window_schema()))
  # A sample record: population-mean values, 20% missing, round-tripped.
  rng = np.random.default_rng(0)
  t, f = constants.WINDOW_MINUTES, constants.NUM_FEATURES
  mask = rng.random((t, f)) > 0.2
  window = {"values": np.where(mask, rng.standard_normal((t, f)), 0).astype(np.float32),
            "mask": mask, "subject": record.subject_hash("demo-subject", b"demo-key"),
            "split": "train", "start": 28_000_000, "missing_ratio": 1 - mask.mean()}
  data = record.encode(window)
  decoded = record.decode(data)
  assert np.array_equal(decoded["values"], window["values"])
  sample = output / "sample_record.json"
  sample.write_text(json.dumps({
      "record_version": record.VERSION, "bytes": len(data),
      "subject": decoded["subject"], "start": decoded["start"],
      "missing_ratio": round(float(decoded["missing_ratio"]), 4),
      "values_shape": list(decoded["values"].shape)}, indent=2) + "\n")
  return [table, schema_path, sample]


def main() -> None:
  """`python -m schemas --output DIR`: write_contract(DIR), printing the paths."""
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--output", required=True, type=pathlib.Path)
  args = parser.parse_args()
  for path in write_contract(args.output):
    print(f"wrote {path}")


if __name__ == "__main__":
  main()
