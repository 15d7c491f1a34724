import json

import numpy as np
import pytest

from schemas.features import FEATURE_NAMES
from trainer import baselines, metrics, report, scaling_law


def generative_entry(mae, per_feature=False):
  entry = {"mae": mae, "mse": mae * 2, "count": 100}
  if per_feature:
    entry["per_feature"] = {name: {"mae": mae * 10, "mse": mae * 100, "count": 4}
                            for name in FEATURE_NAMES}
    entry["per_feature"]["steps"] = {"mae": None, "mse": None, "count": 0}
  return entry


def inputs():
  generative = {
      "interpolation_30m": {"model": generative_entry(0.5, True),
                            "mean_fill": generative_entry(0.9),
                            "linear_interpolation": generative_entry(0.625),
                            "nearest": generative_entry(0.7),
                            "mice": generative_entry(0.8)},
      "extrapolation_60m": {"model": generative_entry(0.9, True),
                            "mean_fill": generative_entry(0.8),
                            "linear_interpolation": generative_entry(1.0)},
  }
  probe = {"accuracy": 0.6, "macro_f1": 0.5, "map": np.float64(0.55),
           "accuracy_std": 0.02, "macro_f1_std": 0.01, "map_std": 0.0, "runs": 3}
  discriminative = {
      "exercise_detection": {"linear_probe": {**probe, "accuracy": 0.9},
                             "supervised": {**probe, "accuracy": 0.75}},
      "activity_recognition_5_shot": {"linear_probe": {**probe, "map": float("nan")}},
  }
  return generative, discriminative


def test_report_files_hold_the_expected_keys(tmp_path):
  generative, discriminative = inputs()
  x = np.geomspace(1e3, 1e6, 5)
  figure = scaling_law.plot_power_law(str(tmp_path / "eval" / "figures" / "params.png"),
                                      x, x ** -0.3, None, "parameters")
  fits = {"params": {**scaling_law.fit_power_law(x, scaling_law.power_law(x, 0.1, 5, -0.3)),
                     "figure": str(tmp_path / "sweep" / "scaling_params.png")},
          "compute": {"error": "compute scaling: 2 distinct x values"}}
  scaling_law.plot_power_law(fits["params"]["figure"], x, x ** -0.3, None, "parameters")
  results_path, report_path = report.write_report(
      str(tmp_path), generative, discriminative,
      budget_note="Tiny model, 600 steps of batch 32 on 2 CPU cores; not LSM's budget.",
      meta={"checkpoint": "step 600"}, scaling=fits,
      figures={"loss curve": figure},
      data={"subjects per split": {"train": 14, "test": 5},
            "windows per split": {"pretrain": {"train": 214, "test": 85}},
            "mean missing ratio": 0.29676})
  assert results_path == str(tmp_path / "eval" / "results.json")
  with open(results_path) as f:
    results = json.load(f)  # strict JSON: NaN became null
  assert set(results) == {"results_version", "budget_note", "data", "generative",
                          "discriminative",
                          "improvement", "scaling", "meta", "figures"}
  model = results["generative"]["interpolation_30m"]["model"]
  assert {"mae", "mse", "per_feature"} <= set(model)
  assert set(model["per_feature"]) == set(FEATURE_NAMES)
  assert results["discriminative"]["activity_recognition_5_shot"]["linear_probe"]["map"] is None
  gain = results["improvement"]["generative"]["interpolation_30m"]
  assert gain["best_baseline"] == "linear_interpolation"
  assert gain["relative_improvement"] == pytest.approx(0.2)
  loss = results["improvement"]["generative"]["extrapolation_60m"]
  assert loss["best_baseline"] == "mean_fill"
  assert loss["relative_improvement"] == pytest.approx(-0.125)
  probe_gain = results["improvement"]["discriminative"]["exercise_detection"]["linear_probe"]
  assert probe_gain["relative_improvement"] == pytest.approx(0.2)
  assert "activity_recognition_5_shot" not in results["improvement"]["discriminative"]
  assert results["figures"] == {"loss curve": "figures/params.png",
                                "params scaling": "../sweep/scaling_params.png"}
  assert results["scaling"]["params"]["figure"] == "../sweep/scaling_params.png"

  text = open(report_path).read()
  assert "Tiny model, 600 steps" in text
  assert "| interpolation_30m | **0.5** | 0.9 | 0.625 | 0.7 | 0.8 | +20.0% vs " \
         "linear_interpolation |" in text
  assert "-12.5% vs mean_fill" in text
  assert "beats the best baseline on 1 of 2 tasks" in text
  assert "- subjects per split: train 14, test 5" in text
  assert "- windows per split: pretrain (train 214, test 85)" in text
  assert "- mean missing ratio: 0.297" in text
  # A feature no task scored (steps here) is left out of the per-feature table, and said so.
  assert "| steps | steps/min |" not in text and "| HR | beats/min |" in text
  assert "left out: 1 feature(s) no task scored." in text
  assert "0.9 ± 0.02 (3)" in text
  assert "not fitted: compute scaling" in text
  assert "![loss curve](figures/params.png)" in text
  assert "![params scaling](../sweep/scaling_params.png)" in text


def test_bad_inputs_are_refused(tmp_path):
  generative, discriminative = inputs()
  with pytest.raises(ValueError, match="budget_note is required"):
    report.write_report(str(tmp_path), generative, discriminative, budget_note=" ")
  with pytest.raises(ValueError, match="'interp_30'"):
    report.build_results({"interp_30": {}}, {}, budget_note="x")
  del discriminative["exercise_detection"]["supervised"]["map"]
  with pytest.raises(ValueError, match=r"\['exercise_detection'\]\['supervised'\] lacks"):
    report.build_results(generative, discriminative, budget_note="x")
  with pytest.raises(FileNotFoundError, match="figure 'curve'"):
    report.write_report(str(tmp_path), {}, {}, budget_note="x",
                        figures={"curve": "missing.png"})


def test_scored_tasks_flow_into_the_report(tmp_path):
  rng = np.random.default_rng(0)
  values = rng.normal(size=(3, 60, len(FEATURE_NAMES))).astype(np.float32)
  observed = rng.random(values.shape) > 0.1
  values[~observed] = 0
  gap = np.zeros_like(observed)
  gap[:, 20:30] = True
  truth = values.copy()

  def model(inputs, observed_in, hidden_in):  # stands in for a trained reconstruction
    return np.where(hidden_in, truth * 0.5, inputs)

  methods = {"model": model, **{k: baselines.BASELINES[k]
                                for k in ("mean_fill", "linear_interpolation", "nearest")}}
  stats = {name: {"mean": 10.0, "std": 2.0, "count": 5} for name in FEATURE_NAMES}
  generative = metrics.score_tasks(methods, values, observed, {"interpolation_10m": gap},
                                   stats)
  results_path, _ = report.write_report(str(tmp_path), generative, {},
                                        budget_note="unit test, no training")
  with open(results_path) as f:
    results = json.load(f)
  entry = results["generative"]["interpolation_10m"]
  assert set(entry) == set(methods)
  assert entry["model"]["per_feature"]["HR"]["mae"] == pytest.approx(
      2 * np.abs(0.5 * values[:, 20:30, 0])[observed[:, 20:30, 0]].mean(), rel=1e-5)
  gain = results["improvement"]["generative"]["interpolation_10m"]
  best = min(entry[m]["mae"] for m in methods if m != "model")
  assert gain["relative_improvement"] == pytest.approx(
      (best - entry["model"]["mae"]) / best)


def test_report_says_what_each_generative_number_rests_on(tmp_path):
  generative, _ = inputs()
  basis = {"interpolation_30m": {
      "windows": 248, "subjects": 2, "features_scored": 24, "features": 26,
      "features_without_scores": ["steps", "jumps"],
      "scored_positions_per_feature": {"HR": 7440, "steps": 0}},
      "extrapolation_60m": {
      "windows": 1, "subjects": 1, "features_scored": 26, "features": 26,
      "features_without_scores": [], "scored_positions_per_feature": {"HR": 60}}}
  results_path, report_path = report.write_report(
      str(tmp_path), generative, {}, budget_note="unit test",
      data={report.GENERATIVE_BASIS: basis, "windows per split": {"train": 3}})
  with open(results_path) as f:
    assert json.load(f)["data"][report.GENERATIVE_BASIS] == basis
  text = open(report_path).read()
  assert ("- interpolation_30m: rests on 248 windows of 2 subjects; 24 of 26 features "
          "scored (none for steps, jumps)") in text
  assert "- extrapolation_60m: rests on 1 windows of 1 subject; 26 of 26 features scored\n" \
         in text
  assert "- windows per split: train 3" in text  # the data section keeps the rest
  assert "generative tasks rest on" not in text.split("## Generative tasks")[0]


def test_a_losing_model_is_pointed_at_the_benchmark(tmp_path):
  generative, _ = inputs()  # the model loses extrapolation_60m to mean fill
  _, report_path = report.write_report(str(tmp_path), generative, {}, budget_note="demo")
  text = open(report_path).read()
  assert ("At this run's budget the model loses to the best baseline on 1 of 2 tasks; "
          "how the default recipe compares at the benchmark's budget is in "
          'benchmarks/README.md, sections "Generative quality" (synthetic cohort, '
          'benchmarks/results/generative_quality.json) and "Real recordings: model vs '
          'baselines" (Fitbit exports, benchmarks/results/real_quality.json).') in text
  del generative["extrapolation_60m"]
  _, report_path = report.write_report(str(tmp_path), generative, {}, budget_note="demo")
  assert "loses to the best baseline" not in open(report_path).read()


def test_oracle_is_reported_but_never_the_best_baseline(tmp_path):
  generative, _ = inputs()
  generative["interpolation_30m"]["oracle"] = generative_entry(0.25)
  generative["interpolation_30m"]["oracle_smooth"] = generative_entry(0.375)
  results = report.build_results(generative, {}, budget_note="unit test")
  gain = results["improvement"]["generative"]["interpolation_30m"]
  assert gain["best_baseline"] == "linear_interpolation" and gain["best_value"] == 0.625
  assert gain["relative_improvement"] == pytest.approx((0.625 - 0.5) / 0.625)
  assert results["generative"]["interpolation_30m"]["oracle"]["mae"] == 0.25
  _, markdown = report.write_report(str(tmp_path), generative, {}, budget_note="unit test")
  with open(markdown) as f:
    text = f.read()
  row = next(line for line in text.splitlines() if line.startswith("| interpolation_30m"))
  assert "**0.5**" in row and "**0.25**" not in row and "0.25" in row   # model bold
  assert "0.375" in row and "**0.375**" not in row
  assert "Ceilings, never bold" in text


def test_a_task_with_nothing_visible_is_not_judged(tmp_path):
  """Sensor imputation of a one-feature export hides everything: the model's constant
  must not count as a win over mean fill."""
  generative, _ = inputs()
  generative["sensor_imputation_6"] = {"model": generative_entry(0.5),
                                       "mean_fill": generative_entry(0.7)}
  basis = {task: {"windows": 10, "windows_without_visible_input": 10 if "sensor" in task
                  else 3, "subjects": 2, "features_scored": 1, "features": 26,
                  "features_without_scores": [], "scored_positions_per_feature": {}}
           for task in generative}
  results_path, report_path = report.write_report(
      str(tmp_path), generative, {}, budget_note="unit test",
      data={report.GENERATIVE_BASIS: basis})
  with open(results_path) as f:
    assert set(json.load(f)["improvement"]["generative"]) == {"interpolation_30m",
                                                              "extrapolation_60m"}
  text = open(report_path).read()
  assert "| not judged: nothing visible |" in text
  row = next(line for line in text.splitlines() if line.startswith("| sensor_imputation_6 |"))
  assert "**" not in row  # no method is best where none could see anything
  assert "The model's MAE beats the best baseline on 1 of 2 tasks." in text
  assert "Not judged: sensor_imputation_6." in text
  assert "3 of the windows had nothing visible to any method" in text


def test_identical_baseline_columns_are_named_and_explained(tmp_path):
  generative, _ = inputs()
  generative["interpolation_30m"]["cross_feature"] = generative_entry(0.625)
  _, report_path = report.write_report(str(tmp_path), generative, {}, budget_note="unit test")
  text = open(report_path).read()
  assert ("Identical baseline columns: interpolation_30m "
          "(linear_interpolation = cross_feature). " + report.FALLBACKS) in text
  del generative["interpolation_30m"]["cross_feature"]
  _, report_path = report.write_report(str(tmp_path), generative, {}, budget_note="unit test")
  assert "Identical baseline columns" not in open(report_path).read()


def test_the_run_section_lists_nested_notes_one_per_line(tmp_path):
  generative, _ = inputs()
  _, report_path = report.write_report(
      str(tmp_path), generative, {}, budget_note="unit test",
      meta={"seed": 0, "notes": {"generative_split": "test", "generative_windows": 12}})
  text = open(report_path).read()
  assert "- seed: 0\n- notes:\n  - generative_split: test\n  - generative_windows: 12\n" in text
  assert "{" not in text.split("## Run")[1]


def test_a_near_tie_never_reads_minus_zero(tmp_path):
  generative, _ = inputs()
  generative["interpolation_30m"]["model"] = generative_entry(0.62505)  # linear: 0.625
  _, report_path = report.write_report(str(tmp_path), generative, {}, budget_note="unit test")
  text = open(report_path).read()
  assert "-0.008% vs linear_interpolation" in text and "-0.0%" not in text
