"""Timestamp forms end to end: the shared cases timestamps_without_offset and
apple_health_dates (tests/data/cases), and the plausible time range on device exports."""

import json
import os

import apache_beam as beam
import numpy as np
import pytest

from pipeline import counts, devices, main, options, parse, read
from schemas.raw import READING_REASONS

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
CASES = os.path.join(DATA, "cases")
NAIVE = [f"{CASES}/timestamps_without_offset/{name}" for name in (
    "local_time_no_offset.csv", "unix_epoch_ms.csv", "pandas_naive_datetime.parquet")]
APPLE = f"{CASES}/apple_health_dates/heart_rate_from_export_xml.csv"


def test_naive_epoch_and_apple_timestamps_give_every_window(tmp_path, raw):
  # Each file: one subject, 60 HR minutes -> 6 windows of 10 minutes (case READMEs).
  out = tmp_path / "out"
  main.run(raw.pipeline_args(NAIVE + [APPLE], str(out), "--tz=Europe/Berlin",
                             "--window_minutes=10", "--split=1,0,0", "--num_shards=1"))
  m = json.loads((out / "manifest.json").read_text())
  assert m["counts"]["rows"] == {"read": 240, "parsed": 240, "dead_lettered": {
      "malformed_row": 0, "missing_subject": 0, "bad_timestamp": 0,
      "nonexistent_local_time": 0, "ambiguous_local_time": 0}}
  assert m["counts"]["readings"]["used"] == 240
  assert m["counts"]["windows"]["pretrain"]["cut"] == 24
  assert m["counts"]["subjects"]["train"] == 4
  assert (m["options"]["tz"], m["options"]["timestamp_unit"]) == ("Europe/Berlin", "auto")


@pytest.mark.parametrize("path, example", [
    (NAIVE[0], "'2024-03-04 08:00:00'"), (NAIVE[2], "'2024-03-04 08:00:00'")])
def test_naive_files_without_tz_fail_naming_file_column_and_example(tmp_path, raw, path,
                                                                     example):
  with pytest.raises(read.UnreadableFileError) as error:
    main.run(raw.pipeline_args([path], str(tmp_path / "out"), "--window_minutes=10"))
  assert str(error.value) == (
      f"{path}: column 'timestamp': local times without a UTC offset (e.g. {example}); "
      "pass --tz with their timezone (an IANA name such as Europe/Berlin, or a fixed "
      "offset such as +01:00)")
  assert not (tmp_path / "out").exists()


def test_device_readings_outside_the_time_range_are_dead_lettered(key):
  # The Garmin excerpt runs 10:08-10:27 UTC; the range ends at 10:20.
  end = int(np.datetime64("2019-10-16T10:20", "ns").astype(np.int64))
  rule = parse.TimeRule(max_ns=end)
  folder = f"{DATA}/garmin"
  export = ("garmin", folder, (f"{folder}/acc.csv", f"{folder}/data.csv"))
  out = list(devices.read_export(export, key, None, None, rule=rule))
  tally = [o.value for o in out
           if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == counts.COUNTS][0]
  letters = [json.loads(o.value) for o in out
             if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == counts.DEAD_LETTER]
  kept = [r for o in out if not isinstance(o, beam.pvalue.TaggedOutput)
          for r in [o[1]]]
  outside = tally["readings_dead_letter/outside_time_range"]
  assert outside > 0
  assert [e["raw"]["timestamp"] >= "2019-10-16 10:20" for e in letters
          if e["reason"] == "outside_time_range"] == [True] * outside
  assert all((r.time < end).all() for r in kept)
  dead = sum(tally.get(f"readings_dead_letter/{r}", 0) for r in READING_REASONS)
  assert tally["readings_read"] == sum(len(r.time) for r in kept) + dead


@pytest.mark.parametrize("flags, message", [
    (["--tz=Mars/Olympus"], "lsm-pipeline: --tz: unknown timezone 'Mars/Olympus'"),
    (["--min_time=2100-06-01"], "lsm-pipeline: --min_time 2100-06-01 must be before "
                                "--max_time 2100-01-01"),
])
def test_bad_time_options_stop_the_run(flags, message):
  with pytest.raises(SystemExit) as error:
    options.time_rule(options.LsmOptions(flags))
  assert str(error.value).startswith(message)


def test_time_options_make_the_rule():
  rule = options.time_rule(options.LsmOptions([
      "--tz=+02:00", "--timestamp_unit=ms", "--min_time=2000-01-01T01:00+01:00"]))
  assert rule == parse.TimeRule("+02:00", "ms", int(np.datetime64("2000-01-01", "ns").astype(
      np.int64)), parse.TimeRule().max_ns)
