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


# sha256 of values (then hr_samples) of generate_subject(3, k, 2), computed with the
# generator before noise_free existed: the noisy output must not change by a byte.
PINNED = {2: "cdf3dce94728c770f243f1715635947d68042efbf1f2b61a7f888c2a7f82be8d",
          4: "33014aff3b585afd218e3a94c495d1927c6fe7a7eae402278bd199b75cc51c13"}


def test_noisy_subject_is_byte_identical_to_before():
  import hashlib
  for index, digest in PINNED.items():
    s = physiology.generate_subject(3, index, 2)
    h = hashlib.sha256(s.values.tobytes())
    if s.hr_samples is not None:
      h.update(s.hr_samples.tobytes())
    assert h.hexdigest() == digest, index
  assert physiology.generate_subject(3, 4, 2).hr_samples is not None   # both HR kinds


@pytest.fixture(scope="module")
def noisy_and_clean():
  return [(physiology.generate_subject(3, k, 4), physiology.generate_subject(3, k, 4, True))
          for k in range(6)]


def test_noise_free_subject_has_the_same_schedule_and_every_minute(noisy_and_clean):
  for noisy, clean in noisy_and_clean:
    assert clean.traits == noisy.traits and clean.events == noisy.events
    assert np.array_equal(clean.state, noisy.state)
    assert clean.values.dtype == np.float32 and not np.isnan(clean.values).any()
    assert clean.hr_samples is None


def test_noise_free_differs_only_by_rounding_where_there_is_no_measurement_noise(
    noisy_and_clean):
  for name, i in FEATURE_INDEX.items():
    if name in physiology.MEASUREMENT_NOISE:
      continue
    half_step = 0.5 * 10.0 ** -physiology.DECIMALS[name] + 1e-4 * abs(FEATURES[i].clip_range[1])
    for noisy, clean in noisy_and_clean:
      if name == "HR" and noisy.traits["sub_minute_hr"]:
        continue
      seen = ~np.isnan(noisy.values[:, i])
      error = np.abs(noisy.values[seen, i] - clean.values[seen, i])
      assert error.max(initial=0) <= half_step, name


def test_noisy_minus_noise_free_has_the_documented_noise_std(noisy_and_clean):
  """Away from the clip range's ends (4 std), noisy - clean is the white term plus
  rounding: std sqrt(sigma**2 + step**2 / 12) within 5 standard errors and 1%."""
  stds = {**physiology.MEASUREMENT_NOISE, "HR": physiology.SUB_MINUTE_HR_NOISE / 2}
  checked = 0
  for name, sigma in stds.items():
    if name == "hrv_percent_good":      # scaled by stillness: no one std to check
      continue
    i = FEATURE_INDEX[name]
    low, high = FEATURES[i].clip_range
    step = 1.0 if name == "HR" else 10.0 ** -physiology.DECIMALS[name]  # HR: 1-bpm samples
    rounding = step ** 2 / 12 / (4 if name == "HR" else 1)
    diffs = []
    for noisy, clean in noisy_and_clean:
      if name == "HR" and not noisy.traits["sub_minute_hr"]:
        continue
      c = clean.values[:, i]
      inside = ~np.isnan(noisy.values[:, i]) & (c > low + 4 * sigma) & (c < high - 4 * sigma)
      diffs.append(noisy.values[inside, i].astype(np.float64) - c[inside])
    diff = np.concatenate(diffs)
    if diff.size < 1000:
      continue
    expected = np.sqrt(sigma ** 2 + rounding)
    tolerance = 5 / np.sqrt(2 * diff.size) + 0.01
    assert abs(diff.std() / expected - 1) < tolerance, (name, diff.std(), expected)
    assert abs(diff.mean()) < 5 * expected / np.sqrt(diff.size), name
    checked += 1
  assert checked >= 14


def test_smooth_leaves_out_the_shared_per_minute_terms_too():
  clean = physiology.generate_subject(3, 4, 2, noise_free=True)
  smooth = physiology.generate_subject(3, 4, 2, noise_free=True, smooth=True)
  assert smooth.events == clean.events and not np.isnan(smooth.values).any()
  sedentary = smooth.state == physiology.SEDENTARY
  assert (smooth.values[:, FEATURE_INDEX["altim_std"]] == 0).all()          # no climbs, blips
  assert (smooth.values[sedentary, STEPS] == 0).all()                        # no fidget
  assert (clean.values[sedentary, STEPS] > 0).any()
  # HR without its beat-to-beat term: minute-to-minute changes shrink.
  step = lambda v: np.abs(np.diff(v[:, HR])).mean()
  assert step(smooth.values) < 0.8 * step(clean.values)
  with pytest.raises(ValueError, match="needs noise_free=True"):
    physiology.generate_subject(3, 4, 2, smooth=True)
