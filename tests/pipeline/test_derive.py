"""Derivations checked on signals whose answers are known in closed form."""

import numpy as np
import pandas as pd
import pytest

from pipeline import derive

T0 = 1_700_000_040.0  # a whole UTC minute (28_333_334 * 60)
M0 = int(T0 // 60)


def beats(rr_ms, start=T0):
  rr_ms = np.asarray(rr_ms, np.float64)
  return start + np.cumsum(rr_ms) / 1000.0, rr_ms


# --------------------------------------------------------------------------- HRV

def test_fixed_rr_series():
  t, rr = beats(np.full(300, 800.0))  # 4 minutes at 75 bpm
  out = derive.hrv_per_minute(t, rr, with_hr=True)
  full = out.loc[M0 + 1]
  assert full["hrv_rr_median"] == full["hrv_rr_20th_percentile_mean"] == 800.0
  assert full["hrv_rr_80th_percentile_mean"] == 800.0
  assert full["sdnn_percentile_0595"] == 0.0
  assert full["rmssd_percentile_0595"] == 0.0
  assert full["hrv_shannon_entropy_rr"] == 0.0
  assert full["hrv_shannon_entropy_rrd"] == 0.0
  assert full["hrv_percent_good"] == pytest.approx(1.0)
  assert full["HR"] == pytest.approx(75.0)


def test_alternating_rr_series():
  t, rr = beats(np.tile([800.0, 900.0], 160))
  out = derive.hrv_per_minute(t, rr)
  full = out.loc[M0 + 1]
  in_minute = rr[(t >= T0 + 60) & (t < T0 + 120)]
  assert full["rmssd_percentile_0595"] == pytest.approx(100.0)
  assert full["sdnn_percentile_0595"] == pytest.approx(np.std(in_minute, ddof=1))
  assert full["hrv_rr_median"] == np.median(in_minute)
  assert full["hrv_rr_20th_percentile_mean"] == 800.0
  assert full["hrv_rr_80th_percentile_mean"] == 900.0
  # Two equally likely RR bins and two difference bins (+100, -100): 1 bit each.
  assert full["hrv_shannon_entropy_rr"] == pytest.approx(1.0, abs=1e-3)
  assert full["hrv_shannon_entropy_rrd"] == pytest.approx(1.0, abs=1e-3)


def test_artefacts_rejected_and_counted_as_not_good():
  rr = np.full(80, 800.0)
  rr[[10, 30, 50]] = [3000.0, 250.0, 1300.0]  # out of range, out of range, > 20% off
  t, rr = beats(rr)
  out = derive.hrv_per_minute(t, rr)
  first = out.loc[M0]
  assert first["hrv_rr_median"] == 800.0
  assert first["hrv_rr_80th_percentile_mean"] == 800.0
  assert first["sdnn_percentile_0595"] == 0.0
  good_ms = rr[(t < T0 + 60) & (rr == 800.0)].sum()
  assert first["hrv_percent_good"] == pytest.approx(good_ms / 60_000.0)


def test_missed_beat_breaks_successive_difference():
  t, rr = beats(np.tile([800.0, 900.0], 40))
  keep = np.ones(len(t), bool)
  keep[21] = False  # beat never detected: the next interval is not a successor
  out = derive.hrv_per_minute(t[keep], rr[keep])
  # Across the gap 800 -> 800 would give a 0 difference and lower RMSSD.
  assert out.loc[M0, "rmssd_percentile_0595"] == pytest.approx(100.0)


def test_too_few_beats_leave_statistics_missing():
  t, rr = beats([800.0, 800.0])
  out = derive.hrv_per_minute(t, rr)
  row = out.loc[M0]
  assert row["hrv_percent_good"] == pytest.approx(1600 / 60_000)
  for name in derive.HRV_FEATURES[1:]:
    assert np.isnan(row[name]), name


# ----------------------------------------------------------------- accelerometry

FS = 32.0


def accel(z, minutes=3):
  t = T0 + np.arange(int(FS * 60 * minutes)) / FS
  x = np.zeros_like(t)
  return t, np.stack([x, x, z(t)], axis=1)


def test_pure_sine_on_gravity_axis():
  amp, freq = 0.3, 2.0
  # Phase 0.3 rad: no sample sits exactly on a zero, so every half cycle is 8 samples.
  t, xyz = accel(lambda t: 1.0 + amp * np.sin(2 * np.pi * freq * (t - T0) + 0.3))
  out = derive.accel_per_minute(t, xyz, FS, steps=True)
  assert list(out.index) == [M0, M0 + 1, M0 + 2]
  row = out.loc[M0 + 1]
  assert row["steps"] == 120  # one peak per 0.5 s cycle
  # 4 crossings/s; the crossing that straddles the minute boundary belongs to neither.
  assert row["zero_crossing_avg"] == pytest.approx(8.0 * 2 * freq, rel=0.01)
  assert row["zero_crossing_std"] == pytest.approx(0.0, abs=1e-9)
  assert row["kurtosis"] == pytest.approx(50.0 * np.log(1.5), rel=1e-4)
  assert row["log_energy"] == pytest.approx(38.0 * np.log10(1.0 + 1e6 * amp**2 / 2),
                                            rel=1e-4)
  assert row["log_energy_ratio"] == 0.0  # no energy above 3 Hz: clipped at the floor
  assert row["jerk_auto"] == pytest.approx(127.5 * (1 + np.cos(2 * np.pi * freq / FS)),
                                           rel=1e-3)
  assert row["axis_mean"] == pytest.approx(127.5 + 63.75 / 3)
  assert np.isnan(row["covariance"])  # x and y never move: correlation undefined


def test_constant_acceleration_defines_only_what_is_defined():
  t, xyz = accel(lambda t: np.ones_like(t))
  out = derive.accel_per_minute(t, xyz, FS, steps=True)
  row = out.loc[M0]
  assert row["log_energy"] == 0.0
  assert row["zero_crossing_avg"] == 0.0
  assert row["steps"] == 0.0
  for name in ("jerk_auto", "covariance", "log_energy_ratio", "zero_crossing_std",
               "kurtosis"):
    assert np.isnan(row[name]), name
  readings = derive.to_readings("s", out)
  assert not readings["value"].isna().any()
  assert set(readings["feature"]) == {"log_energy", "zero_crossing_avg", "steps",
                                      "axis_mean"}


def test_correlated_axes():
  t = T0 + np.arange(int(FS * 60)) / FS
  s = 0.2 * np.sin(2 * np.pi * 1.0 * (t - T0))
  out = derive.accel_per_minute(t, np.stack([s, s, 1 + s], axis=1), FS, steps=False)
  assert out.loc[M0, "covariance"] == pytest.approx(255.0)
  assert "steps" not in out.columns


def test_sparse_minute_is_missing():
  t, xyz = accel(lambda t: 1.0 + 0.3 * np.sin(2 * np.pi * 2 * (t - T0)), minutes=2)
  keep = t < T0 + 60 + 20  # second minute only 20 s of 60: below MIN_COVERAGE
  out = derive.accel_per_minute(t[keep], xyz[keep], FS, steps=True)
  assert out.loc[M0].drop("covariance").notna().all()
  assert out.loc[M0 + 1].isna().all()
  assert derive.to_readings("s", out)["timestamp"].nunique() == 1


# ------------------------------------------------------------ level, slope, HR

def test_linear_ramp_level_and_slope():
  t = T0 + np.arange(4 * 60 * 3) / 4.0  # 4 Hz for 3 minutes
  eda = 2.0 + 0.5 * (t - T0) / 60.0       # +0.5 uS per minute
  out = derive.level_slope_per_minute(t, eda, level="eda_level_real",
                                      slope="ceda_slope_real_micro_siemens",
                                      min_samples=120)
  assert out["ceda_slope_real_micro_siemens"].to_numpy() == pytest.approx([0.5] * 3)
  expected_level = [eda[(t >= T0 + 60 * i) & (t < T0 + 60 * (i + 1))].mean()
                    for i in range(3)]
  assert out["eda_level_real"].to_numpy() == pytest.approx(expected_level)
  temp = derive.level_slope_per_minute(t, 30 + 0.002 * (t - T0) / 60,
                                       level="wrist_temperatures",
                                       slope="skin_temperature_slope", slope_scale=1000.0)
  assert temp["skin_temperature_slope"].to_numpy() == pytest.approx([2.0] * 3)


def test_constant_level_has_zero_slope():
  t = T0 + np.arange(240) / 4.0
  out = derive.level_slope_per_minute(t, np.full(240, 33.1), level="wrist_temperatures",
                                      slope="skin_temperature_slope")
  assert out["wrist_temperatures"].to_numpy() == pytest.approx([33.1] * 1)
  assert out["skin_temperature_slope"].to_numpy() == pytest.approx([0.0])


def test_heart_rate_mean_per_minute():
  t = T0 + np.array([0, 5, 10, 61, 65])
  out = derive.mean_per_minute(t, np.array([60, 70, 80, 100, 110.0]), "HR")
  assert out["HR"].to_dict() == {M0: 70.0, M0 + 1: 105.0}


# --------------------------------------------------------------------- altimeter

def test_altitude_std_of_a_ramp():
  t = T0 + np.arange(60.0)
  alt = 100 + np.arange(60.0) * 0.1
  out = derive.altim_std_from_altitude(t, alt)
  assert out.loc[M0, "altim_std"] == pytest.approx(np.std(alt))


def test_counter_spread_and_ascent():
  # Cumulative ascent at whole minutes: +6 m over minute 0..1, +0 over 1..2.
  t = T0 + np.array([0.0, 60.0, 120.0])
  spread = derive.spread_counter(t, np.array([10.0, 16.0, 16.0]), max_gap_s=900)
  assert spread.per_minute.to_dict() == {M0: 6.0, M0 + 1: 0.0}
  assert spread.used.all()
  alt = derive.altim_std_from_ascent(spread)
  assert alt.loc[M0, "altim_std"] == pytest.approx(6.0 / np.sqrt(12.0))


def test_counter_reset_gap_and_partial_minutes():
  t = T0 + np.array([30.0, 150.0, 170.0, 5000.0, 5060.0])
  c = np.array([100.0, 220.0, 5.0, 50.0, 50.0])  # reset at 170 s, then a long gap
  spread = derive.spread_counter(t, c, max_gap_s=900)
  # 30..150 s spreads 120 steps evenly (1 per second): only minute 1 is fully covered.
  assert spread.per_minute.loc[M0 + 1] == pytest.approx(60.0)
  assert M0 not in spread.per_minute.index and M0 + 2 not in spread.per_minute.index
  assert list(spread.baseline) == [True, False, True, True, False]
  # 5000..5060 s covers no whole minute (83:20..84:20), so those events reach nothing.
  assert list(spread.used) == [True, True, False, False, False]


def test_to_readings_timestamps_and_missing():
  frame = pd.DataFrame({"HR": [60.0, np.nan], "steps": [np.nan, 3.0]},
                       index=pd.Index([M0, M0 + 1], name="minute"))
  out = derive.to_readings("subj", frame)
  assert list(out["feature"]) == ["HR", "steps"]
  assert list(out["timestamp"]) == [pd.Timestamp(T0, unit="s", tz="UTC"),
                                    pd.Timestamp(T0 + 60, unit="s", tz="UTC")]
  assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_chunked_accelerometry_matches_one_pass(monkeypatch):
  t, xyz = accel(lambda t: 1.0 + 0.3 * np.sin(2 * np.pi * 1.7 * (t - T0)), minutes=5)
  whole = derive.accel_per_minute(t, xyz, FS, steps=True)
  monkeypatch.setattr(derive, "CHUNK_MINUTES", 2)
  chunked = derive.accel_per_minute(t[::-1], xyz[::-1], FS, steps=True)  # unsorted too
  pd.testing.assert_frame_equal(whole, chunked)
