"""Empatica E4 session adapter on the real excerpt."""

import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline.sources import SourceError, read_source

E4_FEATURES = {
    "HR", "eda_level_real", "ceda_slope_real_micro_siemens", "wrist_temperatures",
    "skin_temperature_slope", "steps", "jerk_auto", "log_energy", "covariance",
    "log_energy_ratio", "zero_crossing_std", "zero_crossing_avg", "axis_mean", "kurtosis",
    "hrv_percent_good", "hrv_rr_median", "hrv_rr_20th_percentile_mean",
    "hrv_rr_80th_percentile_mean", "sdnn_percentile_0595", "rmssd_percentile_0595",
    "hrv_shannon_entropy_rr", "hrv_shannon_entropy_rrd"}


def samples(path):
  """Independent reading of an E4 sample file: UTC minute of each sample, values."""
  with open(path) as f:
    start = float(f.readline().split(",")[0])
    rate = float(f.readline().split(",")[0])
  values = pd.read_csv(path, skiprows=2, header=None)[0].to_numpy(np.float64)
  t = start + np.arange(len(values)) / rate
  return pd.Series(values, index=pd.to_datetime(np.floor(t / 60) * 60, unit="s", utc=True))


@pytest.fixture
def session(data_dir):
  return read_source([str(data_dir / "empatica_e4")], subject_id="s1")


def test_counts_reconcile_and_features_present(session):
  assert session.format == "empatica_e4"
  # ACC 4800 + BVP 1280 + EDA 800 + TEMP 800 + HR 200 + IBI 300 data rows.
  assert session.entries_read == 8180
  assert session.provided == {"s1": frozenset(E4_FEATURES)}
  assert set(session.readings["feature"]) == E4_FEATURES
  for absent in ("altim_std", "leads_contact_counts", "sleep_coefficient",
                 "hr_at_rest_mean"):
    assert absent not in set(session.readings["feature"])
  bvp = session.extras[session.extras["field"] == "BVP"]
  assert bvp[["row", "n_rows"]].values.tolist() == [[1, 1280]]
  assert not session.readings.duplicated(["timestamp", "feature"]).any()


def test_partial_edge_minutes_are_dead_lettered(session, data_dir):
  # The session starts 45 s into a minute: 15 s of ACC (480 samples) is below coverage.
  acc = session.dead_letter[session.dead_letter["source"].str.endswith("ACC.csv")]
  assert acc["reason"].unique().tolist() == ["incomplete_minute"]
  assert acc[["row", "n_rows"]].values.tolist() == [[1, 480], [4321, 480]]
  minutes = session.readings[session.readings["feature"] == "axis_mean"]["timestamp"]
  assert list(minutes) == [pd.Timestamp("2019-06-11 19:04", tz="UTC"),
                           pd.Timestamp("2019-06-11 19:05", tz="UTC")]


def test_eda_and_hr_values_on_utc_minutes(session, data_dir):
  for sensor, feature in (("EDA", "eda_level_real"), ("HR", "HR"),
                          ("TEMP", "wrist_temperatures")):
    expected = samples(data_dir / "empatica_e4" / f"{sensor}.csv").groupby(level=0).mean()
    got = session.readings[session.readings["feature"] == feature].set_index(
        "timestamp")["value"]
    assert len(got) >= 3
    np.testing.assert_allclose(got.to_numpy(), expected.loc[got.index].to_numpy())


def test_hr_from_beats_when_the_session_has_no_hr_file(data_dir, tmp_path):
  folder = tmp_path / "s2"
  folder.mkdir()
  for name in ("IBI.csv", "EDA.csv"):
    shutil.copy(data_dir / "empatica_e4" / name, folder / name)
  r = read_source([str(folder)])
  assert "HR" in r.provided["s2"]
  hr = r.readings[r.readings["feature"] == "HR"]
  assert len(hr) and hr["value"].between(30, 200).all()


def test_bad_preamble_names_the_file(write):
  path = write("s3/EDA.csv", "1560279825.0\n4.0\n0.1\n")
  write("s3/TEMP.csv", "1560279825.0\nfour\n33.1\n")
  with pytest.raises(SourceError, match="TEMP.csv"):
    read_source([path.rsplit("/", 1)[0]], format="empatica_e4")


def test_tags_are_extras(data_dir, tmp_path):
  folder = tmp_path / "s4"
  folder.mkdir()
  shutil.copy(data_dir / "empatica_e4" / "HR.csv", folder / "HR.csv")
  (folder / "tags.csv").write_text("1560279900.12\n1560280000.50\n")
  r = read_source([str(folder)])
  tags = r.extras[r.extras["field"] == "tags"]
  assert tags[["row", "n_rows", "reason"]].values.tolist() == [[1, 2, "not_an_lsm_feature"]]
  assert r.provided == {"s4": frozenset({"HR"})}


def test_e4_connect_session_folders_take_the_participant_folder(data_dir):
  """Case e4_multi_session_participants: p01/<unix time>_<device id>/ is p01."""
  root = data_dir / "cases" / "e4_multi_session_participants"
  sessions = sorted(root.glob("p0*/*_*"))
  assert len(sessions) == 4
  got = {s.name: list(read_source([str(s)]).provided) for s in sessions}
  assert got == {"1600000000_A01B2C": ["p01"], "1600090000_A01B2C": ["p01"],
                 "1600003600_A0FF11": ["p02"], "1600093600_A0FF11": ["p02"]}
  # A pattern names subjects from the path instead; --subject_id overrides both.
  r = read_source([str(sessions[0])], subject_id_pattern=r"_(?P<subject>[0-9A-F]{6})/")
  assert list(r.provided) == ["A01B2C"]
  assert list(read_source([str(sessions[0])], subject_id="x").provided) == ["x"]
  with pytest.raises(SourceError, match=r"HR\.csv: --subject_id_pattern 'q\\d\+' does not "
                                        "match"):
    read_source([str(sessions[0])], subject_id_pattern=r"q\d+")
