"""benchmarks/discriminative_quality.py: the verdicts' arithmetic on a fixture (no
pipeline, no training)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import discriminative_quality  # noqa: E402  pylint: disable=g-import-not-at-top


def _entry(probe, fine_tune, supervised, forest):
  return {"linear_probe": {"accuracy": probe}, "fine_tune": {"accuracy": fine_tune},
          "supervised": {"accuracy": supervised}, "random_forest": {"accuracy": forest}}


RESULTS = {
    "exercise_detection": _entry(0.80, 0.85, 0.82, 0.84),
    "exercise_detection_5_shot": _entry(0.70, 0.60, 0.55, 0.72),
    "exercise_detection_20_shot": _entry(0.74, 0.78, 0.79, 0.75),
    "activity_recognition": _entry(0.40, 0.45, 0.30, 0.50),
}


def test_shot_tasks_collects_every_label_budget_of_a_task():
  assert set(discriminative_quality.shot_tasks(RESULTS, "exercise_detection")) == {
      "all", "5", "20"}
  assert set(discriminative_quality.shot_tasks(RESULTS, "activity_recognition")) == {"all"}


def test_verdicts_take_the_better_pretrained_method_at_each_budget():
  v = discriminative_quality.verdicts(RESULTS)["exercise_detection"]
  rows = v["by_labels"]
  assert rows["all"]["pretrained_method"] == "fine_tune"
  assert abs(rows["all"]["vs_supervised"] - 0.03) < 1e-9
  assert abs(rows["all"]["vs_random_forest"] - 0.01) < 1e-9
  assert rows["5"]["pretrained_method"] == "linear_probe"
  assert abs(rows["5"]["vs_random_forest"] + 0.02) < 1e-9   # 0.70 vs the forest's 0.72
  # 20-shot: fine-tune 0.78 < scratch 0.79, so the claim fails at one budget
  assert not v["beats_supervised_at_every_budget"]
  assert v["beats_forest_with_all_labels"]
  assert v["beats_forest_at_budgets"] == ["all", "20"]
  assert v["budgets"] == ["all", "5", "20"]
  a = discriminative_quality.verdicts(RESULTS)["activity_recognition"]
  assert a["beats_supervised_at_every_budget"] and not a["beats_forest_with_all_labels"]
