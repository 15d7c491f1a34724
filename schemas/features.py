"""The 26 LSM features: the one table that pipeline, synthetic data and trainer read.

Order, names and population statistics follow LSM (Narayanswamy et al., ICLR 2025).
Everything else that describes a feature (TFMD schema, aliases, aggregation, clipping)
is derived from this table so that there is never a second copy to drift.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

SENSOR_GROUPS = ("PPG", "EDA", "ACCEL", "ALTIMETER", "TEMP")

# How sub-minute samples of one feature are reduced to one per-minute value.
AGGREGATIONS = ("mean", "sum", "max", "median")


@dataclasses.dataclass(frozen=True)
class Feature:
  """One per-minute feature.

  valid_range: physically possible values; anything outside is treated as a
    device fault (set missing and counted), never clipped into range.
  clip_range: plausible range LSM clips to before normalisation (e.g. EDA 0..60 uS).
  hrv_gated: set missing when hrv_percent_good < HRV_GOOD_THRESHOLD (device rule).
  """

  name: str
  group: str
  unit: str
  valid_range: tuple[float, float]
  clip_range: tuple[float, float]
  aggregation: str
  aliases: tuple[str, ...]
  population_mean: float
  population_std: float
  hrv_gated: bool = False
  description: str = ""


# 8-bit quantised accelerometer summaries reported by the device firmware.
_ACC_RANGE = (0.0, 255.0)

FEATURES: tuple[Feature, ...] = (
    Feature("HR", "PPG", "beats/min", (20, 250), (30, 220), "mean",
            ("heart_rate", "heartrate", "hr", "bpm", "heart_rate_bpm", "pulse"),
            81.77, 14.07, description="heart rate, 1 Hz samples averaged to 1 min"),
    Feature("eda_level_real", "EDA", "uS", (0, 100), (0, 60), "mean",
            ("eda", "eda_level", "gsr", "skin_conductance", "scl"),
            4.61, 4.04, description="electrodermal activity (skin conductance level)"),
    Feature("leads_contact_counts", "EDA", "count/min", (0, 600), (0, 600), "sum",
            ("leads_contact", "contact_counts", "eda_contact_counts"),
            232.1, 47.45, description="EDA electrode contact count"),
    Feature("steps", "ACCEL", "steps/min", (0, 300), (0, 255), "sum",
            ("step_count", "step", "stepcount", "steps_per_minute", "step_counts"),
            8.04, 18.62, description="steps per minute (heavy tailed)"),
    Feature("jerk_auto", "ACCEL", "device units", _ACC_RANGE, _ACC_RANGE, "mean",
            ("jerk",), 202.1, 35.15, description="autocorrelation of jerk"),
    Feature("log_energy", "ACCEL", "device units", _ACC_RANGE, _ACC_RANGE, "mean",
            ("energy", "accel_log_energy"), 57.68, 43.51,
            description="log energy of acceleration magnitude"),
    Feature("covariance", "ACCEL", "device units", _ACC_RANGE, _ACC_RANGE, "mean",
            ("accel_covariance",), 44.44, 12.93,
            description="covariance between accelerometer axes"),
    Feature("log_energy_ratio", "ACCEL", "device units", _ACC_RANGE, _ACC_RANGE, "mean",
            ("energy_ratio",), 43.87, 22.12,
            description="ratio of high- to low-band log energy"),
    Feature("zero_crossing_std", "ACCEL", "device units", _ACC_RANGE, _ACC_RANGE, "mean",
            ("zcr_std",), 159.6, 28.98,
            description="spread of zero-crossing intervals"),
    Feature("zero_crossing_avg", "ACCEL", "device units", _ACC_RANGE, _ACC_RANGE, "mean",
            ("zcr_avg", "zero_crossing_rate"), 50.14, 35.18,
            description="mean zero-crossing rate"),
    Feature("axis_mean", "ACCEL", "device units", _ACC_RANGE, _ACC_RANGE, "mean",
            ("accel_axis_mean",), 117.6, 26.15, description="mean over axes"),
    Feature("altim_std", "ALTIMETER", "m", (0, 50), (0, 10), "mean",
            ("altimeter_std", "altitude_std", "altim_variability"), 0.0037, 0.050,
            description="altimeter variability within the minute"),
    Feature("kurtosis", "ACCEL", "device units", _ACC_RANGE, _ACC_RANGE, "mean",
            ("accel_kurtosis",), 105.5, 61.87,
            description="kurtosis of acceleration magnitude"),
    Feature("sleep_coefficient", "ACCEL", "device units", _ACC_RANGE, _ACC_RANGE, "mean",
            ("sleep_coef", "sleep_score"), 8.61, 3.92,
            description="movement-based sleep likelihood"),
    Feature("wrist_temperatures", "TEMP", "degC", (15, 45), (20, 41), "mean",
            ("wrist_temperature", "wrist_temp", "skin_temperature", "skin_temp",
             "temperature", "temp"), 30.80, 2.90,
            description="wrist skin temperature, capped at 41 C"),
    Feature("hrv_shannon_entropy_rr", "PPG", "bits", (0, 10), (0, 10), "mean",
            ("shannon_entropy_rr", "entropy_rr"), 3.30, 0.46, hrv_gated=True,
            description="Shannon entropy of RR intervals"),
    Feature("hrv_shannon_entropy_rrd", "PPG", "bits", (0, 10), (0, 10), "mean",
            ("shannon_entropy_rrd", "entropy_rrd"), 2.98, 0.49, hrv_gated=True,
            description="Shannon entropy of successive RR differences"),
    Feature("ceda_slope_real_micro_siemens", "EDA", "uS/min", (-100, 100), (-5, 5),
            "mean", ("eda_slope", "ceda_slope"), 3.24, 1.82,
            description="slope of the EDA level, clipped to -5..5"),
    Feature("rmssd_percentile_0595", "PPG", "ms", (0, 500), (0, 125), "mean",
            ("rmssd",), 34.19, 23.78, hrv_gated=True,
            description="RMSSD of RR intervals (5-95th percentile trimmed), clipped at 125"),
    Feature("sdnn_percentile_0595", "PPG", "ms", (0, 500), (0, 125), "mean",
            ("sdnn",), 45.34, 24.39, hrv_gated=True,
            description="SDNN of RR intervals (5-95th percentile trimmed), clipped at 125"),
    Feature("hrv_percent_good", "PPG", "fraction", (0, 1), (0, 1), "mean",
            ("percent_good", "hrv_quality", "good_beat_fraction"), 0.27, 0.28,
            description="fraction of beats that passed artefact rejection"),
    Feature("hrv_rr_80th_percentile_mean", "PPG", "ms", (200, 2500), (250, 2000), "mean",
            ("rr_p80", "rr_80th_percentile"), 828.9, 108.4, hrv_gated=True,
            description="80th percentile of RR intervals"),
    Feature("hrv_rr_20th_percentile_mean", "PPG", "ms", (200, 2500), (250, 2000), "mean",
            ("rr_p20", "rr_20th_percentile"), 734.6, 88.41, hrv_gated=True,
            description="20th percentile of RR intervals"),
    Feature("hrv_rr_median", "PPG", "ms", (200, 2500), (250, 2000), "mean",
            ("rr_median", "ibi_median"), 780.9, 94.87, hrv_gated=True,
            description="median RR interval"),
    Feature("hr_at_rest_mean", "PPG", "beats/min", (20, 200), (30, 150), "mean",
            ("resting_heart_rate", "resting_hr", "rhr", "hr_at_rest"), 82.87, 10.87,
            description="heart rate at rest"),
    Feature("skin_temperature_slope", "TEMP", "device units", (-500, 500), (-100, 100),
            "mean", ("temperature_slope", "temp_slope", "skin_temp_slope"), 0.27, 17.27,
            description="slope of the wrist temperature"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
HRV_GOOD_THRESHOLD = 0.2
HRV_GOOD_FEATURE = "hrv_percent_good"


def normalise_alias(name: str) -> str:
  """Lower-case and collapse separators, so 'Heart Rate' and 'heart-rate' match."""
  return re.sub(r"[\s\-./]+", "_", name.strip().lower()).strip("_")


def _build_alias_table() -> dict[str, str]:
  table: dict[str, str] = {}
  for feature in FEATURES:
    for alias in (feature.name,) + feature.aliases:
      key = normalise_alias(alias)
      if table.get(key, feature.name) != feature.name:
        raise ValueError(f"alias {alias!r} maps to both {table[key]} and {feature.name}")
      table[key] = feature.name
  return table


ALIASES: Mapping[str, str] = _build_alias_table()


def canonical_name(name: str) -> str | None:
  """Maps a device export's column or feature name to an LSM name, None if unknown."""
  return ALIASES.get(normalise_alias(name))


def feature_array(attribute: str):
  """One attribute of every feature as a float64 array in LSM order (e.g. 'population_mean')."""
  import numpy as np
  return np.array([getattr(f, attribute) for f in FEATURES], dtype=np.float64)


def features_in_group(group: str) -> tuple[str, ...]:
  """Names of the group's features in LSM order; ValueError on an unknown group."""
  if group not in SENSOR_GROUPS:
    raise ValueError(f"unknown sensor group {group!r}; expected one of {SENSOR_GROUPS}")
  return tuple(f.name for f in FEATURES if f.group == group)
