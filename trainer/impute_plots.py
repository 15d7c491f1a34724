"""One PNG per subject-day of an imputed recording: observed and imputed spans marked."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def subject_days(table: pa.Table, features: list[str], folder: str) -> list[str]:
  """Writes FOLDER/<subject hash first 16>_<YYYY-MM-DD>.png (UTC days) for every
  subject-day of `table` (trainer.impute.subject_table's columns), one panel per
  feature in `features`: observed values black, imputed ones orange with the
  draws' spread as a band, imputed spans shaded. Returns the paths written."""
  os.makedirs(folder, exist_ok=True)
  paths = []
  minute = table["minute"].to_numpy().astype("datetime64[m]")
  day = minute.astype("datetime64[D]")
  subject = table["subject"].to_numpy(zero_copy_only=False)
  for s in pc.unique(table["subject"]).to_pylist():
    for d in np.unique(day[subject == s]):
      rows = np.flatnonzero((subject == s) & (day == d))
      paths.append(_day_figure(table, rows, minute[rows], features, s, str(d), folder))
  return paths


def _day_figure(table, rows, minute, features, subject, day, folder) -> str:
  fig, axes = plt.subplots(len(features), 1, figsize=(12, 1.8 * len(features) + 0.6),
                           sharex=True, squeeze=False)
  hours = (minute - minute.astype("datetime64[D]")).astype(np.float64) / 60
  for ax, name in zip(axes[:, 0], features):
    value = table[name].to_numpy()[rows]
    status = np.asarray(table[f"{name}_status"].to_pylist())[rows]
    sd = table[f"{name}_sd"].to_numpy()[rows]
    imputed = status == "imputed"
    ax.plot(hours, np.where(status == "observed", value, np.nan), color="black", lw=0.8,
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
  fig.tight_layout()
  path = os.path.join(folder, f"{subject[:16]}_{day}.png")
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return path
