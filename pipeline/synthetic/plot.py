"""A picture of one subject's day: all 26 features, exercise sessions shaded."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.synthetic.physiology import MINUTES_PER_DAY, Subject  # noqa: E402
from schemas.constants import ACTIVITY_CLASSES  # noqa: E402
from schemas.features import FEATURES  # noqa: E402

_COLOURS = dict(zip(ACTIVITY_CLASSES, plt.get_cmap("tab10").colors))


def busiest_day(subject: Subject) -> int:
  """The day with the most exercise minutes, so the picture shows a session."""
  days = subject.num_minutes // MINUTES_PER_DAY
  per_day = (subject.activity >= 0)[:days * MINUTES_PER_DAY].reshape(days, -1).sum(axis=1)
  return int(np.argmax(per_day))


def plot_day(subject: Subject, day: int, path: str) -> None:
  """Writes a PNG: one row per feature over local hours 0-24 of `day`."""
  lo, hi = day * MINUTES_PER_DAY, (day + 1) * MINUTES_PER_DAY
  hours = np.arange(MINUTES_PER_DAY) / 60.0
  fig, axes = plt.subplots(len(FEATURES), 1, figsize=(12, 24), sharex=True)
  fig.subplots_adjust(left=0.2, right=0.98, top=0.97, bottom=0.03, hspace=0.15)
  for ax, i in zip(axes, range(len(FEATURES))):
    ax.plot(hours, subject.values[lo:hi, i], lw=0.6, color="black")
    ax.set_ylabel(FEATURES[i].name, rotation=0, ha="right", va="center", fontsize=7)
    ax.tick_params(labelsize=6)
  seen = set()
  for start, end, activity, exercise in subject.events:
    if end <= lo or start >= hi:
      continue
    span = ((max(start, lo) - lo) / 60.0, (min(end, hi) - lo) / 60.0)
    if exercise:
      colour, label = _COLOURS[activity], activity
    elif activity == "sleep":
      colour, label = "0.85", "sleep"
    else:
      continue
    for ax in axes:
      ax.axvspan(*span, color=colour, alpha=0.3, lw=0,
                 label=None if label in seen or ax is not axes[0] else label)
    seen.add(label)
  axes[0].legend(loc="upper right", fontsize=7, ncol=4)
  axes[-1].set_xlabel("local hour")
  axes[-1].set_xlim(0, 24)
  date = subject.start_date + day
  fig.suptitle(f"{subject.subject_id} ({subject.traits['device_model']}), {date}; "
               "gaps are missing minutes", fontsize=10)
  fig.savefig(path, dpi=60)
  plt.close(fig)
