"""--statistics: the combiner's values, anomalies and drift, the pipeline's outputs, and
the HTML report rendered by a headless browser (Debian's chromium)."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from pipeline import main, privacy, statistics
from pipeline.windows import WindowBlock
from schemas import manifest
from schemas.constants import ACTIVITY_CLASSES
from schemas.features import FEATURE_INDEX, FEATURES
from schemas.tfmd import window_schema

F = len(FEATURES)
T = 30
HR, EDA, STEPS = FEATURE_INDEX["HR"], FEATURE_INDEX["eda_level_real"], FEATURE_INDEX["steps"]
CENTRE = statistics.EDGES[:, 0] + (statistics.EDGES[:, -1] - statistics.EDGES[:, 0]) / 2
SPREAD = (statistics.EDGES[:, -1] - statistics.EDGES[:, 0]) * 0.02
Info = anomalies_pb2.AnomalyInfo


def _values(rng, n, t=T, missing=0.2):
  v = CENTRE + SPREAD * rng.standard_normal((n, t, F))
  v[rng.random(v.shape) < missing] = np.nan
  return v


def _named(values):
  return "pretrain/train", values, None


def _combine(*parts):
  """The statistics of arrays added to separate accumulators, compacted and merged."""
  fn = statistics.DatasetStatistics(_named)
  accs = [fn.compact(fn.add_input(fn.create_accumulator(), p)) for p in parts]
  [out] = fn.extract_output(fn.merge_accumulators(accs))
  return out


def test_combiner_values_match_numpy_over_merged_parts(monkeypatch):
  monkeypatch.setattr(statistics, "CHUNK_VALUES", 7 * T * F)  # 7 windows at a time
  rng = np.random.default_rng(0)
  a, b = _values(rng, 40), _values(rng, 25)
  a[3, :, STEPS] = np.nan  # a window without steps
  a[0, 0, EDA] = 0.0
  got = _combine(a, b)
  both = np.concatenate([a, b])
  assert got.num_examples == 65
  for f in (HR, EDA, STEPS):
    s, column = got.features[f], both[:, :, f]
    observed = column[np.isfinite(column)]
    num = s.num_stats
    assert s.path.step[0] == FEATURES[f].name
    assert num.common_stats.tot_num_values == observed.size
    np.testing.assert_allclose(num.mean, observed.mean(), rtol=1e-12)
    np.testing.assert_allclose(num.std_dev, observed.std(), rtol=1e-9)
    assert (num.min, num.max) == (observed.min(), observed.max())
    assert statistics.custom(s, "missing_share") == pytest.approx(1 - observed.size / both[..., f].size)
    per_window = np.isfinite(column).sum(axis=1)
    assert num.common_stats.num_non_missing == (per_window > 0).sum()
    assert num.common_stats.max_num_values == per_window.max()
    assert num.common_stats.min_num_values == per_window[per_window > 0].min()
    deciles = [h for h in num.histograms if h.type == statistics_pb2.Histogram.QUANTILES][0]
    edges = [deciles.buckets[0].low_value] + [bk.high_value for bk in deciles.buckets]
    ranks = np.searchsorted(np.sort(observed), edges) / observed.size
    np.testing.assert_allclose(ranks, np.linspace(0, 1, 11), atol=0.01)  # sketch: rank error
    assert num.median == pytest.approx(np.median(observed), abs=SPREAD[f] * 0.05)
    counts = statistics.standard_counts(s)
    np.testing.assert_array_equal(counts[1:-1], np.histogram(observed, statistics.EDGES[f])[0])
    assert counts[0] == counts[-1] == 0
  assert got.features[EDA].num_stats.num_zeros == 1
  assert got.features[STEPS].num_stats.common_stats.num_missing == 1


def test_js_divergence_known_values():
  assert statistics.js_divergence(np.array([3.0, 1.0]), np.array([6.0, 2.0])) == 0
  assert statistics.js_divergence(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 1
  # m = (.75, .25): (log2(4/3) + .5 log2(2/3) + .5 log2(2)) / 2
  assert statistics.js_divergence(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == \
      pytest.approx(0.31128, abs=1e-5)
  with pytest.raises(ValueError, match="empty histogram"):
    statistics.js_divergence(np.zeros(2), np.ones(2))


def _block(split, values, subject, label):
  n = len(values)
  zeros = np.zeros(n, np.float32)
  return WindowBlock(subject, split, "pretrain", np.arange(n, dtype=np.int64) * T,
                     values.astype(np.float32), zeros, zeros, label.astype(np.int16),
                     np.zeros(n, np.int16), np.zeros((n, T), np.int8), np.zeros((n, T), np.int8))


def test_shift_of_10_std_in_valid_is_drift_and_out_of_range_is_reported(tmp_path, make_pipeline):
  """Through the Beam transform: valid's HR moved by 10 std (still inside the schema's
  range) and valid's activity labels (run instead of walk) drift; a test value above
  the EDA range and a feature test never has are anomalies; train has none."""
  import apache_beam as beam
  from pipeline.align import Grid
  rng = np.random.default_rng(1)
  blocks = []
  walk, run = ACTIVITY_CLASSES.index("walk"), ACTIVITY_CLASSES.index("run")
  mixed = np.repeat([-1, walk], 10)  # half unknown, half walk
  for s in range(3):
    blocks.append(_block("train", _values(rng, 20), f"t{s}", mixed))
    valid = _values(rng, 20)
    valid[:, :, HR] += 10 * SPREAD[HR]
    blocks.append(_block("valid", valid, f"v{s}", np.repeat([-1, run], 10)))
    test = _values(rng, 20)
    test[:, :, STEPS] = np.nan
    blocks.append(_block("test", test, f"x{s}", mixed[::-1]))
  blocks[-1].values[0, 0, EDA] = FEATURES[EDA].clip_range[1] + 10
  grids = [(f"g{s}", Grid(0, _values(rng, 200, t=1)[:, 0, :])) for s in range(2)]
  with make_pipeline() as p:
    _ = ({"grids": p | "Grids" >> beam.Create(grids),
          "windows": p | "Windows" >> beam.Create(blocks)}
         | statistics.DataStatistics(str(tmp_path), T))

  def anomalies(name):
    path = tmp_path / statistics.anomaly_file(f"pretrain/{name}")
    return text_format.Parse(path.read_text(), anomalies_pb2.Anomalies())
  valid, test, train = anomalies("valid"), anomalies("test"), anomalies("train")
  assert not train.anomaly_info
  assert [r.type for r in valid.anomaly_info["HR"].reason] == [
      Info.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH]
  assert sorted(valid.anomaly_info) == ["HR", "label"]
  assert [r.type for r in valid.anomaly_info["label"].reason] == [Info.COMPARATOR_L_INFTY_HIGH]
  assert "class walk: 0.0% vs 50.0%" in valid.anomaly_info["label"].description
  drift = {i.path.step[0]: i.drift_measurements[0].value for i in valid.drift_skew_info}
  assert drift["HR"] > 0.9 and drift["label"] == 0.5
  assert max(v for k, v in drift.items() if k not in ("HR", "label")) < 0.05
  assert {i.path.step[0]: i.drift_measurements[0].value
          for i in test.drift_skew_info}["label"] == 0
  assert [r.type for r in test.anomaly_info["eda_level_real"].reason] == [
      Info.FLOAT_TYPE_BIG_FLOAT]
  assert "max 70 is above the schema's maximum 60" in test.anomaly_info[
      "eda_level_real"].description
  assert test.anomaly_info["steps"].severity == Info.ERROR
  assert [r.type for r in test.anomaly_info["steps"].reason] == [
      Info.FEATURE_TYPE_LOW_FRACTION_PRESENT]
  stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(
      (tmp_path / statistics.FOLDER / statistics.STATISTICS_NAME).read_bytes())
  assert [d.name for d in stats.datasets] == ["grid", "pretrain/train", "pretrain/valid",
                                               "pretrain/test"]
  assert [d.num_examples for d in stats.datasets] == [400, 60, 60, 60]
  report = (tmp_path / statistics.FOLDER / statistics.REPORT_NAME).read_text()
  for shown in ("COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", "FLOAT_TYPE_BIG_FLOAT",
                "COMPARATOR_L_INFTY_HIGH", "<h2>Activity labels</h2>"):
    assert shown in report, shown
  label = [f for f in stats.datasets[2].features if f.path.step[0] == "label"][0]
  assert statistics.label_shares(label) == {"unknown": 0.5, "run": 0.5}
  assert not [f for f in stats.datasets[0].features if f.path.step[0] == "label"]


def test_validate_reports_values_below_range_and_infinities():
  values = np.full((2, T, F), np.nan)
  values[:, :, HR] = 60.0
  values[0, 0, HR], values[1, 0, HR] = 10.0, np.inf
  values[:, :, STEPS] = 5.0  # the sketch skips empty features: its answers must align
  stats = _combine(values)
  assert (stats.features[HR].num_stats.median, stats.features[STEPS].num_stats.median) == (
      60.0, 5.0)
  stats.name = "pretrain/train"
  found = statistics.validate(stats, window_schema(T))
  assert [r.type for r in found.anomaly_info["HR"].reason] == [
      Info.FLOAT_TYPE_SMALL_FLOAT, Info.FLOAT_TYPE_HAS_INF]
  assert "min 10 is below the schema's minimum 30" in found.anomaly_info["HR"].description


W = 60


@pytest.fixture(scope="module")
def run(tmp_path_factory, raw):
  root = str(tmp_path_factory.mktemp("statistics"))
  cohort = raw.make_cohort(6, 400, seed=5)
  raw.write(raw.wide_frame(cohort), f"{root}/participant_inputs/cohort-export.csv")
  main.run(raw.pipeline_args([f"{root}/participant_inputs/cohort-export.csv"], f"{root}/out",
                             f"--window_minutes={W}", "--split=0.5,0.25,0.25", "--statistics"))
  return root, cohort


def test_pipeline_writes_statistics_listed_in_the_manifest(run):
  root, cohort = run
  out = f"{root}/out"
  body = manifest.load(out)
  listed = body["data_statistics"]
  assert listed["statistics"] == "statistics/statistics.pb"
  assert listed["report"] == "statistics/report.html"
  assert body["options"]["statistics"] is True
  for path in [listed["statistics"], listed["report"], *listed["anomalies"].values()]:
    assert os.path.isfile(os.path.join(out, path)), path
  assert not os.path.exists(os.path.join(out, ".staging"))
  stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(
      open(os.path.join(out, listed["statistics"]), "rb").read())
  by_name = {d.name: d for d in stats.datasets}
  grid = by_name["grid"]
  assert grid.num_examples == sum(len(v) for _, v in cohort.values())
  every = np.concatenate([v for _, v in cohort.values()])
  np.testing.assert_allclose(grid.features[HR].num_stats.mean, np.nanmean(every[:, HR]),
                             rtol=1e-5)
  written = body["counts"]["windows"]["pretrain"]["written"]
  for split, n in written.items():
    if n:
      assert by_name[f"pretrain/{split}"].num_examples == n
  assert set(listed["anomalies"]) == set(by_name)


def test_statistics_outputs_hold_no_raw_ids_or_paths(run):
  root, cohort = run
  needles = privacy.identifiers(cohort, [f"{root}/participant_inputs/cohort-export.csv"], root)
  assert privacy.find_identifiers(f"{root}/out/statistics", needles) == {}


def test_report_renders_in_headless_chromium(run, tmp_path):
  """The report, opened offline by Debian's chromium, paints tables and histograms."""
  from matplotlib import image
  browser = shutil.which("chromium") or shutil.which("chromium-browser")
  if browser is None:
    if os.environ.get("LSM_SKIP_BROWSER") == "1":
      pytest.skip("LSM_SKIP_BROWSER=1 and no chromium")
    pytest.fail("chromium is not installed (apt-get install chromium; `make test` does "
                "it), or set LSM_SKIP_BROWSER=1")
  report = os.path.join(run[0], "out", "statistics", "report.html")
  shot = tmp_path / "report.png"
  subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                  f"--screenshot={shot}", "--window-size=1200,900", f"file://{report}"],
                 check=True, capture_output=True, timeout=120)
  pixels = image.imread(str(shot))[..., :3]
  assert pixels.shape[:2] == (900, 1200)
  painted = (pixels < 0.95).any(axis=-1).mean()
  colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
  assert painted > 0.03, f"{painted:.1%} of the screenshot is not white"
  assert colours > 20, f"only {colours} colours in the screenshot"


def test_write_outputs_on_a_non_local_file_system(remote):
  """Everything goes through Beam's FileSystems, so gs:// outputs work as local ones."""
  stats = _combine(_values(np.random.default_rng(2), 4))
  listed = statistics.write_outputs([stats], remote.url("out/.staging/run"), T, 0.1)
  written = sorted(str(p.relative_to(remote.dir)) for p in remote.dir.rglob("*") if p.is_file())
  assert written == ["out/.staging/run/statistics/anomalies-pretrain-train.pbtxt",
                     "out/.staging/run/statistics/report.html",
                     "out/.staging/run/statistics/statistics.pb"]
  assert listed["anomalies"] == {"pretrain/train": "statistics/anomalies-pretrain-train.pbtxt"}
  assert listed["anomaly_count"] == {"pretrain/train": 0}
