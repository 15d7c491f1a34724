"""One PNG per subject-day of an imputed recording: observed and imputed spans marked."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import pyarrow as pa


def subject_days(table: pa.Table, features: list[str], folder: str) -> list[str]:
  """Writes FOLDER/<subject hash first 16>_<YYYY-MM-DD>.png (UTC days) for every
  subject-day of `table` (trainer.impute.subject_table's columns), one panel per
  feature in `features`: observed values black, imputed ones orange with the
  draws' spread as a band, imputed spans shaded. Returns the paths written."""
  os.makedirs(folder, exist_ok=True)
  paths = []
  minute = table["minute"].to_numpy().astype("datetime64[m]")
  subject = table["subject"].to_numpy(zero_copy_only=False)
  columns = {name: (table[name].to_numpy(),
                    table[f"{name}_status"].combine_chunks().indices.to_numpy(),
                    table[f"{name}_sd"].to_numpy()) for name in features}
  # Rows are sorted by (subject, minute): each subject-day is one slice.
  key = np.char.add(subject.astype(str), minute.astype("datetime64[D]").astype(str))
  bounds = np.flatnonzero(np.r_[True, key[1:] != key[:-1], True])
  for a, b in zip(bounds[:-1], bounds[1:]):
    day = {name: tuple(c[a:b] for c in cols) for name, cols in columns.items()}
    paths.append(_day_figure(day, minute[a:b], subject[a], folder))
  return paths


def _day_figure(columns: dict, minute: np.ndarray, subject: str, folder: str) -> str:
  """One subject-day: columns {feature: (value, status code, sd)} over `minute`."""
  from trainer.impute import IMPUTED, OBSERVED  # pylint: disable=g-import-not-at-top
  day = str(minute[0].astype("datetime64[D]"))
  fig, axes = plt.subplots(len(columns), 1, figsize=(12, 1.8 * len(columns) + 0.6),
                           sharex=True, squeeze=False)
  hours = (minute - minute.astype("datetime64[D]")).astype(np.float64) / 60
  for ax, (name, (value, status, sd)) in zip(axes[:, 0], columns.items()):
    imputed = status == IMPUTED
    ax.plot(hours, np.where(status == OBSERVED, value, np.nan), color="black", lw=0.8,
            label="observed")
    ax.plot(hours, np.where(imputed, value, np.nan), color="tab:orange", lw=1.0,
            label="imputed")
    ax.fill_between(hours, np.where(imputed, value - sd, np.nan),
                    np.where(imputed, value + sd, np.nan), color="tab:orange", alpha=0.25,
                    lw=0)
    ax.fill_between(hours, 0, 1, where=imputed, transform=ax.get_xaxis_transform(),
                    color="tab:orange", alpha=0.08, lw=0)
    ax.set_ylabel(name, fontsize=8)
  axes[0, 0].legend(loc="upper right", fontsize=7)
  axes[-1, 0].set_xlabel("hour of day (UTC)")
  axes[-1, 0].set_xlim(0, 24)
  fig.suptitle(f"subject {subject[:16]}  {day}", fontsize=10)
  fig.tight_layout(rect=(0, 0, 1, 0.98))
  path = os.path.join(folder, f"{subject[:16]}_{day}.png")
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return path
