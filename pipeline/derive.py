"""Per-minute LSM features derived from raw or beat-level signals: every definition, here.

Devices without LSM's on-board features (Empatica E4, Garmin, raw accelerometers)
still fill what they can. Each function takes one subject's whole recording as
numpy arrays (times in seconds since the Unix epoch, UTC) and returns a DataFrame
indexed by `minute` (int64, UTC minutes since the epoch; a sample at time t belongs
to minute floor(t / 60)) with one column per derived feature. A minute a signal
cannot define gets NaN, which `to_readings` drops: never zeros, never invented.
Everything is vectorised over the recording (bincount sums, padded [minute, sample]
arrays); nothing loops per sample in Python.

Definitions and units (LSM's firmware definitions of the accelerometer and HRV
features are not public; these are this project's, chosen to be standard and
documented, so their distributions will not match LSM's population statistics):

Beat-to-beat intervals (RR / IBI, ms; a beat belongs to the minute it ends in):
  artefact rejection  a beat is good if RR_MIN_MS <= RR <= RR_MAX_MS and it deviates
                      at most RR_MAX_DEVIATION (20%) from the median of the minute's
                      in-range beats.
  hrv_percent_good    fraction of the minute covered by good beats: sum(good RR) / 60 s,
                      capped at 1 (= good beats / beats expected at the median RR), so
                      beats the device never detected count as not good.
  hrv_rr_median, hrv_rr_20th_percentile_mean, hrv_rr_80th_percentile_mean
                      median, 20th and 80th percentile (linear) of good RR, ms.
  sdnn_percentile_0595
                      standard deviation (ddof=1) of the good RR between the minute's
                      5th and 95th percentile of good RR, ms.
  rmssd_percentile_0595
                      root mean square of successive differences RR_i - RR_{i-1} over
                      pairs of adjacent beats both kept by that 5-95% trim, ms. Two
                      beats are adjacent when the time between them matches the later
                      RR within 25% (so a missed beat breaks the pair).
  hrv_shannon_entropy_rr, hrv_shannon_entropy_rrd
                      Shannon entropy (bits) of the histogram of good RR, and of the
                      successive differences of adjacent good beats, in fixed bins of
                      ENTROPY_BIN_MS (1/128 s) aligned at 0.
  HR (from beats)     60000 / mean(good RR), beats/min; only used when a source has no
                      heart-rate samples of its own.
  A statistic needs MIN_GOOD_BEATS good beats (RMSSD: MIN_GOOD_BEATS - 1 pairs) in
  the minute, else it is missing; hrv_percent_good is defined whenever the minute
  has any beat. The pipeline applies LSM's gate (hrv_percent_good < 0.2) itself.

Raw tri-axial acceleration (converted to g by the adapter; m = |(x, y, z)|; a minute
needs MIN_COVERAGE of its expected samples). LSM stores these as 8-bit device units
(0..255); we map each statistic to 0..255 by the fixed affine/log scale given here,
clipped, so that values pass the schema's valid range:
  axis_mean           mean over the minute of (x + y + z) / 3, g;  127.5 + 63.75 * g.
  log_energy          E = mean((m - mean m)^2), g^2;  38 * log10(1 + 1e6 * E).
  log_energy_ratio    energy of m above / below 3 Hz (0.3-3 Hz vs 3 Hz-Nyquist, FFT of
                      the minute), each floored at 1e-12;  127.5 + 40 * log10(ratio).
  covariance          mean of the three pairwise Pearson correlations of x, y, z
                      (covariance normalised by the axes' spreads);  127.5 * (1 + r).
  zero_crossing_avg   sign changes of m - mean(m) between consecutive samples of the
                      minute, per second of samples (n / fs);  8 * rate.
  zero_crossing_std   standard deviation (ddof=0) of the intervals between successive
                      crossings, s;  100 * std.
  jerk_auto           lag-1 autocorrelation of the jerk dm/dt;  127.5 * (1 + r).
  kurtosis            Pearson kurtosis m4 / m2^2 of m (3 for Gaussian);  50 * ln(k).
  steps (if the source has no step counter)
                      local maxima above STEP_MIN_PEAK_G of m band-passed to
                      0.5-3 Hz (Butterworth, scipy order 2, zero-phase sosfiltfilt,
                      per minute); one step per peak. A wrist sees arm swing, so this
                      is a documented proxy, not a validated pedometer.
  A statistic whose denominator is zero (a perfectly still minute: no variance, no
  crossings) is undefined and missing, except log_energy (0 is its value) and
  zero_crossing_avg (0 crossings), which are defined.

EDA (uS) and wrist temperature (degC) samples (a minute needs MIN_COVERAGE of its
expected samples, or at least 2 for irregular streams):
  eda_level_real / wrist_temperatures   mean of the minute's samples.
  ceda_slope_real_micro_siemens          least-squares slope over the minute, uS/min.
  skin_temperature_slope                  least-squares slope, milli-degC/min.

Altimeter:
  altim_std from altitude samples         standard deviation (ddof=0) within the minute, m.
  altim_std from a cumulative ascent counter (Garmin ASCENT)
                      the counter's increase d in the minute (see `spread_counter`),
                      as the standard deviation of a steady climb of d metres over
                      the minute: d / sqrt(12). Descents are invisible to the counter.

Cumulative counters (Garmin STEPS, ASCENT; see `spread_counter`): the increase
between consecutive events at most max_gap_s apart is spread evenly over the time
between them; a minute gets a value only if valid intervals cover it entirely.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

RR_MIN_MS = 300.0
RR_MAX_MS = 2000.0
RR_MAX_DEVIATION = 0.2
ADJACENT_TOLERANCE = 0.25
ENTROPY_BIN_MS = 1000.0 / 128.0
MIN_GOOD_BEATS = 3
MIN_COVERAGE = 0.5
CHUNK_MINUTES = 240
STEP_BAND_HZ = (0.5, 3.0)
STEP_MIN_PEAK_G = 0.05
ENERGY_SPLIT_HZ = (0.3, 3.0)
_TINY = 1e-12

HRV_FEATURES = ("hrv_percent_good", "hrv_rr_median", "hrv_rr_20th_percentile_mean",
                "hrv_rr_80th_percentile_mean", "sdnn_percentile_0595",
                "rmssd_percentile_0595", "hrv_shannon_entropy_rr",
                "hrv_shannon_entropy_rrd")
ACCEL_FEATURES = ("jerk_auto", "log_energy", "covariance", "log_energy_ratio",
                  "zero_crossing_std", "zero_crossing_avg", "axis_mean", "kurtosis")


def minute_of(t_s: np.ndarray) -> np.ndarray:
  """UTC minute since the epoch of each time (seconds since the epoch)."""
  return np.floor(np.asarray(t_s, dtype=np.float64) / 60.0).astype(np.int64)


@dataclasses.dataclass
class _Groups:
  """Samples grouped by minute: the padded [minute, slot] layout every feature uses."""

  minutes: np.ndarray   # unique minutes, sorted
  index: np.ndarray     # per sample: row in `minutes`
  slot: np.ndarray      # per sample: position within its minute
  counts: np.ndarray    # samples per minute
  order: np.ndarray     # sort order applied to the samples

  @classmethod
  def of(cls, t_s: np.ndarray) -> "_Groups":
    t_s = np.asarray(t_s, dtype=np.float64)
    order = np.argsort(t_s, kind="stable")
    minute = minute_of(t_s[order])
    minutes, index, counts = np.unique(minute, return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(minute)) - starts[index]
    return cls(minutes, index, slot, counts, order)

  def padded(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    out = np.full((len(self.minutes), int(self.counts.max(initial=0))), fill)
    out[self.index, self.slot] = np.asarray(values, dtype=np.float64)[self.order]
    return out

  def total(self, values: np.ndarray) -> np.ndarray:
    return np.bincount(self.index, weights=np.asarray(values, np.float64)[self.order],
                       minlength=len(self.minutes))

  def frame(self, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(columns, index=pd.Index(self.minutes, name="minute"))


def _empty(columns) -> pd.DataFrame:
  return pd.DataFrame({c: np.array([], np.float64) for c in columns},
                      index=pd.Index(np.array([], np.int64), name="minute"))


def mean_per_minute(t_s: np.ndarray, values: np.ndarray, feature: str) -> pd.DataFrame:
  """Mean of sub-minute samples (heart rate from 1 Hz or 5 s samples)."""
  values = np.asarray(values, np.float64)
  keep = np.isfinite(values)
  if not keep.any():
    return _empty([feature])
  g = _Groups.of(np.asarray(t_s)[keep])
  return g.frame({feature: g.total(values[keep]) / g.counts})


# ------------------------------------------------------------------------ beats / HRV

def hrv_per_minute(beat_t_s: np.ndarray, rr_ms: np.ndarray, *,
                   with_hr: bool = False) -> pd.DataFrame:
  """The HRV features (and optionally HR) per minute from beat end times and RR (ms)."""
  columns = HRV_FEATURES + (("HR",) if with_hr else ())
  rr_ms = np.asarray(rr_ms, np.float64)
  t = np.asarray(beat_t_s, np.float64)
  keep = np.isfinite(rr_ms) & np.isfinite(t)
  t, rr_ms = t[keep], rr_ms[keep]
  if not len(t):
    return _empty(columns)
  order = np.argsort(t, kind="stable")
  t, rr_ms = t[order], rr_ms[order]
  g = _Groups.of(t)  # already sorted: g.order is the identity
  rr = g.padded(rr_ms)
  in_range = (rr >= RR_MIN_MS) & (rr <= RR_MAX_MS)
  median_in_range = _nan_reduce(np.nanmedian, np.where(in_range, rr, np.nan))
  good = in_range & (np.abs(rr - median_in_range[:, None])
                     <= RR_MAX_DEVIATION * median_in_range[:, None])
  good_rr = np.where(good, rr, np.nan)
  n_good = good.sum(axis=1)
  enough = n_good >= MIN_GOOD_BEATS

  out = {"hrv_percent_good": np.minimum(1.0, np.nansum(good_rr, axis=1) / 60_000.0)}
  p20, p50, p80, p05, p95 = _nan_reduce(
      lambda a, axis: np.nanpercentile(a, [20, 50, 80, 5, 95], axis=axis), good_rr)
  out["hrv_rr_median"] = np.where(enough, p50, np.nan)
  out["hrv_rr_20th_percentile_mean"] = np.where(enough, p20, np.nan)
  out["hrv_rr_80th_percentile_mean"] = np.where(enough, p80, np.nan)

  kept = good & (rr >= p05[:, None]) & (rr <= p95[:, None])
  kept_rr = np.where(kept, rr, np.nan)
  n_kept = kept.sum(axis=1)
  sdnn = _nan_reduce(lambda a, axis: np.nanstd(a, axis=axis, ddof=1), kept_rr,
                     min_count=2)
  out["sdnn_percentile_0595"] = np.where(enough & (n_kept >= 2), sdnn, np.nan)

  # Successive differences: beat j follows beat j-1 with nothing missed in between.
  tt = g.padded(t)
  gap = np.diff(tt, axis=1) * 1000.0
  adjacent = np.abs(gap - rr[:, 1:]) <= ADJACENT_TOLERANCE * rr[:, 1:]
  diff = np.diff(rr, axis=1)
  kept_pair = adjacent & kept[:, 1:] & kept[:, :-1]
  n_pairs = kept_pair.sum(axis=1)
  sq = np.where(kept_pair, diff * diff, 0.0).sum(axis=1)
  out["rmssd_percentile_0595"] = np.where(
      enough & (n_pairs >= MIN_GOOD_BEATS - 1), np.sqrt(sq / np.maximum(n_pairs, 1)),
      np.nan)

  out["hrv_shannon_entropy_rr"] = np.where(enough, _row_entropy(good_rr), np.nan)
  good_pair = adjacent & good[:, 1:] & good[:, :-1]
  out["hrv_shannon_entropy_rrd"] = np.where(
      good_pair.sum(axis=1) >= MIN_GOOD_BEATS - 1,
      _row_entropy(np.where(good_pair, diff, np.nan)), np.nan)
  if with_hr:
    out["HR"] = 60_000.0 / _nan_reduce(np.nanmean, good_rr)
  return g.frame({c: out[c] for c in columns})


def _nan_reduce(fn, a: np.ndarray, min_count: int = 1):
  """Applies a nan-aware reduction along rows; rows with < min_count values give NaN."""
  valid = (~np.isnan(a)).sum(axis=1) >= min_count
  safe = np.where(valid[:, None], a, 0.0)
  with np.errstate(invalid="ignore", divide="ignore"):
    out = np.asarray(fn(safe, axis=1))
  return np.where(valid, out, np.nan)


def _row_entropy(values: np.ndarray) -> np.ndarray:
  """Shannon entropy (bits) of each row's histogram in ENTROPY_BIN_MS bins; NaN ignored."""
  rows, cols = np.nonzero(~np.isnan(values))
  out = np.full(values.shape[0], np.nan)
  if not len(rows):
    return out
  bins = np.floor(values[rows, cols] / ENTROPY_BIN_MS).astype(np.int64)
  pairs, counts = np.unique(np.stack([rows, bins]), axis=1, return_counts=True)
  n = np.bincount(pairs[0], weights=counts, minlength=values.shape[0])
  p = counts / n[pairs[0]]
  h = np.bincount(pairs[0], weights=-p * np.log2(p), minlength=values.shape[0])
  has = n > 0
  out[has] = h[has] + 0.0  # + 0.0 turns -0.0 into 0.0
  return out


# ------------------------------------------------------------------- accelerometry

def accel_per_minute(t_s: np.ndarray, xyz_g: np.ndarray, fs: float, *,
                     steps: bool) -> pd.DataFrame:
  """The accelerometer features (and steps if asked) per minute from x, y, z in g.

  Works through the recording CHUNK_MINUTES at a time so that the padded
  [minute, sample] arrays stay small (a week at 100 Hz would not fit at once).
  """
  columns = ACCEL_FEATURES + (("steps",) if steps else ())
  xyz_g = np.asarray(xyz_g, np.float64)
  keep = np.isfinite(xyz_g).all(axis=1)
  t = np.asarray(t_s, np.float64)[keep]
  if not len(t):
    return _empty(columns)
  order = np.argsort(t, kind="stable")
  t, xyz_g = t[order], xyz_g[keep][order]
  minute = minute_of(t)
  firsts = np.flatnonzero(np.concatenate([[True], minute[1:] != minute[:-1]]))
  bounds = np.concatenate([firsts[::CHUNK_MINUTES], [len(t)]])
  frames = [_accel_chunk(t[a:b], xyz_g[a:b], fs, columns, steps)
            for a, b in zip(bounds[:-1], bounds[1:])]
  return pd.concat(frames) if len(frames) > 1 else frames[0]


def _accel_chunk(t, xyz_g, fs, columns, steps) -> pd.DataFrame:
  g = _Groups.of(t)
  complete = g.counts >= MIN_COVERAGE * fs * 60.0
  x, y, z = (g.padded(xyz_g[:, i]) for i in range(3))
  valid = ~np.isnan(x)
  n = valid.sum(axis=1).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    out = _accel_stats(x, y, z, valid, n, fs, steps)
  return g.frame({c: np.where(complete, out[c], np.nan) for c in columns})


def _accel_stats(x, y, z, valid, n, fs, steps) -> dict[str, np.ndarray]:
  def mean(a):
    return np.where(valid, a, 0.0).sum(axis=1) / n

  out = {"axis_mean": _scale(127.5 + 63.75 * mean((x + y + z) / 3.0))}
  m = np.sqrt(x * x + y * y + z * z)
  dyn = np.where(valid, m - mean(m)[:, None], 0.0)
  m2 = mean(dyn * dyn)
  still = m2 < _TINY
  out["log_energy"] = _scale(38.0 * np.log10(1.0 + 1e6 * m2))

  spectrum = np.abs(np.fft.rfft(dyn, axis=1)) ** 2
  freq = np.fft.rfftfreq(dyn.shape[1], 1.0 / fs)
  low = spectrum[:, (freq >= ENERGY_SPLIT_HZ[0]) & (freq < ENERGY_SPLIT_HZ[1])].sum(1)
  high = spectrum[:, freq >= ENERGY_SPLIT_HZ[1]].sum(axis=1)
  out["log_energy_ratio"] = np.where(
      low + high > _TINY,
      _scale(127.5 + 40.0 * np.log10(np.maximum(high, _TINY) / np.maximum(low, _TINY))),
      np.nan)

  centred = [np.where(valid, a - mean(a)[:, None], 0.0) for a in (x, y, z)]
  var = [mean(c * c) for c in centred]
  corr = [mean(centred[i] * centred[j]) / np.sqrt(var[i] * var[j])
          for i, j in ((0, 1), (0, 2), (1, 2))]
  corr = np.stack([np.where(np.isfinite(c), c, np.nan) for c in corr])
  has_corr = np.isfinite(corr).any(axis=0)
  out["covariance"] = np.where(
      has_corr, _scale(127.5 * (1.0 + np.nanmean(np.where(has_corr, corr, 0.0), axis=0))),
      np.nan)

  pos = dyn > 0
  cross = (pos[:, 1:] != pos[:, :-1]) & valid[:, 1:] & valid[:, :-1]
  out["zero_crossing_avg"] = _scale(8.0 * cross.sum(axis=1) / (n / fs))
  out["zero_crossing_std"] = _scale(100.0 * _interval_std(cross, fs))

  jerk = np.diff(m, axis=1) * fs
  jv = valid[:, 1:] & valid[:, :-1]
  jn = jv.sum(axis=1)
  jc = np.where(jv, jerk - (np.where(jv, jerk, 0).sum(1) / jn)[:, None], 0.0)
  num = (jc[:, 1:] * jc[:, :-1]).sum(axis=1)
  den = (jc * jc).sum(axis=1)
  out["jerk_auto"] = np.where(den > _TINY, _scale(127.5 * (1.0 + num / den)), np.nan)

  m4 = mean(dyn ** 4)
  out["kurtosis"] = np.where(still, np.nan, _scale(50.0 * np.log(m4 / m2 ** 2)))
  if steps:
    out["steps"] = _count_steps(dyn, valid, fs)
  return out


def _scale(v: np.ndarray) -> np.ndarray:
  return np.clip(v, 0.0, 255.0)


def _interval_std(cross: np.ndarray, fs: float) -> np.ndarray:
  """Std (s) of the intervals between successive crossings in each row; NaN if < 2."""
  rows, cols = np.nonzero(cross)
  same = rows[1:] == rows[:-1]
  r = rows[1:][same]
  iv = (cols[1:] - cols[:-1])[same] / fs
  k = np.bincount(r, minlength=cross.shape[0])
  s1 = np.bincount(r, weights=iv, minlength=cross.shape[0])
  s2 = np.bincount(r, weights=iv * iv, minlength=cross.shape[0])
  mu = s1 / np.maximum(k, 1)
  return np.where(k >= 2, np.sqrt(np.maximum(s2 / np.maximum(k, 1) - mu * mu, 0.0)), np.nan)


def _count_steps(dyn: np.ndarray, valid: np.ndarray, fs: float) -> np.ndarray:
  if dyn.shape[1] < 16:
    return np.zeros(dyn.shape[0])
  from scipy import signal  # here: importing scipy.signal slows every run's start
  sos = signal.butter(2, STEP_BAND_HZ, btype="bandpass", fs=fs, output="sos")
  band = signal.sosfiltfilt(sos, dyn, axis=1)
  peak = ((band[:, 1:-1] > band[:, :-2]) & (band[:, 1:-1] >= band[:, 2:])
          & (band[:, 1:-1] > STEP_MIN_PEAK_G) & valid[:, 1:-1])
  return peak.sum(axis=1).astype(np.float64)


# -------------------------------------------------------------- level and slope

def level_slope_per_minute(t_s: np.ndarray, values: np.ndarray, *, level: str,
                           slope: str, slope_scale: float = 1.0,
                           min_samples: float = 2) -> pd.DataFrame:
  """Mean and least-squares slope (per minute x slope_scale) of each minute's samples."""
  values = np.asarray(values, np.float64)
  keep = np.isfinite(values)
  if not keep.any():
    return _empty([level, slope])
  t = np.asarray(t_s, np.float64)[keep]
  g = _Groups.of(t)
  v = values[keep]
  x = t - minute_of(t) * 60.0  # seconds into the minute
  n = g.counts.astype(np.float64)
  sx, sv, sxx, sxv = g.total(x), g.total(v), g.total(x * x), g.total(x * v)
  var = sxx / n - (sx / n) ** 2
  with np.errstate(invalid="ignore", divide="ignore"):
    b = (sxv / n - sx / n * sv / n) / var * 60.0 * slope_scale
  enough = g.counts >= max(min_samples, 2)
  return g.frame({level: np.where(enough, sv / n, np.nan),
                  slope: np.where(enough & (var > _TINY), b, np.nan)})


def altim_std_from_altitude(t_s: np.ndarray, altitude_m: np.ndarray) -> pd.DataFrame:
  """Within-minute standard deviation of altitude samples, m (>= 2 samples)."""
  v = np.asarray(altitude_m, np.float64)
  keep = np.isfinite(v)
  if not keep.any():
    return _empty(["altim_std"])
  g = _Groups.of(np.asarray(t_s)[keep])
  n = g.counts.astype(np.float64)
  s1, s2 = g.total(v[keep]), g.total(v[keep] ** 2)
  std = np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 0.0))
  return g.frame({"altim_std": np.where(g.counts >= 2, std, np.nan)})


@dataclasses.dataclass
class Spread:
  """A cumulative counter turned into per-minute increments (see `spread_counter`)."""

  per_minute: pd.Series     # increment per fully covered minute, indexed by minute
  used: np.ndarray          # per event: ends a valid interval that reached a minute
  baseline: np.ndarray      # per event: starts a run (first, after a reset or a gap)


def spread_counter(t_s: np.ndarray, cumulative: np.ndarray, *,
                   max_gap_s: float) -> Spread:
  """Per-minute increments of a cumulative counter sampled at irregular events.

  The interval between consecutive events is valid when the counter did not go down
  (a reset) and the events are at most max_gap_s apart; its increase is spread
  evenly over it. A minute gets a value only if valid intervals cover all of it,
  because an edge minute's share outside the events is unknown.
  """
  t = np.asarray(t_s, np.float64)
  c = np.asarray(cumulative, np.float64)
  if len(t) and np.any(np.diff(t) < 0):
    raise ValueError("spread_counter needs events in time order")
  dt_s = np.diff(t)
  inc = np.diff(c)
  valid = (inc >= 0) & (dt_s <= max_gap_s) & (dt_s > 0)
  baseline = np.concatenate([[True], ~valid]) if len(t) else np.zeros(0, bool)
  if not valid.any():
    return Spread(pd.Series([], dtype=np.float64, index=pd.Index([], dtype=np.int64,
                                                                  name="minute")),
                  np.zeros(len(t), bool), baseline)
  total = np.concatenate([[0.0], np.cumsum(np.where(valid, inc, 0.0))])
  covered = np.concatenate([[0.0], np.cumsum(np.where(valid, dt_s, 0.0))])
  first, last = minute_of(t[0]), minute_of(t[-1])
  edges = np.arange(first, last + 2, dtype=np.int64)
  at = edges * 60.0
  f_total = np.interp(at, t, total)
  f_cover = np.interp(at, t, covered)
  minutes = edges[:-1]
  full = np.diff(f_cover) >= 60.0 - 1e-6
  per_minute = pd.Series(np.diff(f_total)[full], index=pd.Index(minutes[full],
                                                                name="minute"))
  # An interval reached a produced minute if it overlaps one of the full minutes.
  # Minutes an interval overlaps: from floor(start) to ceil(end) - 1 (an interval
  # ending exactly on a minute boundary does not touch the next minute).
  start_min = minute_of(t[:-1])
  end_min = np.ceil(t[1:] / 60.0).astype(np.int64) - 1
  full_cum = np.concatenate([[0], np.cumsum(full)])
  lo = np.clip(start_min - first, 0, len(full))
  hi = np.clip(end_min - first + 1, 0, len(full))
  reaches = valid & (full_cum[hi] - full_cum[lo] > 0)
  used = np.concatenate([[False], reaches]) | np.concatenate([reaches, [False]])
  return Spread(per_minute, used, baseline)


def altim_std_from_ascent(spread: Spread) -> pd.DataFrame:
  """altim_std of a steady climb of the minute's ascent d: d / sqrt(12), m."""
  return pd.DataFrame({"altim_std": spread.per_minute.to_numpy() / np.sqrt(12.0)},
                      index=spread.per_minute.index)


# ------------------------------------------------------------------------ output

def to_readings(subject_id: str, frame: pd.DataFrame) -> pd.DataFrame:
  """Per-minute frame (index minute) to canonical long readings, dropping NaN."""
  if frame.empty:
    from pipeline.sources.common import empty_readings
    return empty_readings()
  values = frame.to_numpy(np.float64)
  rows, cols = np.nonzero(np.isfinite(values))
  minutes = frame.index.to_numpy(np.int64)[rows]
  return pd.DataFrame({
      "subject_id": np.full(len(rows), subject_id, dtype=object),
      "timestamp": pd.to_datetime(minutes * 60, unit="s", utc=True).as_unit("ns"),
      "feature": np.asarray(frame.columns, dtype=object)[cols],
      "value": values[rows, cols],
  })
