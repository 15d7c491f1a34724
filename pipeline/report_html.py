"""The --statistics report: one self-contained HTML page (inline CSS, histograms as
base64 PNG drawn by matplotlib), readable offline in any browser.

Sections: the datasets (examples of each), the anomalies against the schema, the drift
of each split from its train split (Jensen-Shannon divergence per feature, L-infinity
distance of the activity label, flagged above their thresholds), the label shares,
then per feature its histograms (every dataset over the
feature's clip range, as a share of its observed values) and a table of count,
missing share, mean, std, min, deciles and max per dataset. Everything comes from
the statistics and anomalies protos (pipeline.statistics); the page holds feature
and dataset names and numbers only, never a subject or a path.
"""

from __future__ import annotations

import base64
import html
import io

from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from pipeline import statistics
from schemas.features import FEATURES

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #3b6ea5;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 4px}table{border-collapse:collapse;font-size:12px;margin:6px 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}th{background:#e8eef6;text-align:center}
td.name,th.name{text-align:left}.bad{background:#f8c9c4;font-weight:bold}
.ok{background:#d6f0d6}.warn{background:#fbe8b5}.feature{display:flex;gap:16px;
align-items:flex-start;flex-wrap:wrap}.note{color:#555;font-size:12px}
"""
COLOURS = ("#555555", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#8c564b")
# A dataset's name in a feature's table is marked with a bar of its histogram line's colour.
CSS += "".join(f".c{i}{{border-left:6px solid {c}}}" for i, c in enumerate(COLOURS))


def render(stats: statistics_pb2.DatasetFeatureStatisticsList,
           anomalies: dict[str, anomalies_pb2.Anomalies], threshold: float) -> str:
  """The report page as a string (UTF-8 HTML5)."""
  parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>LSM data statistics"
           f"</title><style>{CSS}</style></head><body><h1>LSM data statistics</h1>",
           _datasets(stats), _anomalies(anomalies), _drift(anomalies, threshold),
           _labels(stats), "<h2>Features</h2>"]
  histograms = _Histograms()
  try:
    parts += [_feature(stats, f, histograms) for f in range(len(FEATURES))]
  finally:
    histograms.close()
  parts.append("</body></html>\n")
  return "\n".join(parts)


def _e(value) -> str:
  return html.escape(str(value))


def _table(header, rows, classes=None) -> str:
  """An HTML table; the first column left-aligned; classes: a CSS class per row cell."""
  head = "".join(f"<th{' class=name' if i == 0 else ''}>{_e(h)}</th>"
                 for i, h in enumerate(header))
  body = []
  for r, row in enumerate(rows):
    cells = []
    for i, cell in enumerate(row):
      css = ["name"] if i == 0 or not _numeric(cell) else []
      if classes and classes[r][i]:
        css.append(classes[r][i])
      attr = f" class='{' '.join(css)}'" if css else ""
      cells.append(f"<td{attr}>{_e(cell)}</td>")
    body.append("<tr>" + "".join(cells) + "</tr>")
  return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _numeric(cell) -> bool:
  """Whether a cell is a number (right-aligned) rather than text (left-aligned)."""
  try:
    float(str(cell).rstrip("%"))
  except ValueError:
    return cell == ""
  return True


def _datasets(stats) -> str:
  rows = [(d.name, d.num_examples, "minutes" if d.name == statistics.GRID else "windows")
          for d in stats.datasets]
  return ("<h2>Datasets</h2><p class=note>grid: every subject's aligned minute grid "
          "(one example per minute); &lt;dataset&gt;/&lt;split&gt;: the windows written "
          "(one example per window, physical units before normalisation).</p>"
          + _table(("dataset", "examples", "example"), rows))


def _anomalies(anomalies) -> str:
  severity = anomalies_pb2.AnomalyInfo.Severity.Name
  rows, classes = [], []
  for name, found in anomalies.items():
    for feature, info in sorted(found.anomaly_info.items()):
      for reason in info.reason:
        rows.append((name, feature, severity(info.severity),
                     anomalies_pb2.AnomalyInfo.Type.Name(reason.type), reason.description))
        classes.append((None, None, "bad" if info.severity == info.ERROR else "warn",
                        None, None))
  if not rows:
    return "<h2>Anomalies</h2><p class=ok>No anomaly against the schema.</p>"
  return (f"<h2>Anomalies ({len(rows)})</h2>"
          + _table(("dataset", "feature", "severity", "type", "description"), rows, classes))


def _drift(anomalies, threshold: float) -> str:
  """Feature x comparison table of the Jensen-Shannon divergences (the label's row:
  L-infinity distances), each coloured against its own threshold."""
  measured = {name: {i.path.step[0]: i.drift_measurements[0] for i in found.drift_skew_info}
              for name, found in anomalies.items() if found.drift_skew_info}
  if not measured:
    return ("<h2>Drift from train</h2><p class=note>No split to compare with a train "
            "split.</p>")
  names = list(measured)
  rows, classes = [], []
  for feature in [f.name for f in FEATURES] + [statistics.LABEL]:
    values = [measured[n].get(feature) for n in names]
    if not any(values):
      continue
    rows.append([feature] + ["" if v is None else f"{v.value:.4f}" for v in values])
    classes.append([None] + [None if v is None else "bad" if v.value > v.threshold
                             else "ok" for v in values])
  header = ["feature"] + [f"{n} vs {statistics.train_of(n)}" for n in names]
  return (f"<h2>Drift from train</h2><p class=note>Per feature the Jensen-Shannon "
          f"divergence (base 2: 0 same distribution, 1 disjoint) of its histogram against "
          f"the train split of the same dataset, red above {threshold:g}; for the activity "
          f"label the L-infinity distance of the class shares (the largest difference of "
          f"one class's share), red above {statistics.L_INFINITY_THRESHOLD:g}.</p>"
          + _table(header, rows, classes))


def _labels(stats) -> str:
  """Share of each activity label per window dataset."""
  shares = {d.name: statistics.label_shares(f) for d in stats.datasets for f in d.features
            if f.path.step[0] == statistics.LABEL}
  if not shares:
    return ""
  values = [v for v in statistics.LABEL_VALUES if any(v in s for s in shares.values())]
  rows = [[name] + [f"{s.get(v, 0.0):.1%}" for v in values] for name, s in shares.items()]
  return ("<h2>Activity labels</h2><p class=note>Share of the windows per label (pretrain: "
          "the label of most of the window's minutes).</p>"
          + _table(["dataset"] + values, rows))


def _feature(stats, f: int, histograms: _Histograms) -> str:
  feature = FEATURES[f]
  datasets = [(d.name, d.features[f]) for d in stats.datasets]
  rows = [_row(name, s) for name, s in datasets]
  header = ("dataset", "values", "missing", "mean", "std", "min", "p10", "median", "p90",
            "max")
  colours = [[f"c{i % len(COLOURS)}"] + [None] * 9 for i in range(len(rows))]
  image = histograms.png(f, datasets) if datasets else ""
  return (f"<h3>{_e(feature.name)} <span class=note>({_e(feature.group)}, "
          f"{_e(feature.unit)}; schema range {feature.clip_range[0]:g}..."
          f"{feature.clip_range[1]:g})</span></h3><div class=feature>{image}"
          f"{_table(header, rows, colours)}</div>")


def _row(name: str, s: statistics_pb2.FeatureNameStatistics) -> tuple:
  num = s.num_stats
  count = num.common_stats.tot_num_values
  missing = f"{statistics.custom(s, 'missing_share'):.1%}"
  if not count:
    return (name, 0, missing) + ("",) * 7
  deciles = next(h for h in num.histograms if h.type == statistics_pb2.Histogram.QUANTILES)
  p10, p90 = deciles.buckets[0].high_value, deciles.buckets[-1].low_value
  return (name, count, missing) + tuple(f"{v:.4g}" for v in (
      num.mean, num.std_dev, num.min, p10, num.median, p90, num.max))


class _Histograms:
  """One matplotlib figure, redrawn for each feature (a new figure per feature with
  tight_layout took 0.3 s each, most of the report's time)."""

  def __init__(self):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    self._pyplot = pyplot
    self._figure, self._axes = pyplot.subplots(figsize=(4.2, 2.2), dpi=72)
    self._figure.subplots_adjust(left=0.13, right=0.98, bottom=0.2, top=0.96)

  def png(self, f: int, datasets) -> str:
    """An <img> of every dataset's in-range buckets of feature f, as shares of its
    values, one step line each in the dataset's colour (COLOURS, as in the table)."""
    axes = self._axes
    axes.clear()
    for i, (_, s) in enumerate(datasets):
      counts = statistics.standard_counts(s)
      if counts.sum():
        axes.stairs(counts[1:-1] / counts.sum(), statistics.EDGES[f],
                    color=COLOURS[i % len(COLOURS)], linewidth=1.5)
    axes.set_xlabel(f"{FEATURES[f].name} ({FEATURES[f].unit})", fontsize=8)
    axes.set_ylabel("share", fontsize=8)
    axes.tick_params(labelsize=7)
    buffer = io.BytesIO()
    self._figure.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{_e(FEATURES[f].name)} histogram' src='data:image/png;base64,{data}'>"

  def close(self) -> None:
    self._pyplot.close(self._figure)
