"""Discriminative tasks: exercise detection and activity recognition from embeddings.

Run on the "labelled" dataset (windows centred on labelled sessions): a linear probe
on mean-pooled embeddings, full fine-tuning, a supervised baseline (the same encoder
from scratch), a random forest on window summary statistics (trainer.forest: the
classical bar) and few-shot runs of all four over seeds, every method of a few-shot
size training on the same k-per-class draws.

To add a task over another record field, add one entry to TASKS.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Sequence

from absl import logging
import numpy as np

from schemas.constants import ACTIVITY_CLASSES
from trainer.evaluators import Outcome

SECTION = "discriminative"
# name: (record field, number of classes, class names)
TASKS: dict[str, tuple[str, int, Sequence[str]]] = {
    "exercise_detection": ("exercise", 2, ("non_exercise", "exercise")),
    "activity_recognition": ("label", len(ACTIVITY_CLASSES), ACTIVITY_CLASSES),
}


def task_examples(windows, field: str, num_classes: int) -> np.ndarray:
  """Indices of windows that carry a label of this task (unknown -1 left out)."""
  labels = windows[field]
  return np.flatnonzero((labels >= 0) & (labels < num_classes))


def run_discriminative(model, train_windows, test_windows, tasks, *, seeds: Sequence[int],
                       shots: Sequence[int], finetune_config, few_shot_config
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
  """(results' discriminative section, notes on what was skipped and why)."""
  from trainer import finetune, forest, metrics, models, probe  # pylint: disable=g-import-not-at-top
  model_config = models.ModelConfig.from_config(model.config.model)
  train_embed = model.embed(train_windows["values"], train_windows["observed"])
  test_embed = model.embed(test_windows["values"], test_windows["observed"])
  train_stats = forest.window_summary_statistics(train_windows["values"],
                                                 train_windows["observed"])
  test_stats = forest.window_summary_statistics(test_windows["values"],
                                                test_windows["observed"])
  results: dict[str, Any] = {}
  notes: dict[str, Any] = {}
  for task in tasks:
    field, num_classes, names = TASKS[task]
    tr = task_examples(train_windows, field, num_classes)
    te = task_examples(test_windows, field, num_classes)
    y_tr, y_te = train_windows[field][tr], test_windows[field][te]
    notes[task] = {"train_windows": int(tr.size), "test_windows": int(te.size),
                   "train_subjects": int(np.unique(train_windows["subject"][tr]).size),
                   "test_subjects": int(np.unique(test_windows["subject"][te]).size),
                   "train_class_counts": np.bincount(y_tr, minlength=num_classes).tolist()}
    if np.unique(y_tr).size < 2 or te.size == 0:
      notes[task]["skipped"] = "fewer than 2 classes in train or no test windows"
      continue

    def classifier_runs(pretrained, pick_fn, config):
      started = time.perf_counter()
      runs = []
      for seed in seeds:
        pick = pick_fn(seed)
        windows = len(y_tr[pick])
        predict = finetune.train_classifier(
            train_windows["values"][tr][pick], train_windows["observed"][tr][pick],
            y_tr[pick], num_classes, model_config, pretrained=pretrained, config=config,
            seed=seed)
        runs.append(metrics.classification_metrics(
            y_te, predict(test_windows["values"][te], test_windows["observed"][te]),
            num_classes))
      logging.info("%s %s, %d windows x %d steps x %d seeds: %.0f s", task,
                   "fine-tune" if pretrained is not None else "supervised",
                   windows, config.steps, len(seeds),
                   time.perf_counter() - started)
      return metrics.mean_and_spread(runs)

    def forest_runs(pick_fn):
      return metrics.mean_and_spread([
          forest.random_forest(train_stats[tr][pick_fn(seed)], y_tr[pick_fn(seed)],
                               test_stats[te], y_te, num_classes, seed=seed)
          for seed in seeds])

    everything = lambda seed: slice(None)
    entry = {"linear_probe": probe.probe_over_seeds(train_embed[tr], y_tr, test_embed[te],
                                                    y_te, num_classes, seeds=seeds),
             "fine_tune": classifier_runs(model.params, everything, finetune_config),
             "supervised": classifier_runs(None, everything, finetune_config),
             "random_forest": forest_runs(everything)}
    results[task] = entry
    for k in shots:
      name = f"{task}_{k}_shot"
      # pick(seed): that seed's k-per-class draw, the same one the probe trains on
      pick = functools.partial(probe.few_shot_indices, y_tr, k, num_classes=num_classes,
                               class_names=names)
      try:
        few = {"linear_probe": probe.probe_over_seeds(
                   train_embed[tr], y_tr, test_embed[te], y_te, num_classes, seeds=seeds,
                   shots=k, class_names=names),
               "fine_tune": classifier_runs(model.params, pick, few_shot_config),
               "supervised": classifier_runs(None, pick, few_shot_config),
               "random_forest": forest_runs(pick)}
      except ValueError as e:  # a class with fewer than k examples: say so, go on
        notes[task][f"{k}_shot_skipped"] = str(e)
        continue
      results[name] = few
  return results, notes


def run(context, tasks: Sequence[str]) -> Outcome:
  """The evaluator: every task on the context's labelled train and test windows
  (either absent: skipped, with a note saying why)."""
  if context.labelled_train is None or context.labelled_test is None:
    context.notes["discriminative"] = (
        "skipped: the pipeline output has no 'labelled' train and test/valid windows "
        "(run lsm-pipeline with --labels)")
    return Outcome()
  context.notes["discriminative_split"] = context.labelled_split
  options = context.options
  results, context.notes["discriminative_tasks"] = run_discriminative(
      context.model, context.labelled_train, context.labelled_test, tasks,
      seeds=options.seeds, shots=options.shots, finetune_config=options.finetune_config,
      few_shot_config=options.few_shot_config)
  return Outcome(results)
