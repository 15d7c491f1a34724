import re

import pytest

import schemas
from schemas import features

LSM_ORDER = (
    "HR eda_level_real leads_contact_counts steps jerk_auto log_energy covariance "
    "log_energy_ratio zero_crossing_std zero_crossing_avg axis_mean altim_std kurtosis "
    "sleep_coefficient wrist_temperatures hrv_shannon_entropy_rr hrv_shannon_entropy_rrd "
    "ceda_slope_real_micro_siemens rmssd_percentile_0595 sdnn_percentile_0595 "
    "hrv_percent_good hrv_rr_80th_percentile_mean hrv_rr_20th_percentile_mean "
    "hrv_rr_median hr_at_rest_mean skin_temperature_slope").split()


def test_26_features_in_lsm_order():
  assert schemas.FEATURE_NAMES == tuple(LSM_ORDER)
  assert schemas.NUM_FEATURES == 26
  assert len(set(schemas.FEATURE_NAMES)) == 26


def test_population_statistics_match_lsm_facts():
  # Spot checks against ../shared/reference/LSM_FACTS.md.
  by_name = {f.name: f for f in schemas.FEATURES}
  assert (by_name["HR"].population_mean, by_name["HR"].population_std) == (81.77, 14.07)
  assert by_name["steps"].population_std == 18.62
  assert by_name["altim_std"].population_mean == 0.0037
  assert by_name["skin_temperature_slope"].population_std == 17.27
  assert all(f.population_std > 0 for f in schemas.FEATURES)


def test_ranges_and_rules_are_consistent():
  for f in schemas.FEATURES:
    assert f.group in schemas.SENSOR_GROUPS
    assert f.aggregation in features.AGGREGATIONS
    lo, hi = f.valid_range
    clo, chi = f.clip_range
    assert lo < hi and clo < chi, f.name
    assert lo <= clo and chi <= hi, f"{f.name}: clip range must lie inside the valid range"
  assert {f.name for f in schemas.FEATURES if f.hrv_gated} == {
      "hrv_shannon_entropy_rr", "hrv_shannon_entropy_rrd", "rmssd_percentile_0595",
      "sdnn_percentile_0595", "hrv_rr_80th_percentile_mean",
      "hrv_rr_20th_percentile_mean", "hrv_rr_median"}
  assert schemas.features.FEATURES[schemas.FEATURE_INDEX["steps"]].aggregation == "sum"
  assert schemas.features.FEATURES[schemas.FEATURE_INDEX["HR"]].aggregation == "mean"


@pytest.mark.parametrize("alias, name", [
    ("heart_rate", "HR"), ("heartrate", "HR"), ("hr", "HR"), ("BPM", "HR"),
    ("Heart Rate", "HR"), ("Steps", "steps"), ("step_count", "steps"),
    ("step-count", "steps"), ("EDA", "eda_level_real"), ("rmssd", "rmssd_percentile_0595"),
    ("wrist_temperatures", "wrist_temperatures"),
])
def test_aliases_resolve(alias, name):
  assert schemas.canonical_name(alias) == name


def test_aliases_unambiguous_and_unknown_names_rejected():
  seen = {}
  for f in schemas.FEATURES:
    for alias in (f.name,) + f.aliases:
      key = features.normalise_alias(alias)
      assert seen.setdefault(key, f.name) == f.name, f"{alias} is ambiguous"
  assert schemas.canonical_name("calories") is None
  assert schemas.canonical_name("METs") is None


def test_ambiguous_alias_table_is_refused(monkeypatch):
  clash = features.FEATURES + (features.Feature(
      "other", "PPG", "x", (0, 1), (0, 1), "mean", ("hr",), 0.0, 1.0),)
  monkeypatch.setattr(features, "FEATURES", clash)
  with pytest.raises(ValueError, match=re.escape("'hr'")):
    features._build_alias_table()


def test_shape_constants():
  assert schemas.WINDOW_MINUTES == 300
  assert schemas.PADDED_FEATURES % schemas.PATCH_FEATURES == 0
  assert schemas.FEATURE_PAD_BEFORE + schemas.NUM_FEATURES + schemas.FEATURE_PAD_AFTER == 30
  assert schemas.WINDOW_MINUTES % schemas.PATCH_MINUTES == 0
  assert len(schemas.ACTIVITY_CLASSES) == 8


def test_feature_array_and_groups():
  means = schemas.feature_array("population_mean")
  assert means.shape == (26,) and means[0] == 81.77
  assert schemas.features_in_group("TEMP") == ("wrist_temperatures", "skin_temperature_slope")
  with pytest.raises(ValueError, match="unknown sensor group"):
    schemas.features_in_group("GPS")


def test_dead_letter_reasons_partition_rows_and_readings():
  from schemas import raw
  assert set(raw.ROW_REASONS).isdisjoint(raw.READING_REASONS)
  assert raw.DEAD_LETTER_REASONS == raw.ROW_REASONS + raw.READING_REASONS
