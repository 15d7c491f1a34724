"""lsm-pipeline end to end on the real device excerpts in tests/data/.

Three runs, by what the recordings allow:
- LSM's defaults (300-minute windows, --max_missing 0.5) on the Fitbit exports,
  the only excerpts long enough: 36 hours of one Fitabase subject's minute files
  (across the US spring-forward night) and 12.5 hours of one heartrate_seconds
  subject; expected windows are computed here independently from the raw files.
- 10-minute windows (--max_missing 0.7) on the E4 session and the Garmin export:
  the whole E4 session lasts 20-80 minutes and the Garmin recording 4.5 hours, so
  no 300-minute window exists in them (nor in their excerpts: E4 14 minutes with
  2.5 of ACC, Garmin 20 minutes).
- NHANES alone: its activity counts are no LSM feature, so no window can be cut,
  and the run must say so.
Every subject is put in train (--split 1,0,0), where the statistics come from.
"""

import json
import logging
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline import devices, keys, main, options as lsm_options, read, sources, write
from pipeline.align import MAX_GAP_MINUTES
from schemas import manifest, record
from schemas.constants import NORMALISED_CLIP
from schemas.features import FEATURE_INDEX, FEATURE_NAMES, FEATURES

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
NY = "America/New_York"
W_SHORT = 10
HRV = {"hrv_percent_good", "hrv_rr_20th_percentile_mean", "hrv_rr_80th_percentile_mean",
       "hrv_rr_median", "hrv_shannon_entropy_rr", "hrv_shannon_entropy_rrd",
       "rmssd_percentile_0595", "sdnn_percentile_0595"}
ACC = {"axis_mean", "covariance", "jerk_auto", "kurtosis", "log_energy",
       "log_energy_ratio", "zero_crossing_avg", "zero_crossing_std"}
PROVIDED = {
    "fitbit_minute": {"steps"},
    "fitbit_heartrate_seconds": {"HR"},
    "empatica_e4": {"HR", "steps", "eda_level_real", "ceda_slope_real_micro_siemens",
                    "wrist_temperatures", "skin_temperature_slope"} | HRV | ACC,
    "garmin": {"HR", "steps", "altim_std"} | HRV | ACC,
}
STEPS = f"{DATA}/fitbit_minute/name4_minuteStepsNarrow_20190730_20230830.csv"
WEAR = f"{DATA}/fitbit_minute/name4_fitbitWearTimeViaHR_20190730_20230830.csv"
HEART = f"{DATA}/fitbit_heartrate_seconds/heartrate_seconds_2users.csv"
NHANES = [f"{DATA}/nhanes_minute_counts/example_activity_count_wide.csv",
          f"{DATA}/nhanes_minute_counts/example_activity_wear_wide.csv"]
FITBIT_INPUTS = [f"{DATA}/fitbit_minute/*.csv", f"{DATA}/fitbit_heartrate_seconds/*.csv"]
SHORT_INPUTS = [f"{DATA}/garmin/*.csv", f"{DATA}/empatica_e4"]


def _run(raw, tmp_path_factory, name, inputs, *flags):
  out = str(tmp_path_factory.mktemp(name) / "out")
  main.run(raw.pipeline_args(inputs, out, "--split=1,0,0", "--num_shards=1", *flags))
  return out


@pytest.fixture(scope="module")
def fitbit(tmp_path_factory, raw):
  """Defaults: 300-minute windows, --max_missing 0.5."""
  return _run(raw, tmp_path_factory, "fitbit", FITBIT_INPUTS, f"--tz={NY}")


@pytest.fixture(scope="module")
def short(tmp_path_factory, raw):
  return _run(raw, tmp_path_factory, "short", SHORT_INPUTS,
              f"--window_minutes={W_SHORT}", "--max_missing=0.7")


def _formats(m, inputs, key):
  """{input path relative to DATA: format} of a manifest that names inputs by id."""
  paths = {keys.input_id(p, key): p for p in read.match_inputs(inputs)}
  return {os.path.relpath(paths[e["id"]], DATA): e["format"] for e in m["inputs"]}


def _minute(text):
  return int(pd.Timestamp(text).value // 60_000_000_000)


def _windows(out, ids):
  """{raw subject id: [decoded record, ...]} sorted by start, for the subjects in ids."""
  import grain.python as grain
  by_hash = {record.subject_hash(s, b"test-key"): s for s in ids}
  windows = {}
  for path, _ in manifest.shards(out, "train", manifest=manifest.load(out)):
    source = grain.ArrayRecordDataSource([path])
    for i in range(len(source)):
      w = record.decode(source[i])
      if w["subject"] in by_hash:
        windows.setdefault(by_hash[w["subject"]], []).append(w)
  return {s: sorted(ws, key=lambda w: w["start"]) for s, ws in windows.items()}


def _expected_windows(minutes: pd.Series, window: int = 300, max_missing: float = 0.5):
  """The grid from a subject's first to last reading minute (a new grid after a gap of
  more than MAX_GAP_MINUTES), cut every `window` minutes, kept when at most
  `max_missing` of its minutes lack the one feature.
  Returns ({start minute: values [window], NaN = missing}, windows cut)."""
  index = minutes.index.to_numpy(np.int64)
  values = minutes.to_numpy(float)
  kept, cut = {}, 0
  breaks = np.flatnonzero(np.diff(index) > MAX_GAP_MINUTES) + 1
  for part, part_values in zip(np.split(index, breaks), np.split(values, breaks)):
    grid = np.full(part.max() - part.min() + 1, np.nan)
    grid[part - part.min()] = part_values
    n = (len(grid) - window) // window + 1 if len(grid) >= window else 0
    cut += n
    for k in range(n):
      cell = grid[k * window:(k + 1) * window]
      if np.isnan(cell).mean() <= max_missing:
        kept[int(part.min()) + k * window] = cell
  return kept, cut


def _utc_minutes(local: pd.Series) -> np.ndarray:
  utc = local.dt.tz_convert("UTC").dt.floor("min").dt.as_unit("ns")
  return (utc.astype("int64") // 60_000_000_000).to_numpy()


def _expected_steps():
  """name4's steps per UTC minute, straight from the Fitabase files: local times in New
  York, the nonexistent 2 AM hour and days with zero wear minutes left out."""
  steps = pd.read_csv(STEPS)
  local = pd.to_datetime(steps.ActivityMinute, format="%m/%d/%Y %I:%M:%S %p")
  wear = pd.read_csv(WEAR)
  unworn = pd.to_datetime(wear.Day[wear.TotalMinutesWearTime == 0], format="%m/%d/%Y")
  zoned = local.dt.tz_localize(NY, nonexistent="NaT", ambiguous="raise")
  keep = zoned.notna() & ~local.dt.normalize().isin(unworn)
  return pd.Series(steps.Steps[keep].to_numpy(float), index=_utc_minutes(zoned[keep]))


def _expected_heart_rate():
  """Per subject: the mean of the samples of each minute, local times in New York."""
  hr = pd.read_csv(HEART)
  hr["minute"] = _utc_minutes(pd.to_datetime(hr.time).dt.tz_localize(NY))
  return {str(s): g.groupby("minute")["hr"].mean() for s, g in hr.groupby("id")}


def _physical_z(values, feature, stats):
  """The pipeline's documented normalisation (clip, z-score, clip to +-5), applied here."""
  low, high = FEATURES[FEATURE_INDEX[feature]].clip_range
  mean, std = stats[feature]["mean"], stats[feature]["std"] or 1.0
  return np.clip((np.clip(values, low, high) - mean) / std, -NORMALISED_CLIP,
                 NORMALISED_CLIP)


def test_fitbit_default_windows_match_the_raw_files(fitbit):
  m = manifest.load(fitbit)
  assert m["window_minutes"] == 300 and m["options"]["max_missing"] == 0.5
  expected = {"name4": (_expected_steps(), "steps"), "name5": (None, "steps")}
  expected.update({s: (v, "HR") for s, v in _expected_heart_rate().items()})
  windows = _windows(fitbit, expected)
  cut = 0
  for subject, (minutes, feature) in expected.items():
    if minutes is None:  # name5: 60 readings (3/12 1:30-3:29 AM less the 2 AM hour)
      assert subject not in windows
      continue
    kept, n = _expected_windows(minutes)
    cut += n
    got = windows.get(subject, [])
    assert [w["start"] for w in got] == list(kept), subject
    j = FEATURE_INDEX[feature]
    for w in got:
      values = kept[w["start"]]
      np.testing.assert_array_equal(w["mask"][:, j], ~np.isnan(values))
      assert not np.delete(w["mask"], j, axis=1).any()  # the 25 others: mask 0
      z = _physical_z(values[~np.isnan(values)], feature, m["train_statistics"])
      np.testing.assert_allclose(w["values"][w["mask"][:, j], j], z, atol=1e-4)
      assert w["source_missing_ratio"] == pytest.approx(np.isnan(values).mean())
      assert w["missing_ratio"] == pytest.approx(1 - (~np.isnan(values)).sum() / (300 * 26))
  # 36 h of name4 give 7 windows (all of the 3/11-3/12 span); 12.5 h of one heart-rate
  # subject give 2; the other heart-rate subject's 700 readings spread over 8 days.
  assert {s: len(w) for s, w in windows.items()} == {"name4": 7, "2022484408": 2}
  counts = m["counts"]["windows"]["pretrain"]
  assert counts["cut"] == cut
  assert counts["written"] == {"train": 9, "valid": 0, "test": 0}
  assert counts["cut"] == 9 + sum(counts["dropped"].values())
  assert set(counts["dropped"]) <= {"missing_ratio_above_max"}
  # name5; and 2026352035, whose readings are two bursts more than 7 days apart
  # (--max_gap_minutes), each shorter than a window.
  assert m["counts"]["subjects_shorter_than_window"] == 2


def test_fitbit_spring_forward_windows_are_consecutive_utc_minutes(fitbit):
  """3/11 12:00 PM EST on: the night's 1:59 AM EST is followed by 3:00 AM EDT, no gap."""
  starts = [w["start"] for w in _windows(fitbit, ["name4"])["name4"]]
  assert starts == [_minute("2023-03-11T17:00Z") + 300 * i for i in range(7)]
  # 5/18 (zero wear minutes) is dead-lettered; 5/17 11 PM EDT alone makes no window.
  m = manifest.load(fitbit)
  assert m["counts"]["sources"]["fitbit_minute"]["dead_letter"] == {
      "nonexistent_local_time": 120, "off_wrist": 60}


def test_fitbit_counts_and_features(fitbit, key):
  m = manifest.load(fitbit)
  _check_counts(fitbit, m)
  sources = m["counts"]["sources"]
  assert {f: set(n["features_provided"]) for f, n in sources.items()} == {
      f: PROVIDED[f] for f in ("fitbit_minute", "fitbit_heartrate_seconds")}
  assert sources["fitbit_minute"]["entries_read"] == 2280 + 360 + 4
  assert sources["fitbit_minute"]["extras"] == {"not_an_lsm_feature": 240}
  heart = pd.read_csv(HEART)
  assert sources["fitbit_heartrate_seconds"]["entries_read"] == len(heart)
  assert sources["fitbit_heartrate_seconds"]["readings"] == sum(
      len(v) for v in _expected_heart_rate().values())
  assert not any("no_windows" in n for n in sources.values())
  formats = _formats(m, FITBIT_INPUTS, key)
  assert formats["fitbit_heartrate_seconds/heartrate_seconds_2users.csv"] == \
      "fitbit_heartrate_seconds"
  assert {f for p, f in formats.items() if p.startswith("fitbit_minute/")} == \
      {"fitbit_minute"}
  assert m["options"]["tz"] == NY


def _check_counts(out, m):
  """Entries, readings, extras and dead letters reconcile; only hashes leave."""
  c = m["counts"]
  extras = [json.loads(l) for l in open(os.path.join(out, m["extras"]))]
  letters = [json.loads(l) for l in open(_dead_letter_file(out))]
  for fmt, n in c["sources"].items():
    assert n["entries_read"] == (n["entries_used"] + sum(n["extras"].values())
                                 + sum(n["dead_letter"].values())), fmt
    assert n.get("readings", 0) == sum(n["present"].values())
  total_extras = sum(sum(n["extras"].values()) for n in c["sources"].values())
  assert sum(e["n_rows"] for e in extras) == total_extras
  adapter = [e for e in letters if "n_rows" in e]
  assert sum(e["n_rows"] for e in adapter) == sum(
      sum(n["dead_letter"].values()) for n in c["sources"].values())
  assert c["readings"]["read"] == sum(n.get("readings", 0) for n in c["sources"].values())
  assert c["readings"]["read"] == c["readings"]["used"] + sum(
      c["readings"]["dead_lettered"].values())
  raw_ids = {"name4", "name5", "2022484408", "2026352035", "empatica_e4", "garmin",
             "21074", "21257"}
  assert not any(e.get("subject") in raw_ids for e in extras)  # hashes only
  assert not any(e["source"].startswith(DATA) for e in extras)  # input ids, not paths
  assert not any("subject" in e for e in letters)  # raw content, no hash beside it
  return extras


def _dead_letter_file(out):
  return os.path.join(lsm_options.default_dead_letter_dir(out), lsm_options.DEAD_LETTER_FILE)


def test_short_recordings_every_file_detected(short, key):
  m = manifest.load(short)
  formats = _formats(m, SHORT_INPUTS, key)
  assert formats["garmin/acc.csv"] == formats["garmin/data.csv"] == "garmin"
  assert formats["empatica_e4/ACC.csv"] == "empatica_e4"
  assert "empatica_e4/info.txt" not in formats  # a folder stands for its sensor files


def test_short_recordings_features_provided_and_missing_elsewhere(short):
  m = manifest.load(short)
  found = m["counts"]["sources"]
  assert {f: set(n["features_provided"]) for f, n in found.items()} == {
      f: PROVIDED[f] for f in ("empatica_e4", "garmin")}
  windows = _windows(short, ["empatica_e4", "garmin"])
  assert set(windows) == {"empatica_e4", "garmin"}
  for subject, ws in windows.items():
    provided = [FEATURE_INDEX[f] for f in PROVIDED[subject]]
    absent = np.setdiff1d(np.arange(len(FEATURE_NAMES)), provided)
    for w in ws:
      assert not w["mask"][:, absent].any(), subject  # mask 0, whatever the minute
      assert np.all(w["values"][:, absent] == 0)
      seen = w["mask"][:, provided].sum()
      assert w["source_missing_ratio"] == pytest.approx(1 - seen / (W_SHORT * len(provided)))
      assert w["missing_ratio"] == pytest.approx(1 - seen / w["mask"].size)
      assert w["source_missing_ratio"] <= 0.7
  ratios = m["window_ratios"]["pretrain"]
  assert ratios["source_missing_ratio"]["count"] == sum(len(w) for w in windows.values())
  assert ratios["missing_ratio"]["min"] > 0.5  # no source has even half the 26 features


def test_short_recordings_counts_reconcile(short):
  m = manifest.load(short)
  _check_counts(short, m)
  assert m["counts"]["sources"]["empatica_e4"]["extras"] == {
      "raw_ppg_waveform_not_an_lsm_feature": 1280}
  assert "subjects_shorter_than_window" not in m["counts"]  # 14 and 20 minutes


def test_offsets_and_unix_times_land_on_utc(short):
  windows = _windows(short, ["empatica_e4", "garmin"])
  # 12:08 +02:00 is 10:08 UTC, the grid's first minute: windows start there or 10:18.
  assert windows["garmin"][0]["start"] in (_minute("2019-10-16T10:08Z"),
                                           _minute("2019-10-16T10:18Z"))
  e4_start = pd.Timestamp(1560279835, unit="s", tz="UTC").floor("min")  # HR.csv row 1
  assert windows["empatica_e4"][0]["start"] <= _minute(e4_start.isoformat())
  assert windows["empatica_e4"][0]["start"] >= _minute("2019-06-11T19:03Z")


def test_nhanes_yields_no_window_and_says_why(tmp_path, raw, caplog):
  """Activity counts are no LSM feature: nothing to window, said in the log and manifest."""
  out = str(tmp_path / "out")
  with caplog.at_level(logging.WARNING):
    main.run(raw.pipeline_args(NHANES, out, "--split=1,0,0", "--num_shards=1"))
  m = manifest.load(out)
  nhanes = m["counts"]["sources"]["nhanes"]
  assert nhanes["no_windows"] == write.NO_WINDOWS
  assert nhanes["subjects"] == nhanes["subjects_without_features"] == 2
  assert nhanes["features_provided"] == nhanes["features_present"] == []
  # 3 count rows kept as extras, 3 wear-flag rows read and applied.
  assert nhanes["entries_read"] == 6 and nhanes["entries_used"] == 3
  assert nhanes["extras"] == {"not_an_lsm_feature": 3} and nhanes["dead_letter"] == {}
  assert m["counts"]["subjects_without_readings"] == 2
  assert m["counts"]["readings"]["read"] == 0
  assert m["counts"]["windows"]["pretrain"]["cut"] == 0
  assert m["counts"]["windows"]["pretrain"]["written"] == {"train": 0, "valid": 0, "test": 0}
  extras = _check_counts(out, m)
  counts = pd.read_csv(NHANES[0])
  assert len(extras) == len(counts)
  assert {e["field"] for e in extras} == {"activity_counts"}
  assert [e["raw"].split(":")[0] for e in extras] == [f"Day {d}" for d in counts.Day]
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any("2 of 2 subjects provide none of the 26 LSM features" in w for w in warnings)
  assert any("no window could be cut; nhanes" in w for w in warnings)


def test_device_exports_on_a_non_local_file_system(remote, raw, tmp_path):
  """gs://-style inputs: globs, an E4 session folder, detection and adapters all go
  through Beam's FileSystems; the counts equal those of the same files read locally."""
  for folder in ("garmin", "empatica_e4"):
    shutil.copytree(f"{DATA}/{folder}", remote.dir / "bucket" / folder)
  inputs = [remote.url("bucket/garmin/*.csv"), remote.url("bucket/empatica_e4/")]
  plan = devices.plan_inputs(read.match_inputs(inputs))
  assert [(f, folder, len(p)) for f, folder, p in plan.exports] == [
      ("empatica_e4", remote.url("bucket/empatica_e4"), 6),
      ("garmin", remote.url("bucket/garmin"), 2)]
  assert all(e["path"].startswith("fakegs://bucket/") for e in plan.inputs)
  out = str(tmp_path / "out")
  main.run(raw.pipeline_args(inputs, out, f"--window_minutes={W_SHORT}", "--max_missing=0.7",
                             "--split=1,0,0", "--num_shards=1"))
  m = manifest.load(out)
  _check_counts(out, m)
  for fmt, files in (("garmin", ["garmin/acc.csv", "garmin/data.csv"]),
                     ("empatica_e4", ["empatica_e4/"])):
    local = sources.read_source([f"{DATA}/{f}" for f in files], format=fmt)
    got = m["counts"]["sources"][fmt]
    assert got["entries_read"] == local.entries_read and got["subjects"] == 1
    assert got["readings"] == len(local.readings)
    assert set(got["features_provided"]) == PROVIDED[fmt]
  # The subject is the remote folder's name, as it is for a local folder.
  assert set(_windows(out, ["empatica_e4", "garmin"])) == {"empatica_e4", "garmin"}


def test_unknown_file_fails_naming_it_before_anything_is_written(tmp_path, raw):
  bad = tmp_path / "mystery.csv"
  bad.write_text("when,what\n1,2\n")
  out = tmp_path / "out"
  with pytest.raises(read.UnreadableFileError, match="mystery.csv"):
    main.run(raw.pipeline_args([str(bad)], str(out)))
  assert not out.exists()
  with pytest.raises(read.UnreadableFileError, match="info.txt"):
    devices.plan_inputs([f"{DATA}/empatica_e4/info.txt"])


def test_forced_format_skips_detection():
  plan = devices.plan_inputs([f"{DATA}/garmin/data.csv"], "garmin")
  assert plan.exports == [("garmin", f"{DATA}/garmin", (f"{DATA}/garmin/data.csv",))]
  # Forced to the canonical reader, a file without subject_id and timestamp columns is
  # refused by the plan, naming them (it used to dead-letter every row when run).
  with pytest.raises(read.UnreadableFileError,
                     match="garmin/data.csv: a canonical table needs a subject_id and a "
                           "timestamp column"):
    devices.plan_inputs([f"{DATA}/garmin/data.csv"], "csv")


# ------------------------------------------- issue 13: identity, order, provenance

CASES = f"{DATA}/cases"


def _split_hashes(out, m):
  """{split: set of subject hashes in its shards}."""
  import grain.python as grain
  got = {}
  for split in m["datasets"]["pretrain"]:
    for path, _ in manifest.shards(out, split, manifest=m):
      source = grain.ArrayRecordDataSource([path])
      got.setdefault(split, set()).update(record.decode(source[i])["subject"]
                                          for i in range(len(source)))
  return got


def test_e4_sessions_of_one_participant_are_one_subject(raw, tmp_path):
  """Case e4_multi_session_participants: two participants, two E4 Connect session
  folders each -> 2 subjects, each wholly in one split; the manifest says 2 sessions."""
  root = f"{CASES}/e4_multi_session_participants"
  sessions = sorted(os.path.join(root, p, s) for p in ("p01", "p02")
                    for s in os.listdir(os.path.join(root, p)))
  out = str(tmp_path / "out")
  main.run(raw.pipeline_args(sessions, out, "--window_minutes=10",
                             "--split=0.5,0.25,0.25", "--num_shards=1"))
  m = manifest.load(out)
  assert m["counts"]["subjects_by_sessions"] == {"2": 2}
  assert m["counts"]["sources"]["empatica_e4"]["exports"] == 4
  by_split = _split_hashes(out, m)
  ids = {record.subject_hash(s, b"test-key") for s in ("p01", "p02")}
  assert set().union(*by_split.values()) == ids
  assert sum(len(h) for h in by_split.values()) == 2  # no subject in two splits
  _check_counts(out, m)


def test_dst_newest_first_and_overlapping_exports(raw, tmp_path, caplog):
  """Cases dst_fallback_newest_first (byte-identical shards to the oldest-first file)
  and fitabase_overlapping_exports (60 duplicates naming the second file, rows 1-60,
  raw cells), one run each way."""
  overlap = sorted(f"{CASES}/fitabase_overlapping_exports/{n}"
                   for n in os.listdir(f"{CASES}/fitabase_overlapping_exports")
                   if n.endswith(".csv"))
  outs = {}
  caplog.set_level(logging.INFO)
  for name, hr in (("oldest", "dst_fallback_heartrate_seconds/heartrate_seconds_merged.csv"),
                   ("newest", "dst_fallback_newest_first/heartrate_seconds_newest_first.csv")):
    outs[name] = str(tmp_path / name)
    main.run(raw.pipeline_args([f"{CASES}/{hr}"] + overlap, outs[name],
                               "--tz=America/Chicago", "--window_minutes=60",
                               "--split=1,0,0", "--num_shards=1"))
  m = {name: manifest.load(out) for name, out in outs.items()}
  shards = {name: [open(p, "rb").read() for p, _ in manifest.shards(out, "train")]
            for name, out in outs.items()}
  assert shards["oldest"] == shards["newest"]
  for name, out in outs.items():
    heart = m[name]["counts"]["sources"]["fitbit_heartrate_seconds"]
    assert heart["ambiguous_local_time_first"] == heart["ambiguous_local_time_second"] == 360
    assert heart["readings"] == 240
    _check_counts(out, m[name])
  assert any(r.getMessage().endswith(
      "fall-back (repeated) hour, told apart by the row order: 360 rows on its first "
      "pass, 360 on its second") for r in caplog.records)
  c = m["newest"]["counts"]
  assert c["sources"]["fitbit_minute"]["dead_letter"] == {"duplicate": 60}
  assert c["readings"]["dead_lettered"]["duplicate"] == 0
  letters = [json.loads(l) for l in open(_dead_letter_file(outs["newest"]))]
  dup = [e for e in letters if e["reason"] == "duplicate"]
  assert {e["source"] for e in dup} == {overlap[1]}
  assert sorted(e["row"] for e in dup) == list(range(1, 61))
  cells = pd.read_csv(overlap[1], dtype=str)["Steps"]
  assert all(e["raw"] == cells[e["row"] - 1] for e in dup)


def test_read_export_yields_readings_per_subject_and_file():
  """read_export with --subject_id_pattern: the pattern's subject; one Readings per
  (subject, file), rows as numbered in the file; the two subject flags checked."""
  import apache_beam as beam
  folder = f"{CASES}/e4_multi_session_participants/p01/1600000000_A01B2C"
  export = ("empatica_e4", folder, (f"{folder}/HR.csv", f"{folder}/TEMP.csv"))
  out = list(devices.read_export(export, b"test-key", None, None,
                                 subject_id_pattern=r"_(?P<subject>[0-9A-F]{6})/"))
  readings = [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)]
  assert {h for h, _ in readings} == {record.subject_hash("A01B2C", b"test-key")}
  assert sorted(r.source for _, r in readings) == [f"{folder}/HR.csv", f"{folder}/TEMP.csv"]
  hr = next(r for _, r in readings if r.source.endswith("HR.csv"))
  assert hr.row[0] == 1 and (np.diff(hr.row) > 0).all()
  from pipeline import options
  opts = options.LsmOptions(["--subject_id=a", "--subject_id_pattern=(x"])
  with pytest.raises(SystemExit, match="not both"):
    options.check_subject_options(opts)
  with pytest.raises(SystemExit, match="not a regular expression"):
    options.check_subject_options(options.LsmOptions(["--subject_id_pattern=(x"]))
