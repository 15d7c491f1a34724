"""PNG of validation windows: input, masks and reconstruction, per sensor group."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from schemas.features import FEATURES, SENSOR_GROUPS
from trainer import paths


def reconstruction_figure(values: np.ndarray, observed: np.ndarray, hidden: np.ndarray,
                          reconstruction: np.ndarray, title: str = ""):
  """One row per window, one column per sensor group.

  Each panel shows the group's features over time: observed input (grey), the
  reconstruction at hidden-and-observed positions (colour) against the truth there
  (black dots), hidden spans shaded. The reconstruction is drawn only where it can be
  judged: at a hidden minute the raw data did not have (and for a feature never
  observed in the window) there is no truth, so nothing is drawn there.
  """
  n = len(values)
  fig, axes = plt.subplots(n, len(SENSOR_GROUPS), figsize=(4 * len(SENSOR_GROUPS), 2.2 * n),
                           squeeze=False)
  t = np.arange(values.shape[1])
  for i in range(n):
    for j, group in enumerate(SENSOR_GROUPS):
      ax = axes[i, j]
      cols = [k for k, f in enumerate(FEATURES) if f.group == group]
      shaded = hidden[i][:, cols].any(axis=1)
      ax.fill_between(t, -5, 5, where=shaded, color="0.9", step="mid", linewidth=0)
      for c in cols:
        seen = observed[i, :, c] & ~hidden[i, :, c]
        scored = observed[i, :, c] & hidden[i, :, c]
        ax.plot(t, np.where(seen, values[i, :, c], np.nan), color="0.6", lw=0.6)
        ax.plot(t, np.where(scored, reconstruction[i, :, c], np.nan), lw=0.8)
        ax.plot(t[scored], values[i, scored, c], ".", ms=1.5, color="black")
      ax.set_ylim(-4, 4)
      if i == 0:
        ax.set_title(f"{group} ({len(cols)} features)", fontsize=9)
      if j == 0:
        ax.set_ylabel(f"window {i}", fontsize=8)
      ax.tick_params(labelsize=6)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig


def new_figure(size=(6, 3.6)):
  """A matplotlib Figure outside pyplot's global state (nothing to close)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  figure = Figure(figsize=size, dpi=100)
  FigureCanvasAgg(figure)
  return figure


def save(fig, path: str) -> None:
  """Writes the figure as a PNG at 80 dpi to path (local or a URI) and closes it."""
  paths.save_figure(fig, path, dpi=80)
  plt.close(fig)
