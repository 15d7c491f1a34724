"""Per-subject, minute-level synthetic physiology for the 26 LSM features.

One subject is generated from (seed, index) alone, so it is identical whether it is
generated alone, in a batch or on another worker. Everything is vectorised over
minutes; the only Python loops run over days and scheduled events (tens per subject),
which keeps a 7-day subject at a few milliseconds.

The model is deliberately mechanistic rather than statistical: an activity schedule
(sleep, sedentary, light bouts, exercise sessions) drives latent drives (effort,
cadence, wrist motion, posture, stress), and every sensor is a function of those
drives plus subject traits and noise. That is what gives the data its cross-sensor
coupling (HR follows effort with a lag, HRV falls as HR rises, EDA rises with stress
and sweat) and lets exercise classes differ in their joint signature, not in any one
feature alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import signal

from schemas.constants import ACTIVITY_CLASSES
from schemas.features import FEATURE_INDEX, FEATURES, HRV_GOOD_THRESHOLD

MINUTES_PER_DAY = 1440
SUBSAMPLES_PER_MINUTE = 4      # sub-minute HR every 15 s for some subjects
FIRST_DAY = np.datetime64("2024-03-04")   # a Monday; subjects start 0-6 days later

# Minute states (not features): the schedule every drive is built from.
SLEEP, SEDENTARY, LIGHT, EXERCISE = 0, 1, 2, 3

# Device models and the sensor groups they lack (real fleets mix generations).
DEVICE_MODELS = ("sense2", "charge6", "inspire3")
DEVICE_SHARES = (0.55, 0.3, 0.15)
DEVICE_MISSING_GROUPS = {"sense2": (), "charge6": ("EDA", "ALTIMETER"),
                         "inspire3": ("EDA", "ALTIMETER", "TEMP")}

# Home UTC offsets in minutes (fixed per subject; no daylight-saving changes).
TZ_OFFSETS = (-480, -420, -360, -300, -240, 0, 60, 120, 330, 480, 540, 600)

GROUP_COLUMNS = {g: np.array([f.group == g for f in FEATURES]) for g in
                 ("PPG", "EDA", "ACCEL", "ALTIMETER", "TEMP")}
HRV_COLUMNS = np.array([f.hrv_gated for f in FEATURES])

# Decimals each feature is reported with (device resolution). Keeps files small and
# makes every value's shortest decimal form parse back to the same float32.
DECIMALS = {"HR": 1, "eda_level_real": 3, "leads_contact_counts": 0, "steps": 0,
            "jerk_auto": 0, "log_energy": 0, "covariance": 0, "log_energy_ratio": 0,
            "zero_crossing_std": 0, "zero_crossing_avg": 0, "axis_mean": 0,
            "altim_std": 4, "kurtosis": 0, "sleep_coefficient": 1,
            "wrist_temperatures": 2, "hrv_shannon_entropy_rr": 3,
            "hrv_shannon_entropy_rrd": 3, "ceda_slope_real_micro_siemens": 3,
            "rmssd_percentile_0595": 1, "sdnn_percentile_0595": 1,
            "hrv_percent_good": 2, "hrv_rr_80th_percentile_mean": 0,
            "hrv_rr_20th_percentile_mean": 0, "hrv_rr_median": 0,
            "hr_at_rest_mean": 1, "skin_temperature_slope": 2}

# Measurement noise: the std (feature units) of the white Gaussian term that
# _physiology adds to one observed feature and to nothing else, so that no other
# feature, minute or drive carries it (hrv_percent_good's term is scaled by the
# stillness factor, (1 - motion)**2, before the clip to 0..1). HR's is the 15-s
# samples' (SUB_MINUTE_HR_NOISE, sub-minute subjects only). generate_subject(...,
# noise_free=True) leaves these out (its docstring says what counts as signal).
MEASUREMENT_NOISE = {
    "hrv_rr_80th_percentile_mean": 6, "hrv_rr_20th_percentile_mean": 6,
    "hrv_shannon_entropy_rr": 0.2, "hrv_shannon_entropy_rrd": 0.2,
    "hrv_percent_good": 0.13, "hr_at_rest_mean": 0.6,
    "ceda_slope_real_micro_siemens": 1.1, "leads_contact_counts": 20,
    "log_energy": 14, "jerk_auto": 15, "covariance": 8, "log_energy_ratio": 10,
    "zero_crossing_std": 15, "zero_crossing_avg": 12, "axis_mean": 5, "kurtosis": 30,
    "sleep_coefficient": 1.3}
SUB_MINUTE_HR_NOISE = 2.0   # bpm, each 15-s sample; the minute's mean has half of it
# Per-minute white terms shared by several features (std; relative for rr and cadence,
# of log rmssd): signal to noise_free, since another feature of the same minute carries
# them; smooth=True leaves them out too, with the other per-minute draws shared by
# features (effort jitter at its median, fidget steps and altimeter climbs and blips at
# theirs, 0).
SHARED_NOISE = {"motion": 0.04, "hr": 1.2, "rmssd_log": 0.18, "sdnn": 5, "rr": 0.01,
                "cadence": 0.08, "wrist_temperature": 0.08}


@dataclasses.dataclass(frozen=True)
class ActivityProfile:
  """The latent drives of one exercise class; classes overlap on purpose.

  effort: fraction of heart-rate reserve. cadence: steps/min. motion: wrist movement
  0..1. regularity: periodicity of the movement. vibration: high-frequency share.
  climb: altimeter activity. posture: wrist orientation (axis_mean). on/off: interval
  structure in minutes (0 = continuous); off minutes use rest_scale of the drives.
  """
  duration: tuple[int, int]
  effort: float
  cadence: float
  motion: float
  regularity: float
  vibration: float
  climb: float
  posture: float
  on: int = 0
  off: int = 0
  rest_scale: float = 1.0


PROFILES = {
    "weightlifting": ActivityProfile((30, 75), 0.42, 6, 0.55, 0.20, 0.30, 0.0, 100,
                                     on=1, off=2, rest_scale=0.35),
    "swim": ActivityProfile((20, 60), 0.68, 3, 0.80, 0.60, 0.15, 0.0, 140),
    "elliptical": ActivityProfile((20, 50), 0.60, 125, 0.50, 0.92, 0.35, 0.0, 118),
    "walk": ActivityProfile((25, 75), 0.34, 108, 0.45, 0.80, 0.45, 0.04, 110),
    "run": ActivityProfile((20, 60), 0.78, 162, 0.90, 0.85, 0.65, 0.08, 106),
    "bike": ActivityProfile((30, 110), 0.62, 6, 0.25, 0.40, 0.90, 0.15, 150),
    "hiit": ActivityProfile((15, 35), 0.88, 125, 0.95, 0.30, 0.60, 0.01, 110,
                            on=1, off=1, rest_scale=0.40),
    "strength_training": ActivityProfile((25, 60), 0.50, 16, 0.50, 0.35, 0.40, 0.0, 96,
                                         on=2, off=1, rest_scale=0.45),
}
assert tuple(PROFILES) == ACTIVITY_CLASSES


@dataclasses.dataclass
class Subject:
  """One generated subject: per-minute values plus what produced them.

  values: float32 [T, 26], NaN = missing. hr_samples: float32 [T, 4] integer bpm at
  :00/:15/:30/:45 whose mean is values[:, HR] (None for 1-per-minute subjects).
  events: (start_minute, end_minute, activity, exercise) with end exclusive.
  """
  index: int
  subject_id: str
  traits: dict
  values: np.ndarray
  hr_samples: np.ndarray | None
  state: np.ndarray
  activity: np.ndarray
  events: list

  @property
  def num_minutes(self) -> int:
    return self.values.shape[0]

  @property
  def tz_offset_minutes(self) -> int:
    return self.traits["tz_offset_minutes"]

  @property
  def start_date(self) -> np.datetime64:
    return np.datetime64(self.traits["start_date"])


def subject_id(seed: int, index: int) -> str:
  return f"synth-{seed}-{index:06d}"


def subject_rng(seed: int, index: int) -> np.random.Generator:
  """The one source of randomness for a subject: depends on (seed, index) only."""
  return np.random.default_rng([seed, index])


def draw_traits(rng: np.random.Generator) -> dict:
  """Stable per-subject traits that shift every signal."""
  age = float(rng.uniform(18, 80))
  female = bool(rng.random() < 0.5)
  fitness = float(np.clip(rng.beta(2.2, 2.2) - 0.005 * (age - 45), 0.02, 0.98))
  rhr = float(np.clip(71 - 16 * (fitness - 0.5) + 3 * female + rng.normal(0, 5), 46, 98))
  rmssd = float(np.exp(rng.normal(np.log(31) - 0.013 * (age - 45) + 0.4 * (fitness - 0.5),
                                   0.3)))
  device = str(rng.choice(DEVICE_MODELS, p=DEVICE_SHARES))
  preference = rng.dirichlet(np.full(len(ACTIVITY_CLASSES), 0.6))
  return {
      "age": round(age, 1), "sex": "female" if female else "male",
      "fitness": round(fitness, 3), "resting_hr": round(rhr, 1),
      "hr_max": round(208 - 0.7 * age, 1), "rmssd_level": round(rmssd, 1),
      "eda_level": round(float(np.exp(rng.normal(np.log(3.0), 0.55))), 2),
      "chronotype_minutes": int(rng.normal(0, 50)),
      "device_model": device,
      "tz_offset_minutes": int(rng.choice(TZ_OFFSETS)),
      "start_date": str(FIRST_DAY + int(rng.integers(0, 7))),
      "sub_minute_hr": bool(rng.random() < 0.25),
      "exercise_per_day": round(0.3 + 0.6 * fitness, 3),
      "fit_quality": round(float(rng.uniform(0.5, 1.3)), 3),   # band fit: beat quality
      "long_removal_per_day": round(float(rng.uniform(0.0, 0.6)), 3),
      "activity_preference": [round(float(p), 4) for p in preference],
  }


class _Schedule:
  """Per-minute latent drives, filled by interval, plus the labelled events."""

  def __init__(self, minutes: int):
    self.state = np.full(minutes, SEDENTARY, np.int8)
    self.activity = np.full(minutes, -1, np.int8)
    self.effort = np.full(minutes, 0.05)
    self.cadence = np.zeros(minutes)
    self.motion = np.full(minutes, 0.10)
    self.regularity = np.full(minutes, 0.10)
    self.vibration = np.full(minutes, 0.20)
    self.climb = np.zeros(minutes)
    self.posture = np.full(minutes, 120.0)
    self.stress = np.zeros(minutes)
    self.water = np.full(minutes, np.nan)   # water temperature while swimming
    self.worn = np.ones(minutes, bool)
    self.busy = np.zeros(minutes, bool)     # holds an event already
    self.events: list[tuple[int, int, str, int]] = []

  def free(self, start: int, end: int) -> bool:
    return end > start and not self.busy[start:end].any()


def _place(sched: _Schedule, rng, lo: int, hi: int, length: int, tries: int = 6):
  """A free [start, end) of `length` inside [lo, hi), or None."""
  lo, hi = max(lo, 0), min(hi, len(sched.state))
  for _ in range(tries):
    if hi - lo <= length:
      return None
    start = int(rng.integers(lo, hi - length))
    if sched.free(start, start + length):
      return start, start + length
  return None


def _exercise(sched: _Schedule, rng, start: int, end: int, name: str, fitness: float):
  """Fills one session with its class profile, interval structure and jitter."""
  p = PROFILES[name]
  n = end - start
  # Sessions differ (an easy run, a brisk walk) and pace drifts within a session.
  jitter = lambda: 1 + rng.normal(0, 0.2)
  pace = 1 + _ar1(rng, n, 6, 0.1)
  effort = p.effort * jitter() * (1.1 - 0.2 * fitness) * pace
  cadence = p.cadence * jitter() * pace
  motion = p.motion * jitter() * pace
  if p.on:
    on, off = p.on + int(rng.integers(0, 2)), p.off + int(rng.integers(0, 2))
    phase = (np.arange(n) + int(rng.integers(0, on + off))) % (on + off)
    rest = phase >= on
    effort[rest] *= p.rest_scale
    cadence[rest] *= p.rest_scale
    motion[rest] *= p.rest_scale
  ramp = np.minimum(1.0, (np.arange(n) + 1) / 4.0)        # warm-up
  sl = slice(start, end)
  sched.state[sl] = EXERCISE
  sched.activity[sl] = ACTIVITY_CLASSES.index(name)
  sched.effort[sl] = effort * ramp
  sched.cadence[sl] = cadence * ramp
  sched.motion[sl] = np.clip(motion, 0, 1)
  sched.regularity[sl] = np.clip(p.regularity * jitter(), 0, 1)
  sched.vibration[sl] = np.clip(p.vibration * jitter(), 0, 1)
  sched.climb[sl] = p.climb * abs(jitter())
  sched.posture[sl] = p.posture + rng.normal(0, 12)
  if name == "swim":
    sched.water[sl] = rng.uniform(24, 31)      # pool or open water
  sched.busy[sl] = True
  sched.events.append((start, end, name, 1))


def _fill(sched: _Schedule, sl: slice, state: int, rng, label: str | None = None):
  """Non-exercise states: sleep, light bouts (walking about, commute)."""
  n = sl.stop - sl.start
  sched.state[sl] = state
  if state == SLEEP:
    sched.effort[sl] = 0.0
    sched.cadence[sl] = 0.0
    sched.motion[sl] = 0.02
    sched.regularity[sl] = 0.05
    sched.vibration[sl] = 0.05
    # Posture changes every ~70 min; brief turns with a little motion.
    turns = np.cumsum(rng.random(n) < 1 / 70)
    sched.posture[sl] = rng.normal(118, 35, turns[-1] + 1)[turns]
    sched.motion[sl] += 0.25 * (rng.random(n) < 0.03)
  elif state == LIGHT:
    sched.effort[sl] = 0.15 + 0.05 * rng.random()
    sched.cadence[sl] = rng.uniform(55, 100)
    sched.motion[sl] = 0.35
    sched.regularity[sl] = 0.55
    sched.vibration[sl] = 0.40
    sched.posture[sl] = 114
    if rng.random() < 0.3:       # stairs
      sched.climb[sl] = 0.05
  sched.busy[sl] = True
  if label:
    sched.events.append((sl.start, sl.stop, label, 0))


def _schedule(traits: dict, days: int, rng) -> _Schedule:
  """Sleep, exercise, reference events, light bouts, stress and wear, day by day."""
  minutes = days * MINUTES_PER_DAY
  sched = _Schedule(minutes)
  chrono = traits["chronotype_minutes"]
  weekday0 = int((np.datetime64(traits["start_date"]).astype(int) + 3) % 7)  # 0 = Monday
  prefs = np.array(traits["activity_preference"])
  prefs = prefs / prefs.sum()
  # Nights: night n ends on the morning of day n.
  for n in range(days + 1):
    weekend = (weekday0 + n) % 7 in (5, 6)
    onset = (n - 1) * MINUTES_PER_DAY + 23 * 60 + chrono + 40 * weekend + int(rng.normal(0, 30))
    wake = n * MINUTES_PER_DAY + 7 * 60 + chrono + 70 * weekend + int(rng.normal(0, 25))
    onset, wake = max(onset, 0), min(wake, minutes)
    if wake - onset > 60:
      _fill(sched, slice(onset, wake), SLEEP, rng, label="sleep")
      if rng.random() < 0.07:    # a night without the device
        sched.worn[onset:wake] = False
  for d in range(days):
    base = d * MINUTES_PER_DAY
    weekend = (weekday0 + d) % 7 in (5, 6)
    day_lo, day_hi = base + 7 * 60 + chrono, base + 22 * 60 + chrono
    sessions = rng.poisson(traits["exercise_per_day"] * (1.4 if weekend else 1.0))
    for _ in range(min(sessions, 2)):
      name = ACTIVITY_CLASSES[int(rng.choice(len(prefs), p=prefs))]
      lo, hi = PROFILES[name].duration
      slot = _place(sched, rng, day_lo + 30, day_hi, int(rng.integers(lo, hi + 1)))
      if slot:
        _exercise(sched, rng, *slot, name, traits["fitness"])
    if not weekend:
      for lo, hi in ((day_lo + 45, day_lo + 120), (base + 16 * 60 + 30, base + 18 * 60 + 30)):
        slot = _place(sched, rng, lo, hi, int(rng.integers(12, 35)))
        if slot:
          _fill(sched, slice(*slot), LIGHT, rng, label="commute")
    slot = _place(sched, rng, day_lo + 60, day_hi - 60, int(rng.integers(60, 150)))
    if slot:
      sched.busy[slot[0]:slot[1]] = True
      sched.events.append((slot[0], slot[1], "sedentary", 0))
    for _ in range(rng.poisson(9)):
      slot = _place(sched, rng, day_lo, day_hi, int(rng.integers(3, 20)), tries=2)
      if slot:
        _fill(sched, slice(*slot), LIGHT, rng)
    for _ in range(rng.poisson(2)):          # stress: EDA and HR respond
      start = int(rng.integers(day_lo, day_hi))
      sched.stress[start:start + int(rng.integers(10, 45))] = rng.uniform(0.5, 1.0)
    # Off wrist: charging most days, a morning removal (shower) on some, and on some
    # days the device is left on the desk for hours. Exercise is always recorded.
    removals = [(0.65, day_lo, day_hi, 30, 110), (0.5, day_lo, day_lo + 90, 10, 30),
                (traits["long_removal_per_day"], day_lo, day_hi, 120, 420)]
    for p, lo, hi, shortest, longest in removals:
      if rng.random() < p:
        start = int(rng.integers(lo, hi))
        end = min(start + int(rng.integers(shortest, longest)), minutes)
        sched.worn[start:end] &= sched.state[start:end] == EXERCISE
  sched.events.sort()
  return sched


def _noise(rng, n: int, sigma: float) -> np.ndarray:
  """Gaussian noise; float32 draws are twice as fast and ample for sensor noise."""
  return sigma * rng.standard_normal(n, dtype=np.float32)


def _lag(x: np.ndarray, tau: float) -> np.ndarray:
  """First-order lag (minutes): the body's response to a drive, causal."""
  a = np.exp(-1.0 / tau)
  return signal.lfilter([1 - a], [1, -a], x, zi=[a * x[0]])[0]


def _ar1(rng, n: int, tau: float, sigma: float) -> np.ndarray:
  """Stationary AR(1) noise with correlation time tau minutes and std sigma."""
  a = np.exp(-1.0 / tau)
  w = _noise(rng, n, sigma * np.sqrt(1 - a * a))
  return signal.lfilter([1.0], [1, -a], w, zi=[rng.normal(0, sigma) * a])[0]


def _physiology(traits: dict, sched: _Schedule, rng, noise_scale: float = 1.0,
                shared_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """All 26 features (before missingness) and the continuous HR, from the drives.

  noise_scale multiplies every MEASUREMENT_NOISE term, shared_scale every
  SHARED_NOISE one and the other shared per-minute draws (0: left out, at their
  median); the terms are drawn either way, so the random stream and every other value
  stay the same (a scale of 1 multiplies by 1.0 or not at all: the same bytes).
  """
  n = len(sched.state)
  noise = lambda name: _noise(rng, n, MEASUREMENT_NOISE[name] * noise_scale)
  shared = lambda name: _noise(rng, n, SHARED_NOISE[name] * shared_scale)
  t = np.arange(n)
  tod = (t % MINUTES_PER_DAY) / MINUTES_PER_DAY
  sleep = sched.state == SLEEP
  jitter = rng.random(n)
  effort = sched.effort + 0.04 * (jitter if shared_scale else 0.5) * ~sleep
  # Waking wrist motion wanders (typing, gesturing, chores) around the schedule's level.
  awake_idle = (sched.state == SEDENTARY) | (sched.state == LIGHT)
  motion = sched.motion + awake_idle * np.abs(_ar1(rng, n, 3, 0.15)) + shared("motion")
  motion = np.clip(motion, 0, 1)
  stress = _lag(sched.stress, 4)
  out = np.empty((n, len(FEATURES)))
  col = FEATURE_INDEX

  # Heart rate: fast rise, slower recovery (two lags), circadian dip, stress.
  rhr, reserve = traits["resting_hr"], traits["hr_max"] - traits["resting_hr"]
  circadian = -3.5 * np.cos(2 * np.pi * (tod - 4 / 24))
  drive = reserve * effort
  hr = (rhr + 9 * ~sleep - 4 * sleep + circadian + 0.65 * _lag(drive, 1.2)
        + 0.35 * _lag(drive, 7) + 9 * stress + _ar1(rng, n, 5, 2.5) + shared("hr"))
  hr = np.clip(hr, 35, 215)
  out[:, col["HR"]] = hr

  # HRV: falls as HR rises; higher in sleep. Beat quality falls with motion.
  rmssd = traits["rmssd_level"] * np.exp(-0.03 * (hr - rhr)) * (1 + 0.25 * sleep)
  rmssd = np.clip(rmssd * np.exp(shared("rmssd_log")), 4, 125)
  sdnn = np.clip(1.2 * rmssd + 8 + shared("sdnn"), 5, 125)
  rr = 60000.0 / hr * (1 + shared("rr"))
  out[:, col["rmssd_percentile_0595"]] = rmssd
  out[:, col["sdnn_percentile_0595"]] = sdnn
  out[:, col["hrv_rr_median"]] = rr
  out[:, col["hrv_rr_80th_percentile_mean"]] = (rr + 1.0 * sdnn
                                                + noise("hrv_rr_80th_percentile_mean"))
  out[:, col["hrv_rr_20th_percentile_mean"]] = (rr - 0.95 * sdnn
                                                + noise("hrv_rr_20th_percentile_mean"))
  out[:, col["hrv_shannon_entropy_rr"]] = 2.6 + 0.014 * sdnn + noise("hrv_shannon_entropy_rr")
  out[:, col["hrv_shannon_entropy_rrd"]] = (2.4 + 0.017 * rmssd
                                            + noise("hrv_shannon_entropy_rrd"))
  quality = np.select([sleep, sched.state == SEDENTARY], [0.45, 0.30], 0.08)
  # Motion corrupts beats: quality and its spread both collapse while moving.
  still = (1 - motion) ** 2
  pg = still * (quality * traits["fit_quality"] + noise("hrv_percent_good")
                + _ar1(rng, n, 20, 0.08))
  out[:, col["hrv_percent_good"]] = np.clip(pg, 0, 1)
  rest_hr = _lag(hr, 30) + 3 + noise("hr_at_rest_mean")
  out[:, col["hr_at_rest_mean"]] = rest_hr

  # EDA: subject baseline, stress and sweat (lagged effort), sleep storms.
  storms = sleep * (_ar1(rng, n, 15, 1.0) > 1.3)
  eda = traits["eda_level"] * (1 + 1.6 * stress + 1.2 * _lag(effort, 10) + 0.8 * storms)
  eda = np.clip(eda * np.exp(_ar1(rng, n, 30, 0.25)), 0.05, 60)
  out[:, col["eda_level_real"]] = eda
  slope = (3.2 + 4 * np.diff(eda, prepend=eda[0]) + _ar1(rng, n, 10, 0.8)
           + noise("ceda_slope_real_micro_siemens"))
  out[:, col["ceda_slope_real_micro_siemens"]] = np.clip(slope, -5, 5)
  out[:, col["leads_contact_counts"]] = np.clip(
      245 - 80 * motion + _ar1(rng, n, 60, 30) + noise("leads_contact_counts"), 0, 600)

  # Accelerometer summaries (8-bit device units) from motion, cadence and rhythm.
  cadence = np.where(sched.cadence > 0, sched.cadence * (1 + shared("cadence")), 0)
  fidget = (sched.state == SEDENTARY) * rng.poisson(1.2, n) * (rng.random(n) < 0.25)
  fidget = fidget * shared_scale
  out[:, col["steps"]] = np.clip(np.round(cadence + fidget), 0, 250)
  reg, vib = sched.regularity, sched.vibration
  out[:, col["log_energy"]] = 20 + 190 * motion + 30 * vib * motion + noise("log_energy")
  out[:, col["jerk_auto"]] = (232 - 150 * motion * (1 - reg) - 30 * vib * motion
                              + noise("jerk_auto"))
  out[:, col["covariance"]] = 36 + 40 * motion * (0.5 + reg) + noise("covariance")
  out[:, col["log_energy_ratio"]] = (26 + 110 * vib * motion + 20 * motion
                                     + noise("log_energy_ratio"))
  out[:, col["zero_crossing_std"]] = (176 - 140 * motion * reg - 30 * vib * motion
                                      + noise("zero_crossing_std"))
  out[:, col["zero_crossing_avg"]] = (25 + 0.45 * cadence + 90 * vib * motion + 40 * motion
                                      + noise("zero_crossing_avg"))
  out[:, col["axis_mean"]] = sched.posture + _ar1(rng, n, 20, 10) + noise("axis_mean")
  out[:, col["kurtosis"]] = (125 - 160 * motion * reg + 60 * motion * (1 - reg)
                             + _ar1(rng, n, 10, 25) + noise("kurtosis"))
  out[:, col["sleep_coefficient"]] = np.where(
      sleep, 13.5 - 20 * motion, 6.8 - 5 * motion) + noise("sleep_coefficient")
  climb = sched.climb * rng.exponential(1.0, n) * (rng.random(n) < 0.5) * shared_scale
  blip = (rng.random(n) < 0.004) * rng.exponential(0.5, n) * shared_scale
  out[:, col["altim_std"]] = climb + blip

  # Wrist temperature: warm in sleep, cooler with effort, water cools it hard.
  ambient = _ar1(rng, n, 90, 1.6)
  target = np.where(sleep, 33.8, 30.6) + ambient - 1.5 * _lag(effort, 8)
  target = np.where(np.isnan(sched.water), target, sched.water)
  temp = _lag(target, 12)
  measured = temp + shared("wrist_temperature")
  out[:, col["wrist_temperatures"]] = np.minimum(measured, 41)
  out[:, col["skin_temperature_slope"]] = 0.27 + 100 * np.diff(measured, prepend=measured[0])
  return out, hr


def _missing(traits: dict, sched: _Schedule, values: np.ndarray, rng) -> np.ndarray:
  """Presence mask [T, 26] as wrist devices produce it."""
  n = len(sched.state)
  present = np.repeat(sched.worn[:, None], len(FEATURES), axis=1)
  for group in DEVICE_MISSING_GROUPS[traits["device_model"]]:
    present[:, GROUP_COLUMNS[group]] = False
  # Short dropouts per sensor group (BLE sync gaps, sensor resets).
  for group, rate in (("PPG", 0.008), ("EDA", 0.006), ("ACCEL", 0.003), ("TEMP", 0.003),
                      ("ALTIMETER", 0.005)):
    starts = np.flatnonzero(rng.random(n) < rate)
    if starts.size:
      gap = np.zeros(n + 40, np.int32)
      np.add.at(gap, starts, 1)
      np.add.at(gap, starts + rng.integers(1, 30, starts.size), -1)
      present[np.ix_(np.cumsum(gap[:n]) > 0, GROUP_COLUMNS[group])] = False
  lost = rng.integers(0, present.size, rng.binomial(present.size, 0.02))
  present.ravel()[lost] = False                         # isolated sample loss
  # Water: the EDA electrodes lose contact and optical HR drops out often.
  wet_rows = np.flatnonzero(~np.isnan(sched.water))
  present[np.ix_(wet_rows, GROUP_COLUMNS["EDA"])] = False
  present[wet_rows[rng.random(wet_rows.size) < 0.3], FEATURE_INDEX["HR"]] = False
  # HRV only when enough beats are good (device rule) and percent_good exists.
  pg = values[:, FEATURE_INDEX["hrv_percent_good"]]
  good = present[:, FEATURE_INDEX["hrv_percent_good"]] & (pg >= HRV_GOOD_THRESHOLD)
  present[:, HRV_COLUMNS] &= good[:, None]
  # Resting HR is only estimated while at rest.
  at_rest = (sched.effort < 0.12) & (values[:, FEATURE_INDEX["steps"]] < 20)
  present[:, FEATURE_INDEX["hr_at_rest_mean"]] &= at_rest
  return present


def _quantise(values: np.ndarray) -> np.ndarray:
  """Rounds to device resolution and clips to each feature's clip range, as float32."""
  out = np.empty(values.shape, np.float32)
  for i, f in enumerate(FEATURES):
    lo, hi = f.clip_range
    out[:, i] = np.round(np.clip(values[:, i], lo, hi), DECIMALS[f.name])
  return out


def _clip_to_range(values: np.ndarray) -> np.ndarray:
  """Each feature clipped to its clip range, as float32, unrounded."""
  low, high = np.array([f.clip_range for f in FEATURES], np.float64).T
  return np.clip(values, low, high).astype(np.float32)


def generate_subject(seed: int, index: int, days: int, noise_free: bool = False,
                     smooth: bool = False) -> Subject:
  """Subject `index` of cohort `seed`: a pure function of (seed, index, days).

  noise_free=True: the same subject's signal without its measurement noise, every
  minute present (values float32 [T, 26], no NaN; hr_samples None) and the same
  traits, schedule, events and drives. The signal is everything a sensor would
  report if it measured without error: the schedule, the latent drives with their
  per-minute jitter (effort, wrist motion, cadence), the AR(1) dynamics and lags of
  the physiology, and the per-minute terms shared by several features (HR's beat-
  to-beat term, which rmssd, RR and resting HR follow; rmssd's, which sdnn and the
  entropies inherit; RR's, in three RR features; wrist temperature's, which the skin
  temperature slope differentiates) as well as sedentary fidget steps and altimeter
  climbs. The measurement noise is what no other feature or minute carries: the
  white terms of MEASUREMENT_NOISE, the 15-s HR samples' noise (sub-minute subjects)
  and the rounding to device resolution (DECIMALS). Every draw of the noisy run up to
  the physiology is made (the noise terms are drawn and scaled by 0), so the signal
  is that of the noisy subject exactly; the draws after it (missingness, HR samples)
  only make noise and are skipped. Treating shared terms as signal makes the
  noise-free values the best prediction any method could make of an observed value
  (up to the features' clips and the device rules that decide presence from noisy
  values, e.g. HRV from hrv_percent_good): a lower bound on its error.

  smooth=True (with noise_free) also leaves out the per-minute terms shared by
  several features (SHARED_NOISE and the draws named there, at their medians): what
  is left varies no faster than the drives and their lags. Where every feature of a
  minute is hidden (interpolation, extrapolation) nothing reveals those terms, so
  these values approximate the best prediction there (approximately: a term that
  enters a lag also reaches later minutes); where other features of the minute are
  visible they are no bound. Raises ValueError for smooth without noise_free.
  """
  if days < 1:
    raise ValueError(f"days must be >= 1, got {days}")
  if smooth and not noise_free:
    raise ValueError("smooth=True leaves out shared per-minute terms on top of the "
                     "measurement noise: it needs noise_free=True")
  rng = subject_rng(seed, index)
  traits = draw_traits(rng)
  sched = _schedule(traits, days, rng)
  raw, hr = _physiology(traits, sched, rng, noise_scale=0.0 if noise_free else 1.0,
                        shared_scale=0.0 if smooth else 1.0)
  if noise_free:
    return Subject(index=index, subject_id=subject_id(seed, index), traits=traits,
                   values=_clip_to_range(raw), hr_samples=None, state=sched.state,
                   activity=sched.activity, events=sched.events)
  present = _missing(traits, sched, raw, rng)
  values = _quantise(raw)
  hr_samples = None
  if traits["sub_minute_hr"]:
    # Integer bpm every 15 s around the continuous HR; the minute value is their mean,
    # exactly (multiples of 0.25 are exact in binary).
    samples = np.round(hr[:, None] + rng.normal(0, SUB_MINUTE_HR_NOISE,
                                                (len(hr), SUBSAMPLES_PER_MINUTE)))
    samples = np.clip(samples, *FEATURES[FEATURE_INDEX["HR"]].clip_range)
    values[:, FEATURE_INDEX["HR"]] = samples.mean(axis=1)
    hr_samples = samples.astype(np.float32)
    hr_samples[~present[:, FEATURE_INDEX["HR"]]] = np.nan
  values[~present] = np.nan
  return Subject(index=index, subject_id=subject_id(seed, index), traits=traits,
                 values=values, hr_samples=hr_samples, state=sched.state,
                 activity=sched.activity, events=sched.events)
