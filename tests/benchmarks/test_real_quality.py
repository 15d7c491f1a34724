"""benchmarks/real_quality.py and heavy_tail_transform.py: the numbers' arithmetic and
the split check, on tiny fixtures (no pipeline, no training)."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import heavy_tail_transform  # noqa: E402  pylint: disable=g-import-not-at-top
import real_quality  # noqa: E402  pylint: disable=g-import-not-at-top

HR_STATISTICS = {"mean": 75.6, "std": 16.3, "count": 1000, "source": "train"}


def test_to_physical_inverts_the_z_score_in_bpm():
  bpm = np.array([50.0, 75.6, 140.0])
  z = (bpm - 75.6) / 16.3
  np.testing.assert_allclose(real_quality.to_physical(z, HR_STATISTICS), bpm)


def test_physical_error_scales_by_std_only():
  # 0.25 z off at any level is 0.25 * 16.3 bpm: the mean cancels in a difference.
  assert real_quality.physical_error(0.25, HR_STATISTICS) == pytest.approx(4.075)
  truth, guess = np.array([0.3, -1.0]), np.array([0.55, -0.75])
  bpm = np.abs(real_quality.to_physical(guess, HR_STATISTICS)
               - real_quality.to_physical(truth, HR_STATISTICS)).mean()
  assert real_quality.physical_error(np.abs(guess - truth).mean(),
                                     HR_STATISTICS) == pytest.approx(bpm)


def test_margin():
  assert real_quality.margin(0.18, 0.2) == pytest.approx(0.1)
  assert real_quality.margin(0.25, 0.2) == pytest.approx(-0.25)
  assert real_quality.margin(0.1, 0.0) is None


def _split(subjects, observed):
  return ({k: np.array(v) for k, v in subjects.items()},
          {k: np.array(v) for k, v in observed.items()})


def test_check_split_counts_windows_subjects_and_subjects_with_the_feature():
  summary = real_quality.check_split(*_split(
      {"train": ["a", "a", "b"], "valid": ["c"], "test": ["d", "e", "e", "f"]},
      {"train": [True, True, False], "valid": [True], "test": [True, True, False, False]}),
      min_windows=1)
  assert summary == {
      "train": {"windows": 3, "subjects": 2, "subjects_with_feature": 1,
                "windows_per_subject": [2]},
      "valid": {"windows": 1, "subjects": 1, "subjects_with_feature": 1,
                "windows_per_subject": [1]},
      "test": {"windows": 4, "subjects": 3, "subjects_with_feature": 2,
               "windows_per_subject": [1, 1]}}


def test_check_split_does_not_count_a_subject_with_a_few_windows():
  # The real HR cohort has a person with 2 windows: beside one other person in test
  # it would pass for two.
  subjects = {"train": ["a"] * 30, "test": ["d"] * 25 + ["e"] * 2}
  observed = {"train": [True] * 30, "test": [True] * 27}
  with pytest.raises(real_quality.SplitError, match="1 subject.*at least 20 windows"):
    real_quality.check_split(*_split(subjects, observed))
  assert real_quality.check_split(*_split(subjects, observed), min_windows=2)[
      "test"]["subjects_with_feature"] == 2


def test_check_split_refuses_a_subject_in_two_splits():
  with pytest.raises(real_quality.SplitError, match=r"bbbbbbbbbbbb\.\.\. \(train and test\)"):
    real_quality.check_split(*_split({"train": ["a" * 32, "b" * 32], "test": ["b" * 32, "c"]},
                                     {"train": [True, True], "test": [True, True]}))


def test_check_split_refuses_a_test_split_with_one_person_with_the_feature():
  # Two test subjects, but only one of them ever observes the feature.
  with pytest.raises(real_quality.SplitError, match="1 subject.*2 needed"):
    real_quality.check_split(*_split({"train": ["a"], "test": ["d", "e"]},
                                     {"train": [True], "test": [True, False]}),
                             min_windows=1)


def test_log1p_space_keeps_the_walks_the_z_score_caps():
  rng = np.random.default_rng(0)
  # Mostly still minutes, some walking: mean + 5 std lands near 100 steps/min.
  train = np.where(rng.random(20000) < 0.95, 0.0, rng.uniform(60, 130, 20000))
  spaces = heavy_tail_transform.spaces(train, 0.0, 300.0)
  current, log1p = spaces["zscore_clip5 (current)"], spaces["log1p_zscore_clip5"]
  assert current.cap == pytest.approx(train.mean() + 5 * train.std())
  assert current.cap < 120
  # log1p(steps) is far less skewed: +-5 of its z-score reaches well past a run.
  assert log1p.cap > 150
  walk = np.array([0.0, 12.0, 118.0, 125.0])
  np.testing.assert_allclose(log1p.invert(log1p.normalise(walk)), walk, rtol=1e-9)
  np.testing.assert_allclose(current.invert(current.normalise(walk)),
                             [0.0, 12.0, current.cap, current.cap], rtol=1e-9)


def test_cut_windows_keeps_windows_at_most_half_missing():
  series = np.zeros(3 * heavy_tail_transform.WINDOW + 7)
  series[:151] = np.nan     # window 0: 151 of 300 missing, dropped
  series[300:450] = np.nan  # window 1: exactly half missing, kept
  windows = heavy_tail_transform.cut_windows(series)
  assert windows.shape == (2, heavy_tail_transform.WINDOW)
  assert np.isnan(windows[0]).sum() == 150 and not np.isnan(windows[1]).any()


def test_a_run_in_a_chosen_folder_keeps_its_result_there():
  committed = str(real_quality.REPO / "benchmarks" / "results")
  assert real_quality.result_path(None, None, "/x", False) == committed + "/real_quality.json"
  assert real_quality.result_path(None, None, "/x", True) == \
      committed + "/real_quality_quick.json"
  assert real_quality.result_path(None, "/tmp/t", "/tmp/t", True) == \
      "/tmp/t/real_quality_quick.json"
  assert real_quality.result_path("/r.json", "/tmp/t", "/tmp/t", False) == "/r.json"
