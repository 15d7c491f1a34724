"""--statistics: per-feature data statistics, schema anomalies and split drift, as TFDV writes them.

tensorflow-data-validation is not installable beside this stack (its last release on
PyPI for this platform, 1.16.1, pins tensorflow<2.17, tfx-bsl<1.17, pyarrow<11,
pandas<2, protobuf<6), so this module computes what TFDV's GenerateStatistics and
validate_statistics would, with the libraries TFDV itself is built on:

* statistics: one tensorflow_metadata DatasetFeatureStatistics per dataset, in a
  DatasetFeatureStatisticsList (TFDV's and Facets' input format, readable with
  tfdv.load_stats_binary). Datasets: "grid" (every subject's aligned minute grid, one
  example per minute, before any window is cut) and "<dataset>/<split>" (the windows
  written, one example per window of T minutes, values in physical units before
  normalisation). Per feature: examples with and without an observed value, observed
  values, missing share (NaN cells / all cells), mean, std, zeros, min, median, max,
  deciles (tfx_bsl's QuantilesSketch, TFDV's own sketch, eps QUANTILE_EPS) and a
  standard histogram of BINS equal buckets over the feature's clip range (the
  schema's float_domain) plus an underflow and an overflow bucket, so that every
  dataset has the same buckets and two can be compared bucket by bucket. Window
  datasets also describe their activity label, a categorical feature "label" (string
  stats: counts per class name).
* anomalies (validate): per dataset a tensorflow_metadata Anomalies proto against
  schemas.tfmd.window_schema: values below / above float_domain (FLOAT_TYPE_SMALL_FLOAT
  / BIG_FLOAT), infinities (FLOAT_TYPE_HAS_INF), and for window datasets a feature
  observed in fewer windows than presence.min_fraction (FEATURE_TYPE_LOW_FRACTION_PRESENT;
  an ERROR when in none). Drift: each non-train split against its dataset's train split,
  the Jensen-Shannon divergence (base 2, so in [0, 1]) of the two standard histograms,
  as TFDV's numeric drift comparator; above the threshold it is
  COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH; the label's drift is TFDV's categorical
  L-infinity distance (COMPARATOR_L_INFTY_HIGH). Every measurement is kept in
  drift_skew_info, flagged or not.

The computation is a Beam CombineFn (DatasetStatistics) over whole arrays (a subject's
grid, a subject's block of windows): workers add arrays to small per-dataset
accumulators (counts, moments, histogram, sketch), only those cross the shuffle. pipeline.report_html
renders the report; write_outputs writes everything under the run's staging folder
(published by pipeline.publish with the rest of the run).
"""

from __future__ import annotations

import dataclasses
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, path_pb2, schema_pb2, statistics_pb2
from tfx_bsl.sketches import QuantilesSketch

from schemas.constants import ACTIVITY_CLASSES, SPLITS
from schemas.features import FEATURES, feature_array

F = len(FEATURES)
FOLDER = "statistics"  # under OUTPUT, beside manifest.json
STATISTICS_NAME = "statistics.pb"
REPORT_NAME = "report.html"
GRID = "grid"
BINS = 20  # equal buckets over each feature's clip range (TFDV's default is 10)
QUANTILES = 10  # deciles: TFDV's default num_quantiles_histogram_buckets
QUANTILE_EPS = 0.001  # rank error of the sketch: 0.1% of the values
MAX_SKETCH_VALUES = 1 << 32  # the sketch's size hint (tfx_bsl's suggested default)
# Jensen-Shannon divergence (base 2) above which a split is said to drift from train.
# TFDV leaves the threshold to the user; on these histograms two normal distributions
# (std 1.5 buckets) a mean shift of 0.5 / 1 / 10 std apart give 0.04 / 0.15 / 1.0, so 0.1
# flags a shift of about 0.8 std, while two samples of 20,000 values of one distribution
# give 0.0003 (measured with bucket_index and js_divergence below). With few subjects
# per split, person-to-person differences alone can exceed it: read it with the subject
# counts of the manifest.
DRIFT_THRESHOLD = 0.1
# The windows' activity label (windows.WindowBlock.label: the session's class in
# "labelled", the dominant minute label in "pretrain", -1 unknown), a categorical
# feature: its drift is TFDV's L-infinity distance (the largest difference of one
# class's share), above L_INFINITY_THRESHOLD (10 points of one class) reported.
LABEL = "label"
LABEL_VALUES = ("unknown",) + ACTIVITY_CLASSES  # label + 1 -> name
L_INFINITY_THRESHOLD = 0.1
CHUNK_VALUES = 1 << 20  # values added at a time: a year-long grid is 14M (and 5 copies)
NO_MINIMUM = np.iinfo(np.int64).max  # min_values of a feature no example has
EDGES = np.stack([np.linspace(low, high, BINS + 1) for low, high in
                  feature_array("clip_range")])  # float64 [F, BINS + 1]


@dataclasses.dataclass
class Accumulator:
  """Per-feature sums of one dataset. Arrays are [F]; hist [F, BINS + 2] (underflow,
  BINS buckets, overflow). mean and m2 merge by Chan et al.'s parallel update."""
  examples: int = 0
  cells: int = 0  # examples x minutes per example
  present: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(F, np.int64))
  count: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(F, np.int64))
  mean: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(F))
  m2: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(F))
  low: np.ndarray = dataclasses.field(default_factory=lambda: np.full(F, np.inf))
  high: np.ndarray = dataclasses.field(default_factory=lambda: np.full(F, -np.inf))
  zeros: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(F, np.int64))
  infinite: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(F, np.int64))
  min_values: np.ndarray = dataclasses.field(
      default_factory=lambda: np.full(F, NO_MINIMUM))
  max_values: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(F, np.int64))
  hist: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros((F, BINS + 2), np.int64))
  sketch: QuantilesSketch = dataclasses.field(
      default_factory=lambda: QuantilesSketch(QUANTILE_EPS, MAX_SKETCH_VALUES, F))
  labels: np.ndarray | None = None  # int64 [len(LABEL_VALUES)]; None: no label (grid)


def bucket_index(values: np.ndarray) -> np.ndarray:
  """Standard-histogram bucket of each value of float [..., F]: 0 below the clip range,
  1..BINS inside (the top edge in the last bucket), BINS + 1 above; int64 [..., F]."""
  low, high = EDGES[:, 0], EDGES[:, -1]
  scaled = np.floor((values - low) / (high - low) * BINS)
  inside = np.clip(scaled, 0, BINS - 1) + 1
  return np.where(values < low, 0, np.where(values > high, BINS + 1, inside)).astype(np.int64)


def add_values(acc: Accumulator, values: np.ndarray, labels=None) -> Accumulator:
  """Adds examples float [n, T, F] (NaN missing; T = 1 for grid minutes) and, for
  windows, their labels int [n] (-1 unknown, else an ACTIVITY_CLASSES index) to `acc`."""
  if labels is not None:
    counts = np.bincount(np.asarray(labels, np.int64) + 1, minlength=len(LABEL_VALUES))
    acc.labels = counts if acc.labels is None else acc.labels + counts
  values = np.asarray(values, np.float64)
  n, t, _ = values.shape
  finite = np.isfinite(values)
  per_example = finite.sum(axis=1)  # [n, F]
  count = per_example.sum(axis=0)
  safe = np.where(finite, values, 0.0)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = np.where(count > 0, safe.sum(axis=(0, 1)) / count, 0.0)
  m2 = (np.where(finite, values - mean, 0.0) ** 2).sum(axis=(0, 1))
  _merge_moments(acc, count, mean, m2)
  acc.examples += n
  acc.cells += n * t
  present = per_example > 0
  acc.present += present.sum(axis=0)
  acc.min_values = np.minimum(acc.min_values, np.where(present, per_example, NO_MINIMUM
                                                       ).min(axis=0, initial=NO_MINIMUM))
  acc.max_values = np.maximum(acc.max_values, per_example.max(axis=0, initial=0))
  acc.low = np.minimum(acc.low, np.where(finite, values, np.inf).min(axis=(0, 1), initial=np.inf))
  acc.high = np.maximum(acc.high, np.where(finite, values, -np.inf).max(axis=(0, 1),
                                                                         initial=-np.inf))
  acc.zeros += (finite & (values == 0)).sum(axis=(0, 1))
  acc.infinite += np.isinf(values).sum(axis=(0, 1))
  buckets = bucket_index(safe) + np.arange(F) * (BINS + 2)
  acc.hist += np.bincount(buckets[finite], minlength=F * (BINS + 2)).reshape(F, BINS + 2)
  flat = values.reshape(-1)  # C order: the feature (the sketch's stream) varies fastest
  acc.sketch.AddValues(pa.array(flat, mask=~finite.reshape(-1)))
  return acc


def _merge_moments(acc: Accumulator, count, mean, m2) -> None:
  """Chan et al.'s parallel mean/variance update of acc with another part's moments."""
  total = acc.count + count
  with np.errstate(invalid="ignore", divide="ignore"):
    delta = mean - acc.mean
    share = np.where(total > 0, count / np.maximum(total, 1), 0.0)
    acc.m2 = acc.m2 + m2 + delta ** 2 * acc.count * share
    acc.mean = acc.mean + delta * share
  acc.count = total


def merge(accs) -> Accumulator:
  """One accumulator of several (the first is updated and returned)."""
  accs = iter(accs)
  out = next(accs)
  for acc in accs:
    _merge_moments(out, acc.count, acc.mean, acc.m2)
    out.examples += acc.examples
    out.cells += acc.cells
    out.present += acc.present
    out.min_values = np.minimum(out.min_values, acc.min_values)
    out.max_values = np.maximum(out.max_values, acc.max_values)
    out.low, out.high = np.minimum(out.low, acc.low), np.maximum(out.high, acc.high)
    out.zeros += acc.zeros
    out.infinite += acc.infinite
    out.hist += acc.hist
    out.sketch.Merge(acc.sketch)
    if acc.labels is not None:
      out.labels = acc.labels if out.labels is None else out.labels + acc.labels
  return out


class DatasetStatistics(beam.CombineFn):
  """Elements -> [DatasetFeatureStatistics], one per dataset name met.

  part: element -> (dataset name, float [n, T, F] values, NaN missing), a module-level
  function (grid_part, window_part). Elements are combined as they come (a subject's
  grid, a block of windows) into one Accumulator per name: a few MB whatever the data
  size (the quantile sketch, compacted before it is shipped), so the arrays never cross
  the runner again and the edge into this step keeps its arrays' coder
  (pipeline.exchange.ArraysCoder)."""

  def __init__(self, part):
    self._part = part

  def create_accumulator(self):
    return {}

  def add_input(self, acc, element):
    name, values, labels = self._part(element)
    part = acc.get(name) or Accumulator()
    rows = max(1, CHUNK_VALUES // (values.shape[1] * F))  # bounds the float64 temporaries
    for i in range(0, len(values), rows):
      add_values(part, values[i:i + rows], None if labels is None else labels[i:i + rows])
    acc[name] = part
    return acc

  def merge_accumulators(self, accs):
    out = {}
    for acc in accs:
      for name, part in acc.items():
        out[name] = merge([out[name], part]) if name in out else part
    return out

  def compact(self, acc):
    for part in acc.values():
      part.sketch.Compact()
    return acc

  def extract_output(self, acc):
    return [to_proto(part, name) for name, part in sorted(acc.items())]


def grid_part(item) -> tuple:
  """(subject, align.Grid) -> ("grid", its minutes as examples [M, 1, F], no labels)."""
  return GRID, item[1].values[:, None, :], None


def window_part(block) -> tuple:
  """windows.WindowBlock -> ("<dataset>/<split>", its windows [n, T, F], labels [n])."""
  return f"{block.dataset}/{block.split}", block.values, block.label


def to_proto(acc: Accumulator, name: str = "") -> statistics_pb2.DatasetFeatureStatistics:
  """The accumulator as TFDV's per-dataset statistics (see the module docstring)."""
  out = statistics_pb2.DatasetFeatureStatistics(name=name, num_examples=acc.examples)
  deciles = _quantiles(acc)
  for f, feature in enumerate(FEATURES):
    stats = out.features.add(path=path_pb2.Path(step=[feature.name]),
                             type=statistics_pb2.FeatureNameStatistics.FLOAT)
    num = stats.num_stats
    common = num.common_stats
    common.num_non_missing = int(acc.present[f])
    common.num_missing = acc.examples - int(acc.present[f])
    common.tot_num_values = int(acc.count[f])
    if acc.present[f]:
      common.min_num_values, common.max_num_values = int(acc.min_values[f]), int(
          acc.max_values[f])
      common.avg_num_values = float(acc.count[f] / acc.present[f])
    if acc.count[f]:
      num.mean, num.std_dev = float(acc.mean[f]), float(np.sqrt(acc.m2[f] / acc.count[f]))
      num.min, num.max = float(acc.low[f]), float(acc.high[f])
      num.median = float(deciles[f][QUANTILES // 2])
    num.num_zeros = int(acc.zeros[f])
    missing = acc.cells - int(acc.count[f]) - int(acc.infinite[f])
    _standard_histogram(num.histograms.add(), acc, f, missing)
    quantiles = num.histograms.add(type=statistics_pb2.Histogram.QUANTILES, num_nan=missing)
    if acc.count[f]:
      for low, high in zip(deciles[f][:-1], deciles[f][1:]):
        quantiles.buckets.add(low_value=float(low), high_value=float(high),
                              sample_count=float(acc.count[f]) / QUANTILES)
    stats.custom_stats.add(name="missing_share",
                           num=missing / acc.cells if acc.cells else 1.0)
    stats.custom_stats.add(name="num_inf", num=int(acc.infinite[f]))
  if acc.labels is not None:
    _label_statistics(out.features.add(), acc.labels)
  return out


def _label_statistics(stats: statistics_pb2.FeatureNameStatistics, counts) -> None:
  """The label as TFDV describes a categorical int feature: string_stats of its values
  by name, most frequent first."""
  stats.path.step.append(LABEL)
  stats.type = statistics_pb2.FeatureNameStatistics.INT
  strings = stats.string_stats
  total = int(counts.sum())
  common = strings.common_stats
  common.num_non_missing = common.tot_num_values = total
  common.min_num_values = common.max_num_values = 1 if total else 0
  common.avg_num_values = 1.0 if total else 0.0
  strings.unique = int((counts > 0).sum())
  order = sorted((i for i in range(len(counts)) if counts[i]), key=lambda i: -counts[i])
  for rank, i in enumerate(order):
    strings.top_values.add(value=LABEL_VALUES[i], frequency=float(counts[i]))
    strings.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=LABEL_VALUES[i],
                                       sample_count=float(counts[i]))


def label_shares(stats: statistics_pb2.FeatureNameStatistics) -> dict[str, float]:
  """{label name: share of the windows} of a label feature's statistics."""
  top = stats.string_stats.top_values
  total = sum(v.frequency for v in top)
  return {v.value: v.frequency / total for v in top} if total else {}


def _quantiles(acc: Accumulator) -> np.ndarray:
  """float [F, QUANTILES + 1]: min, the deciles, max of each feature (NaN when empty).

  The sketch answers for its non-empty streams only, in stream order."""
  out = np.full((F, QUANTILES + 1), np.nan)
  if acc.count.any():
    got = acc.sketch.GetQuantiles(QUANTILES)
    out[acc.count > 0] = np.asarray(got.flatten(), np.float64).reshape(len(got), -1)
  return out


def _standard_histogram(hist: statistics_pb2.Histogram, acc: Accumulator, f: int,
                        missing: int) -> None:
  """BINS + 2 buckets: [min, clip low), the BINS clip-range buckets, (clip high, max]."""
  edges = EDGES[f]
  hist.type, hist.num_nan = statistics_pb2.Histogram.STANDARD, missing
  low = min(edges[0], acc.low[f]) if acc.count[f] else edges[0]
  high = max(edges[-1], acc.high[f]) if acc.count[f] else edges[-1]
  bounds = np.concatenate([[low], edges, [high]])
  for b in range(BINS + 2):
    hist.buckets.add(low_value=float(bounds[b]), high_value=float(bounds[b + 1]),
                     sample_count=float(acc.hist[f, b]))


def standard_counts(feature: statistics_pb2.FeatureNameStatistics) -> np.ndarray:
  """The sample counts of a feature's standard histogram, float [BINS + 2]."""
  hist = next(h for h in feature.num_stats.histograms
              if h.type == statistics_pb2.Histogram.STANDARD)
  return np.array([b.sample_count for b in hist.buckets], np.float64)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
  """Jensen-Shannon divergence, base 2 (0 identical .. 1 disjoint), of two histograms
  over the same buckets (counts, normalised here). Raises ValueError if one is empty."""
  if p.sum() <= 0 or q.sum() <= 0:
    raise ValueError("js_divergence: an empty histogram has no distribution")
  p, q = p / p.sum(), q / q.sum()
  m = (p + q) / 2

  def kl(a):
    inside = a > 0
    return float((a[inside] * np.log2(a[inside] / m[inside])).sum())
  return max(0.0, (kl(p) + kl(q)) / 2)


def custom(feature: statistics_pb2.FeatureNameStatistics, name: str) -> float:
  return next(c.num for c in feature.custom_stats if c.name == name)


def _reason(anomalies, name: str, kind, severity, short: str, text: str) -> None:
  info = anomalies.anomaly_info[name]
  info.path.step[:] = [name]
  info.severity = max(info.severity, severity)
  info.reason.add(type=kind, short_description=short, description=text)
  info.short_description = info.reason[0].short_description if len(info.reason) == 1 \
      else "Multiple errors"
  info.description = " ".join(r.description for r in info.reason)


def validate(dataset: statistics_pb2.DatasetFeatureStatistics, schema: schema_pb2.Schema,
             baseline: statistics_pb2.DatasetFeatureStatistics | None = None,
             threshold: float = DRIFT_THRESHOLD) -> anomalies_pb2.Anomalies:
  """One dataset's statistics against the schema (range, infinities, presence of window
  datasets) and, with `baseline` (its train split), its drift from it (see the module
  docstring). Features are matched by name; a feature without values is not compared."""
  out = anomalies_pb2.Anomalies(baseline=schema)
  out.anomaly_name_format = anomalies_pb2.Anomalies.SERIALIZED_PATH
  by_name = {f.path.step[0]: f for f in dataset.features}
  base = {f.path.step[0]: f for f in baseline.features} if baseline else {}
  for column in schema.feature:
    stats = by_name.get(column.name)
    if stats is None:
      continue
    _range_anomalies(out, column, stats, dataset.name)
    if dataset.name != GRID and dataset.num_examples:
      _presence_anomaly(out, column, stats, dataset)
    if column.name in base:
      _drift(out, column.name, stats, base[column.name], baseline.name, dataset.name,
             threshold)
  if LABEL in by_name and LABEL in base:
    _label_drift(out, by_name[LABEL], base[LABEL], baseline.name, dataset.name)
  return out


def l_infinity(p: dict[str, float], q: dict[str, float]) -> float:
  """TFDV's categorical distance: the largest difference of one value's share."""
  return max((abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q)), default=0.0)


def _label_drift(out, stats, base, base_name: str, where: str) -> None:
  p, q = label_shares(base), label_shares(stats)
  if not (p and q):
    return
  value = l_infinity(p, q)
  info = out.drift_skew_info.add(path=path_pb2.Path(step=[LABEL]))
  info.drift_measurements.add(type=anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY,
                              value=value, threshold=L_INFINITY_THRESHOLD)
  if value > L_INFINITY_THRESHOLD:
    worst = max((k for k in LABEL_VALUES if k in p or k in q),  # ties: the first class
                key=lambda k: abs(p.get(k, 0.0) - q.get(k, 0.0)))
    _reason(out, LABEL, anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
            anomalies_pb2.AnomalyInfo.ERROR, "High Linfty distance between current and "
            "previous", f"{where} drifts from {base_name}: L-infinity distance {value:.3f} "
            f"(class {worst}: {q.get(worst, 0.0):.1%} vs {p.get(worst, 0.0):.1%}) is above "
            f"the threshold {L_INFINITY_THRESHOLD:g}.")


def _range_anomalies(out, column, stats, where: str) -> None:
  num, domain = stats.num_stats, column.float_domain
  if not num.common_stats.tot_num_values:
    return
  error = anomalies_pb2.AnomalyInfo.ERROR
  if num.min < domain.min:
    _reason(out, column.name, anomalies_pb2.AnomalyInfo.FLOAT_TYPE_SMALL_FLOAT, error,
            "Out-of-range values", f"In {where}: min {num.min:g} is below the schema's "
            f"minimum {domain.min:g}.")
  if num.max > domain.max:
    _reason(out, column.name, anomalies_pb2.AnomalyInfo.FLOAT_TYPE_BIG_FLOAT, error,
            "Out-of-range values", f"In {where}: max {num.max:g} is above the schema's "
            f"maximum {domain.max:g}.")
  if domain.disallow_inf and custom(stats, "num_inf"):
    _reason(out, column.name, anomalies_pb2.AnomalyInfo.FLOAT_TYPE_HAS_INF, error,
            "Infinite values", f"In {where}: {custom(stats, 'num_inf'):g} infinite values; "
            "the schema allows none.")


def _presence_anomaly(out, column, stats, dataset) -> None:
  share = stats.num_stats.common_stats.num_non_missing / dataset.num_examples
  if share >= column.presence.min_fraction:
    return
  info = anomalies_pb2.AnomalyInfo
  _reason(out, column.name, info.FEATURE_TYPE_LOW_FRACTION_PRESENT,
          info.ERROR if share == 0 else info.WARNING, "Column dropped" if share == 0
          else "Column missing in some windows",
          f"In {dataset.name}: observed in {share:.1%} of {dataset.num_examples} windows; "
          f"the schema expects at least {column.presence.min_fraction:.0%}.")


def _drift(out, name: str, stats, base, base_name: str, where: str, threshold: float):
  p, q = standard_counts(base), standard_counts(stats)
  if not (p.sum() and q.sum()):
    return
  value = js_divergence(p, q)
  info = out.drift_skew_info.add(path=path_pb2.Path(step=[name]))
  info.drift_measurements.add(type=anomalies_pb2.DriftSkewInfo.Measurement.
                              JENSEN_SHANNON_DIVERGENCE, value=value, threshold=threshold)
  if value > threshold:
    _reason(out, name, anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
            anomalies_pb2.AnomalyInfo.ERROR, "High approximate Jensen-Shannon divergence "
            "between current and previous",
            f"{where} drifts from {base_name}: Jensen-Shannon divergence {value:.3f} is "
            f"above the threshold {threshold:g}.")


def train_of(name: str) -> str | None:
  """The baseline of a window dataset 'pretrain/valid': 'pretrain/train'; None for train
  and the grid."""
  if name == GRID or name.endswith("/train"):
    return None
  return name.rsplit("/", 1)[0] + "/train"


def validate_all(stats: statistics_pb2.DatasetFeatureStatisticsList, schema,
                 threshold: float = DRIFT_THRESHOLD) -> dict[str, anomalies_pb2.Anomalies]:
  """{dataset name: its Anomalies}, each non-train split compared with its train."""
  by_name = {d.name: d for d in stats.datasets}
  return {d.name: validate(d, schema, by_name.get(train_of(d.name)), threshold)
          for d in stats.datasets}


def anomaly_file(name: str) -> str:
  """The anomalies file of a dataset, relative to the output: 'pretrain/valid' ->
  statistics/anomalies-pretrain-valid.pbtxt."""
  return f"{FOLDER}/anomalies-{name.replace('/', '-')}.pbtxt"


def _write(path: str, data: bytes) -> None:
  with FileSystems.create(path) as f:
    f.write(data)


def write_outputs(datasets, staging: str, window: int, threshold: float) -> dict:
  """Writes the statistics proto, one anomalies text proto per dataset and the HTML
  report under staging/FOLDER; returns the manifest's 'data_statistics' entry (paths
  relative to the output, the anomaly count per dataset, the threshold).

  datasets: [DatasetFeatureStatistics] in any order (sorted here: grid first)."""
  from pipeline import report_html
  from schemas.tfmd import window_schema
  stats = statistics_pb2.DatasetFeatureStatisticsList(datasets=sorted(datasets, key=_order))
  anomalies = validate_all(stats, window_schema(window), threshold)
  _write(os.path.join(staging, FOLDER, STATISTICS_NAME), stats.SerializeToString())
  for name, found in anomalies.items():
    _write(os.path.join(staging, anomaly_file(name)),
           text_format.MessageToString(found).encode("utf-8"))
  _write(os.path.join(staging, FOLDER, REPORT_NAME),
         report_html.render(stats, anomalies, threshold).encode("utf-8"))
  return {"statistics": f"{FOLDER}/{STATISTICS_NAME}", "report": f"{FOLDER}/{REPORT_NAME}",
          "anomalies": {name: anomaly_file(name) for name in anomalies},
          "anomaly_count": {name: len(a.anomaly_info) for name, a in anomalies.items()},
          "drift_threshold": threshold}


def _order(dataset) -> tuple:
  """Sort key of datasets: the grid first, then by dataset, splits in SPLITS order."""
  split = dataset.name.rsplit("/", 1)[-1]
  return (dataset.name != GRID, dataset.name.split("/")[0],
          SPLITS.index(split) if split in SPLITS else -1)


def _write_all(_, grid: list, windows: list, staging: str, window: int, threshold: float):
  return write_outputs(grid + windows, staging, window, threshold)


class DataStatistics(beam.PTransform):
  """{'grids': (subject, align.Grid), 'windows': windows.WindowBlock} -> one element,
  the manifest's 'data_statistics' entry, once the files are written under
  staging/FOLDER (see write_outputs).

  Grids are combined per run ("grid"), windows per (dataset, split); each subject's
  arrays are added whole (DatasetStatistics)."""

  def __init__(self, staging: str, window: int, threshold: float = DRIFT_THRESHOLD):
    super().__init__()
    self._args = (staging, window, threshold)

  def expand(self, inputs):
    grid = inputs["grids"] | "GridStatistics" >> beam.CombineGlobally(
        DatasetStatistics(grid_part))
    windows = inputs["windows"] | "WindowStatistics" >> beam.CombineGlobally(
        DatasetStatistics(window_part))
    return (inputs["grids"].pipeline
            | "Once" >> beam.Create([None])
            | "Write" >> beam.Map(_write_all, beam.pvalue.AsSingleton(grid),
                                  beam.pvalue.AsSingleton(windows), *self._args))
