"""Shared fixtures: the excerpts of real recordings in tests/data (README there)."""

import pathlib

import pytest

DATA = pathlib.Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def data_dir() -> pathlib.Path:
  return DATA


@pytest.fixture
def write(tmp_path):
  """Writes a small file under tmp_path and returns its path as str."""
  def _write(name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)
  return _write


def write_takeout_export(folder, *, first_day: str = "2026-10-29", days: int = 7,
                         tz: str = "America/New_York", hr_every_s: int = 5,
                         overlap_min: int = 10):
  """Writes a synthetic Google Takeout Fitbit export (Fitbit's pretty-printed style):
  heart_rate-, steps- and altitude-YYYY-MM-DD.json for `days` local days from
  `first_day`, in local wall-clock time of `tz` (a fall-back hour is listed twice,
  oldest first; a spring-forward hour is absent, as a device clock writes them). Each
  day file runs `overlap_min` minutes into the next day, so those records are
  repeated in the next day's file (duplicates). Values are functions of the UTC
  instant, so a repeat carries the same value; every 97th heart-rate sample has
  confidence 0.

  Returns the truth, one row per distinct record: kind ('heart_rate', 'steps',
  'altitude'), utc (datetime64[ns, UTC]), value (float64), confidence (int; 3 for
  steps and altitude) and copies (1, or 2 for a record written in two files).
  """
  import json
  import numpy as np
  import pandas as pd
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  truth = []
  for day in pd.date_range(first_day, periods=days, freq="D"):
    start = day.tz_localize(tz)
    end = (day + pd.Timedelta(days=1)).tz_localize(tz) + pd.Timedelta(minutes=overlap_min)
    name = day.strftime("%Y-%m-%d")
    for kind, every in (("heart_rate", f"{hr_every_s}s"), ("steps", "1min"),
                        ("altitude", "1min")):
      utc = pd.date_range(start, end, freq=every, inclusive="left").tz_convert("UTC")
      t = utc.as_unit("s").asi8
      if kind == "heart_rate":
        value = 55 + (t // 300) % 50 + (t // hr_every_s) % 7
        confidence = np.where((t // hr_every_s) % 97 == 0, 0, 1 + (t // hr_every_s) % 3)
        records = [{"dateTime": w, "value": {"bpm": int(v), "confidence": int(c)}}
                   for w, v, c in zip(utc.tz_convert(tz).strftime("%m/%d/%y %H:%M:%S"),
                                      value, confidence)]
      else:
        minute = t // 60
        value = ((minute * 37) % 120) * ((minute % 60) < 30)
        if kind == "altitude":
          keep = minute % 45 == 0
          utc, t, value = utc[keep], t[keep], (value[keep] > 0) * 10
        confidence = np.full(len(t), 3)
        records = [{"dateTime": w, "value": str(int(v))}
                   for w, v in zip(utc.tz_convert(tz).strftime("%m/%d/%y %H:%M:%S"), value)]
      (folder / f"{kind}-{name}.json").write_text(
          json.dumps(records, indent=2, separators=(",", " : ")))
      truth.append(pd.DataFrame({"kind": kind, "utc": utc,
                                 "value": value.astype(np.float64),
                                 "confidence": confidence}))
  out = pd.concat(truth, ignore_index=True)
  copies = out.groupby(["kind", "utc"])["value"].transform("size")
  return out.assign(copies=copies).drop_duplicates(["kind", "utc"], ignore_index=True)


@pytest.fixture
def takeout_export():
  """write_takeout_export, for tests (benchmarks import it from this file)."""
  return write_takeout_export
