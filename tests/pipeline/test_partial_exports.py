"""Partial exports: an E4 session whose optional files hold no data (IBI.csv with its
header alone: no beats; tags.csv empty: no button press) still yields what the other
files hold, under --format auto and --format empatica_e4 alike, and the manifest
counts the empty files (counts.sources.empatica_e4.optional_files_empty).

Before the registry, --format auto refused such a session (the header-only IBI.csv
was of unknown format) and --format empatica_e4 failed mid-run (pyarrow refuses an
empty CSV body).
"""

import pathlib

import numpy as np
import pytest

from pipeline import devices, main
from pipeline.sources import detection, read_source
from schemas import manifest

START = 1_560_279_840  # unix seconds, a whole minute
MINUTES = 30


def _session(folder: pathlib.Path) -> pathlib.Path:
  """30 minutes of HR (1 Hz, 60 + minute bpm) and TEMP (4 Hz, 33 degC); IBI.csv with
  its header alone; an empty tags.csv; info.txt (documentation, not read)."""
  folder.mkdir(parents=True)
  hr = 60 + np.arange(MINUTES * 60) // 60
  (folder / "HR.csv").write_text(f"{START}.000000\n1.000000\n"
                                 + "".join(f"{v}.000000\n" for v in hr))
  (folder / "TEMP.csv").write_text(f"{START}.000000\n4.000000\n"
                                   + "33.000000\n" * (MINUTES * 60 * 4))
  (folder / "IBI.csv").write_text(f"{START}.000000, IBI\n")
  (folder / "tags.csv").write_text("")
  (folder / "info.txt").write_text("E4 session\n")
  return folder


def test_detected_as_one_export_with_its_empty_files(tmp_path):
  folder = _session(tmp_path / "p3")
  assert detection.detect(str(folder)) == "empatica_e4"
  assert detection.detect(str(folder / "IBI.csv")) == "empatica_e4"
  assert detection.detect(str(folder / "tags.csv")) == "empatica_e4"  # empty, by name
  files = [str(folder / n) for n in ("HR.csv", "IBI.csv", "TEMP.csv", "tags.csv")]
  plan = devices.plan_inputs(files)
  assert plan.exports == [("empatica_e4", str(folder), tuple(files))]
  assert not plan.canonical


@pytest.mark.parametrize("fmt", [None, "empatica_e4"])
def test_what_the_other_files_hold_is_read(tmp_path, fmt):
  folder = _session(tmp_path / "p3")
  result = read_source([str(folder)], format=fmt)
  assert result.notes == {"optional_files_empty": 2}
  assert result.provided == {"p3": frozenset({"HR", "wrist_temperatures",
                                              "skin_temperature_slope"})}
  hr = result.readings[result.readings["feature"] == "HR"]
  assert hr["value"].tolist() == [60.0 + m for m in range(MINUTES)]
  assert result.entries_read == MINUTES * 60 * 5  # HR 1 Hz + TEMP 4 Hz; IBI, tags: 0


def test_an_export_of_empty_optional_files_alone_yields_nothing(tmp_path):
  folder = _session(tmp_path / "p3")
  result = read_source([str(folder / "tags.csv")])
  assert (result.notes, result.provided, result.entries_read) == (
      {"optional_files_empty": 1}, {}, 0)


def test_an_empty_required_file_is_still_refused(tmp_path):
  folder = _session(tmp_path / "p3")
  (folder / "HR.csv").write_text("")
  with pytest.raises(detection.EmptyFileError, match="HR.csv: empty file"):
    detection.detect(str(folder))


@pytest.mark.parametrize("fmt", ["auto", "empatica_e4"])
def test_lsm_pipeline_reads_the_partial_session(tmp_path, raw, fmt):
  folder = _session(tmp_path / "in" / "p3")
  out = str(tmp_path / "out")
  main.run(raw.pipeline_args([str(folder)], out, f"--format={fmt}", "--split=1,0,0",
                             "--num_shards=1", "--window_minutes=10"))
  m = manifest.load(out)
  assert [e["format"] for e in m["inputs"]] == ["empatica_e4"] * 4
  e4 = m["counts"]["sources"]["empatica_e4"]
  assert e4["optional_files_empty"] == 2
  assert e4["entries_read"] == MINUTES * 60 * 5
  assert m["counts"]["windows"]["pretrain"]["written"] == {"train": 3, "valid": 0,
                                                           "test": 0}
