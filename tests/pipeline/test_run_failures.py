"""A run that loses a whole input or too many rows fails naming them; every run ends
with a summary and warnings; n-of-1 data and features without train values."""

import json
import logging
import os

import numpy as np
import pandas as pd
import pytest

from pipeline import counts, main, options as lsm_options
from pipeline.counts import FirstExamples, RunFailed, run_failures
from pipeline.main import user_error
from pipeline.read import UnreadableFileError
from schemas import manifest, record
from schemas.features import FEATURES, FEATURE_INDEX

CASE = os.path.join(os.path.dirname(__file__), "..", "data", "cases",
                    "single_subject_no_train_split")
HR = FEATURE_INDEX["HR"]


def _letter(source, row, reason, raw):
  return json.dumps({"source": source, "row": row, "reason": reason, "raw": raw})


def _examples(lines):
  combine = FirstExamples()
  half = len(lines) // 2  # two partial accumulators, merged: the lowest row wins
  parts = [combine.create_accumulator(), combine.create_accumulator()]
  for i, line in enumerate(lines):
    combine.add_input(parts[i >= half], line)
  return combine.extract_output(combine.merge_accumulators(parts[::-1]))


def test_examples_are_the_lowest_row_and_show_the_offending_cell():
  examples = _examples([
      _letter("a.csv", 9, "bad_timestamp", {"subject_id": "p1", "timestamp": "later"}),
      _letter("a.csv", 2, "bad_timestamp", {"subject_id": "p1", "Timestamp": "4/12 0:01"}),
      _letter("a.csv", 5, "out_of_range", {"subject_id": "p1", "HR": "900",
                                           "reading": "HR"}),
      _letter("a.csv", 7, "malformed_row", "p1,2024" + "x" * 200),
      # a Latin-1 row: parse decoded its bytes with U+FFFD; the example says why
      _letter("latin1.csv", 2, "malformed_row", {"subject_id": "J\ufffdrgen", "value": "65"}),
      _letter(None, None, "hrv_low_quality", {"from": "t0", "readings": 2})])
  assert examples["a.csv"]["bad_timestamp"] == (2, "4/12 0:01")
  assert examples["a.csv"]["out_of_range"] == (5, "900")
  assert len(examples["a.csv"]["malformed_row"][1]) == counts.EXAMPLE_CHARS
  assert examples["latin1.csv"]["malformed_row"] == (
      2, "not UTF-8 in column subject_id: J\ufffdrgen")
  assert examples[None]["hrv_low_quality"][0] == -1


def test_an_input_that_kept_no_row_fails_naming_it_the_reason_and_an_example():
  by_source = {"good.csv": {"rows_read": 100, "rows_parsed": 100, "readings_read": 100},
               "apple.csv": {"rows_read": 60, "rows_dead_letter/bad_timestamp": 58,
                             "rows_dead_letter/malformed_row": 2}}
  examples = {"apple.csv": {"bad_timestamp": (2, "2024-02-06 19:00:17 -0800"),
                            "malformed_row": (40, "me,")}}
  assert run_failures(by_source, examples, 0.5) == [
      "apple.csv: all 60 rows were dead-lettered: bad_timestamp 58 "
      "(row 2: '2024-02-06 19:00:17 -0800'), malformed_row 2 (row 40: 'me,')"]


def test_the_dead_letter_fraction_fails_above_the_option_only():
  by_source = {"a.csv": {"rows_read": 100, "rows_parsed": 40, "readings_read": 40,
                         "rows_dead_letter/bad_timestamp": 60},
               "b.csv": {"rows_read": 100, "rows_parsed": 100, "readings_read": 100}}
  examples = {"a.csv": {"bad_timestamp": (3, "yesterday")}}
  assert run_failures(by_source, examples, 0.5) == []  # 60 of 200
  assert run_failures(by_source, examples, 0.25) == [
      "the run dead-lettered 60 of its 200 rows and entries (30%), more than "
      "--max_dead_letter_fraction 0.25: bad_timestamp 60 (a.csv row 3: 'yesterday')"]


def test_readings_with_bad_values_count_against_the_fraction_too():
  """60% of a long file's values unreadable: one bad value is one lost row to a user.
  Unknown features and duplicates are no broken value and do not count."""
  by_source = {"hr.csv": {"rows_read": 100, "rows_parsed": 100, "readings_read": 100,
                          "readings_dead_letter/non_numeric": 55,
                          "readings_dead_letter/out_of_range": 5},
               "wide.csv": {"rows_read": 10, "rows_parsed": 10, "readings_read": 100,
                            "readings_dead_letter/unknown_feature": 60}}
  examples = {"hr.csv": {"non_numeric": (4, "n/a")}}
  assert run_failures(by_source, examples, 0.5) == []  # 60 bad values of 200 readings
  del by_source["wide.csv"]
  assert run_failures(by_source, examples, 0.5) == [
      "the run dead-lettered 60 of its 100 readings for a bad value (60%), more than "
      "--max_dead_letter_fraction 0.5: non_numeric 55 (hr.csv row 4: 'n/a'), "
      "out_of_range 5"]


def test_device_exports_count_extras_as_kept_and_are_named_with_their_files():
  nhanes = {"sources/nhanes/entries_read": 6, "sources/nhanes/entries_used": 0,
            "sources/nhanes/extras/not_an_lsm_feature": 6}
  assert run_failures({"/d/nhanes": nhanes}, {}, 0.5) == []
  lost = {"sources/fitbit/entries_read": 4, "sources/fitbit/dead_letter/off_wrist": 4}
  examples = {"/d/fit/hr.csv": {"off_wrist": (1, "0")}}
  assert run_failures({"/d/fit": lost}, examples, 1.0, {"/d/fit": ["hr.csv"]}) == [
      "/d/fit (hr.csv): all 4 entries were dead-lettered: off_wrist 4 "
      "(/d/fit/hr.csv row 1: '0')"]


def test_the_summary_is_found_in_what_the_runner_raises():
  summary = "lsm-pipeline: the run failed\n  - a.csv: all 3 rows were dead-lettered"
  in_process = RunFailed(summary + " [while running 'WriteManifest/Write']")
  assert user_error(in_process) == summary
  text = ("Traceback (most recent call last):\n  File x\npipeline.counts.RunFailed: "
          f"{summary}\n\nDuring handling of the above exception, another exception ...")
  assert user_error(RuntimeError(text)) == summary
  assert user_error(ValueError("something else")) is None
  unreadable = UnreadableFileError("x.csv: column 'timestamp': dates like '13/04/2016 0:01'"
                                   " ... [while running 'ParseReadings/Parse']")
  assert user_error(RuntimeError("wrapped")) is None
  wrapped = RuntimeError("wrapped")
  wrapped.__cause__ = unreadable
  assert user_error(wrapped) == \
      "lsm-pipeline: x.csv: column 'timestamp': dates like '13/04/2016 0:01' ..."


def test_a_run_that_lost_every_row_exits_non_zero_with_the_summary(tmp_path, raw, capsys):
  bad = tmp_path / "export.csv"  # every data row has a field more than the header
  bad.write_text("subject_id,timestamp,HR\n" + "".join(
      f"p1,2024-02-06T19:{m:02d}:17-08:00,70,bpm\n" for m in range(60)))
  out = tmp_path / "out"
  out.mkdir()
  (out / manifest.MANIFEST_NAME).write_text("{}")  # an earlier run's, into the same folder
  with pytest.raises(SystemExit) as exit_:
    main.main(raw.pipeline_args([str(bad)], str(out), "--overwrite"))
  message = str(exit_.value.code)
  assert message.startswith("lsm-pipeline: the run failed and wrote no manifest")
  assert (f"{bad}: all 60 rows were dead-lettered: malformed_row 60 "
          "(row 2: 'p1,2024-02-06T19:00:17-08:00,70,bpm')") in message
  letters = os.path.join(lsm_options.default_dead_letter_dir(str(out)), lsm_options.DEAD_LETTER_FILE)
  assert letters == str(tmp_path / "out.dead_letter" / "dead_letter.jsonl")
  assert letters in message
  assert "Traceback" not in message and "Traceback" not in capsys.readouterr().err
  assert (out / manifest.MANIFEST_NAME).read_text() == "{}"  # the earlier run stays whole
  assert not (out / "tmp").exists() and not (out / "dead_letter").exists()
  with open(letters) as f:
    assert len(f.read().splitlines()) == 60


def _records(out, split):
  import grain.python as grain
  paths = [p for p, _ in manifest.shards(out, split)]
  source = grain.ArrayRecordDataSource(paths) if paths else []
  return [record.decode(source[i]) for i in range(len(source))]


def test_one_subject_in_test_is_normalised_with_population_statistics(tmp_path, raw,
                                                                       caplog):
  out = str(tmp_path / "out")
  with caplog.at_level(logging.INFO):
    main.run(raw.pipeline_args([os.path.join(CASE, "my_own_watch_wide.csv")], out,
                               "--window_minutes=30"))
  m = manifest.load(out)
  stats = m["train_statistics"]["HR"]
  assert stats["source"] == "population (no observed train value)" and stats["count"] == 0
  assert stats["std"] == pytest.approx(FEATURES[HR].population_std, rel=1e-6)
  test = _records(out, "test")
  assert len(test) == 4 and not _records(out, "train")
  hr = np.concatenate([r["values"][r["mask"][:, HR], HR] for r in test])
  expected = (np.clip(np.loadtxt(os.path.join(CASE, "my_own_watch_wide.csv"), delimiter=",",
                                 skiprows=1, usecols=2), *FEATURES[HR].clip_range)
              - FEATURES[HR].population_mean) / FEATURES[HR].population_std
  np.testing.assert_allclose(np.sort(hr), np.sort(expected), atol=1e-5)
  assert np.abs(hr).max() < 5  # not saturated at -5 as with a std of 0
  warnings = "\n".join(m["warnings"])
  assert "no windows in split(s) train" in warnings and "--split 1,0,0" in warnings
  assert "feature(s) HR, steps have no observed value in train" in warnings
  assert m["summary"][0] == "rows: 120 read, 120 parsed, 0 dead-lettered"
  assert "subjects: 1 (train 0, valid 0, test 1)" in m["summary"]
  logged = [r.getMessage() for r in caplog.records]
  assert "lsm-pipeline: windows pretrain: 4 cut, 4 written (train 0, valid 0, test 4), " \
      "0 dropped" in logged
  assert any("have no observed value in train" in line for line in logged)


def test_n_of_1_with_split_1_0_0_trains_on_its_own_statistics(tmp_path, raw):
  out = str(tmp_path / "out")
  main.run(raw.pipeline_args([os.path.join(CASE, "my_own_watch_wide.csv")], out,
                             "--window_minutes=30", "--split=1,0,0"))
  m = manifest.load(out)
  assert len(_records(out, "train")) == 4
  assert m["train_statistics"]["HR"]["source"] == "train"
  assert m["train_statistics"]["HR"]["count"] == 120
  assert m["warnings"] == []  # no thin-split or empty-split noise for n-of-1


def test_thin_splits_and_features_missing_from_train_are_said(tmp_path, raw):
  out = str(tmp_path / "out")
  main.run(raw.pipeline_args([os.path.join(CASE, "mixed_device_cohort_wide.csv")], out,
                             "--window_minutes=30"))
  m = manifest.load(out)
  temp = m["train_statistics"]["wrist_temperatures"]
  assert temp["source"] == "population (no observed train value)"
  assert m["train_statistics"]["HR"]["source"] == "train"
  assert m["counts"]["features_present"]["test"] == {"HR": 2, "wrist_temperatures": 2}
  assert m["counts"]["features_present"]["train"] == {"HR": 2}
  assert m["warnings"] == [
      "dataset pretrain has no windows in split(s) valid; with few subjects try other "
      "--split fractions or --split_salt",
      "split train holds only 1 subject(s): its windows (and any metric on them) rest on "
      "very few people",
      "split test holds only 1 subject(s): its windows (and any metric on them) rest on "
      "very few people",
      "feature(s) wrist_temperatures present in test but absent from train (pretrain "
      "windows)",
      "feature(s) wrist_temperatures have no observed value in train but appear in other "
      "splits: normalised with LSM's population statistics "
      "(train_statistics[feature]['source'])"]
  z = np.concatenate([r["values"][r["mask"][:, FEATURE_INDEX["wrist_temperatures"]],
                                  FEATURE_INDEX["wrist_temperatures"]]
                      for r in _records(out, "test")])
  f = FEATURES[FEATURE_INDEX["wrist_temperatures"]]
  raw_temp = pd.read_csv(os.path.join(CASE, "mixed_device_cohort_wide.csv"))[
      "skin_temperature"].dropna().to_numpy()
  np.testing.assert_allclose(np.sort(z), np.sort(raw_temp - f.population_mean)
                             / f.population_std, atol=1e-5)


def test_a_run_whose_readings_were_all_dead_lettered_says_so_not_blaming_the_split():
  from pipeline.write import nest_counts, run_warnings, summary
  nested = nest_counts({"rows_read": 60, "rows_parsed": 60, "readings_read": 60,
                        "readings_dead_letter/unknown_feature": 60,
                        "subjects_split_at_gaps": 1}, ["pretrain"])
  nested["windows"]["pretrain"]["written"] = {"train": 0, "valid": 0, "test": 0}
  options = {"split": {"train": 0.8, "valid": 0.1, "test": 0.1}, "max_gap_minutes": 10080}
  warnings = run_warnings(nested, {}, options, ["pretrain"], 300)
  assert warnings[0] == (
      "dataset pretrain: no window could be cut: no reading was used; 60 readings read, "
      "60 dead-lettered (unknown_feature 60); 60 rows read, 0 dead-lettered; see the "
      "dead letters (--dead_letter_dir)")
  assert "--split" not in warnings[0]
  assert warnings[1].startswith("1 subject(s) had readings more than 10080 minutes apart")
  assert summary(nested, ["pretrain"]) == [
      "rows: 60 read, 60 parsed, 0 dead-lettered",
      "readings: 60 read, 0 used, 60 dead-lettered (unknown_feature 60)",
      "subjects: 0 (train 0, valid 0, test 0)",
      "windows pretrain: 0 cut, 0 written (train 0, valid 0, test 0), 0 dropped"]


def test_a_file_whose_rows_parse_but_give_no_usable_reading_fails():
  examples = _examples([
      _letter("w.csv", 3, "unknown_feature", {"subject_id": "p1", "HeartRate": "70",
                                              "reading": "HeartRate"}),
      _letter("l.csv", 4, "unknown_feature", {"subject_id": "p1", "feature": "pulse",
                                              "value": "70", "reading": "pulse"})])
  by_source = {"w.csv": {"rows_read": 5, "rows_parsed": 5, "readings_read": 5,
                         "readings_dead_letter/unknown_feature": 5},
               "l.csv": {"rows_read": 2, "rows_parsed": 2, "readings_read": 2,
                         "readings_dead_letter/unknown_feature": 2},
               "empty.csv": {"rows_read": 4, "rows_parsed": 4},
               "ok.csv": {"rows_read": 4, "rows_parsed": 4, "readings_read": 8,
                          "readings_dead_letter/out_of_range": 7}}
  assert run_failures(by_source, examples, 1.0) == [
      "empty.csv: its 4 rows gave no usable reading: every feature cell is empty",
      "l.csv: its 2 rows gave no usable reading: all 2 readings were dead-lettered: "
      "unknown_feature 2 (row 4: 'feature pulse')",
      "w.csv: its 5 rows gave no usable reading: all 5 readings were dead-lettered: "
      "unknown_feature 5 (row 3: 'column HeartRate')"]


def test_an_unquoted_glob_stops_the_run_instead_of_dropping_files(tmp_path, raw):
  """The shell expands --input raw/*.csv into several words; Beam would only log the
  second one as unparseable and read the first file alone."""
  first, second = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
  with pytest.raises(SystemExit) as stop:
    main.run(["--input", first, second, "--output", str(tmp_path / "out"),
              "--subject_hash_key=k"])
  assert str(stop.value.code).startswith(
      f"lsm-pipeline: unexpected argument '{second}' (after '{first}'): every input needs "
      "its own --input; quote a glob")
  lsm_options.check_no_stray_arguments(  # values, '=' forms and switches pass
      ["--input", first, "--input=" + second, "--overwrite", "--tz", "-08:00"])


def test_an_unwritable_dead_letter_folder_stops_the_run_in_one_line(tmp_path, raw):
  data = raw.write(raw.wide_frame(raw.make_cohort(1, 30)), str(tmp_path / "in" / "a.csv"))
  (tmp_path / "afile").write_text("")
  with pytest.raises(SystemExit) as stop:
    main.run(raw.pipeline_args([data], str(tmp_path / "out"),
                               f"--dead_letter_dir={tmp_path / 'afile' / 'letters'}"))
  assert str(stop.value.code).startswith(
      f"lsm-pipeline: cannot write the dead letters to {tmp_path / 'afile' / 'letters'}: ")
  assert "--dead_letter_dir" in str(stop.value.code)


def test_a_feature_constant_in_train_is_scaled_by_the_population_std(tmp_path, raw):
  """Steps 5 every minute for the train subjects, 0..119 elsewhere: the other splits
  hold z-scores around 5 (population std), not raw differences saturated at +-5."""
  from pipeline.split import split_of  # pylint: disable=g-import-not-at-top
  subjects = [f"s{i:02d}" for i in range(40)]
  splits = {s: split_of(record.subject_hash(s, raw.KEY.encode()), (0.5, 0.25, 0.25), "lsm-split-v1")
            for s in subjects}
  chosen = ([s for s in subjects if splits[s] == "train"][:2]
            + [s for s in subjects if splits[s] == "test"][:1])
  stamps = pd.date_range("2024-03-04T08:00:00Z", periods=120, freq="min")
  rows = []
  for s in chosen:
    steps = np.full(120, 5.0) if splits[s] == "train" else np.arange(120.0)
    rows.append(pd.DataFrame({"subject_id": s,
                              "timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                              "HR": 70.0 + np.arange(120) % 7, "steps": steps}))
  path = tmp_path / "cohort.csv"
  pd.concat(rows).to_csv(path, index=False)
  out = str(tmp_path / "out")
  main.run(raw.pipeline_args([str(path)], out, "--window_minutes=30", "--split=0.5,0.25,0.25"))
  m = manifest.load(out)
  steps = m["train_statistics"]["steps"]
  assert steps["source"] == "train mean, population std (constant in train)"
  assert steps["mean"] == 5.0 and steps["count"] == 240
  population_std = FEATURES[FEATURE_INDEX["steps"]].population_std
  assert steps["std"] == pytest.approx(population_std, rel=1e-6)
  assert any("steps are constant in train" in w for w in m["warnings"])
  test = _records(out, "test")
  z = np.sort(np.concatenate([r["values"][:, FEATURE_INDEX["steps"]] for r in test]))
  f = FEATURES[FEATURE_INDEX["steps"]]
  expected = np.clip((np.clip(np.arange(120.0), *f.clip_range) - 5.0) / population_std, -5, 5)
  np.testing.assert_allclose(z, expected, atol=1e-5)
  assert (np.abs(z) < 5).sum() > 90  # most are z-scores, not saturated as with a std of 0


@pytest.mark.parametrize("flat, expected", [
    ({"label_rows_read": 16, "label_rows_parsed": 0,
      "label_rows_dead_letter/end_not_after_start": 16},
     "dataset labelled: no window could be cut from --labels: 16 label rows read, 0 parsed, "
     "16 dead-lettered (end_not_after_start 16); see the dead letters (--dead_letter_dir)"),
    ({"label_rows_read": 16, "label_rows_parsed": 16, "label_sessions_without_data": 16},
     "dataset labelled: no window could be cut from --labels: 16 label rows read, 16 "
     "parsed, 0 dead-lettered; 16 session(s) name a subject_id with no readings in the "
     "input (the labels must use the inputs' own subject ids)"),
])
def test_labels_that_give_no_window_say_why_not_blaming_the_split(flat, expected):
  from pipeline.write import nest_counts, run_warnings
  nested = nest_counts({"rows_read": 600, "rows_parsed": 600, "readings_read": 600,
                        "readings_used": 600, "windows/pretrain/cut": 4, **flat},
                       ["pretrain", "labelled"])
  nested["windows"]["pretrain"]["written"] = {"train": 4, "valid": 0, "test": 0}
  nested["windows"]["labelled"]["written"] = {"train": 0, "valid": 0, "test": 0}
  options = {"split": {"train": 1.0, "valid": 0.0, "test": 0.0}, "max_gap_minutes": 10080}
  warnings = run_warnings(nested, {}, options, ["pretrain", "labelled"], 300)
  assert expected in warnings, warnings
  assert not any("--split" in w for w in warnings if w.startswith("dataset labelled"))
