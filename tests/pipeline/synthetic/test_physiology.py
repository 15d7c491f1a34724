"""The generator itself: purity, ranges, device rules, and labels matching the signals."""

import numpy as np
import pytest

from pipeline.synthetic import physiology
from schemas.constants import ACTIVITY_CLASSES
from schemas.features import FEATURE_INDEX, FEATURES, HRV_GOOD_THRESHOLD

HR, STEPS = FEATURE_INDEX["HR"], FEATURE_INDEX["steps"]


@pytest.fixture(scope="module")
def cohort():
  return [physiology.generate_subject(11, k, 4) for k in range(40)]


def _minutes(subjects, predicate):
  """Values of all minutes for which predicate(subject) is true, stacked."""
  return np.concatenate([s.values[predicate(s)] for s in subjects])


def test_subject_depends_on_seed_and_index_only():
  a = physiology.generate_subject(5, 17, 2)
  physiology.generate_subject(5, 3, 2)            # other subjects in between
  b = physiology.generate_subject(5, 17, 2)
  c = physiology.generate_subject(6, 17, 2)
  assert np.array_equal(a.values, b.values, equal_nan=True)
  assert a.events == b.events and a.traits == b.traits
  assert not np.array_equal(a.values, c.values, equal_nan=True)


def test_values_in_range_and_shape(cohort):
  for s in cohort:
    assert s.values.shape == (4 * 1440, len(FEATURES)) and s.values.dtype == np.float32
    assert s.subject_id == f"synth-11-{s.index:06d}"
  values = np.concatenate([s.values for s in cohort])
  for i, f in enumerate(FEATURES):
    column = values[:, i][~np.isnan(values[:, i])]
    assert column.size > 0, f.name
    assert column.min() >= f.valid_range[0] and column.max() <= f.valid_range[1], f.name


def test_hrv_only_when_percent_good_at_least_threshold(cohort):
  values = np.concatenate([s.values for s in cohort])
  pg = values[:, FEATURE_INDEX["hrv_percent_good"]]
  hrv = values[:, physiology.HRV_COLUMNS]
  low = ~(pg >= HRV_GOOD_THRESHOLD)                  # below threshold or missing
  assert low.sum() > 1000 and np.isnan(hrv[low]).all()
  assert (~np.isnan(hrv[~low])).mean() > 0.9


def test_whole_sensors_absent_per_device_model(cohort):
  for s in cohort:
    for group in physiology.DEVICE_MISSING_GROUPS[s.traits["device_model"]]:
      assert np.isnan(s.values[:, physiology.GROUP_COLUMNS[group]]).all()
  assert {s.traits["device_model"] for s in cohort} == set(physiology.DEVICE_MODELS)


def test_sub_minute_samples_average_to_the_minute(cohort):
  subjects = [s for s in cohort if s.hr_samples is not None]
  assert subjects
  for s in subjects:
    present = ~np.isnan(s.values[:, HR])
    assert np.array_equal(s.hr_samples[present].mean(axis=1), s.values[present, HR])
    assert np.isnan(s.hr_samples[~present]).all()
    assert np.array_equal(s.hr_samples[present], np.round(s.hr_samples[present]))


def _event_mask(s, activity):
  mask = np.zeros(s.num_minutes, bool)
  for start, end, name, _ in s.events:
    if name == activity:
      mask[start:end] = True
  return mask


def test_labels_line_up_with_signals(cohort):
  def mean(activity, column):
    return np.nanmean(_minutes(cohort, lambda s: _event_mask(s, activity))[:, column])

  sedentary_hr, sedentary_steps = mean("sedentary", HR), mean("sedentary", STEPS)
  assert mean("run", HR) > sedentary_hr + 30 and mean("run", STEPS) > 130
  assert mean("swim", HR) > sedentary_hr + 25 and mean("swim", STEPS) < 10
  assert mean("bike", STEPS) < 15 and mean("bike", FEATURE_INDEX["altim_std"]) > 0.05
  assert 90 < mean("walk", STEPS) < 130 and mean("walk", HR) < mean("run", HR)
  assert mean("sleep", HR) < sedentary_hr - 5 and sedentary_steps < 5
  assert mean("sleep", FEATURE_INDEX["sleep_coefficient"]) > 10
  rmssd = FEATURE_INDEX["rmssd_percentile_0595"]
  assert mean("sleep", rmssd) > mean("sedentary", rmssd)
  # Every exercise label is one of the 8 classes and its minutes carry its class id.
  for s in cohort:
    for start, end, name, exercise in s.events:
      assert (name in ACTIVITY_CLASSES) == bool(exercise)
      if exercise:
        assert (s.activity[start:end] == ACTIVITY_CLASSES.index(name)).all()


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_hr_lags_and_recovers_after_effort(cohort):
  """HR is still raised a few minutes after a session ends, and back down later."""
  after, later, before = [], [], []
  for s in cohort:
    for start, end, name, exercise in s.events:
      if exercise and name in ("run", "hiit") and end + 40 < s.num_minutes:
        before.append(np.nanmean(s.values[end - 5:end, HR]))
        after.append(np.nanmean(s.values[end + 1:end + 4, HR]))
        later.append(np.nanmean(s.values[end + 25:end + 40, HR]))
  assert len(after) >= 5
  assert np.nanmean(before) > np.nanmean(after) > np.nanmean(later) + 5
