import matplotlib.pyplot as plt
import numpy as np

from schemas.features import FEATURES, SENSOR_GROUPS
from trainer import plots


def test_reconstruction_is_drawn_only_where_it_can_be_judged():
  group = FEATURES[0].group
  first, second = [k for k, feature in enumerate(FEATURES) if feature.group == group][:2]
  t, f = 40, len(FEATURES)
  values = np.full((1, t, f), 0.5, np.float32)
  observed = np.ones((1, t, f), bool)
  observed[0, 15:20, first] = False  # missing inside the gap
  observed[0, :, second] = False  # never observed in the window
  hidden = np.zeros_like(observed)
  hidden[0, 10:30] = True
  fig = plots.reconstruction_figure(values, observed, hidden, np.full_like(values, 2.0))
  axes = fig.axes[SENSOR_GROUPS.index(group)]
  # Per feature, in group order, three lines: visible input, reconstruction, truth dots.
  drawn = [np.asarray(axes.lines[3 * i + 1].get_ydata(), float) for i in range(2)]
  plt.close(fig)
  expected = np.full(t, np.nan)
  expected[10:30] = 2.0
  expected[15:20] = np.nan  # hidden but not observed: no truth, nothing drawn
  np.testing.assert_array_equal(drawn[0], expected)
  assert np.isnan(drawn[1]).all()  # never observed: the reconstruction is not drawn
