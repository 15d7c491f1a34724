"""RUN/eval/results.json and the readable RUN/eval/report.md.

results.json (RESULTS_VERSION 1):
  generative[task][method] = {"mae", "mse", "count", "per_feature": {feature:
      {"mae", "mse", "count"}}}  (mae/mse normalised; per_feature in physical units)
  discriminative[task][method] = {"accuracy", "macro_f1", "map", "accuracy_std",
      "macro_f1_std", "map_std", "runs"}  (mean and spread over seeds)
  improvement["generative"][task] = metrics.relative_improvement of the model's MAE
      over the best baseline (every generative method other than the model and the
      REFERENCES, e.g. the synthetic oracle: ceilings, not baselines); a task none of
      whose windows leaves anything visible (data[GENERATIVE_BASIS]) has no entry:
      every method can only guess a constant there, so a margin would say nothing;
  improvement["discriminative"][task][method] = the same on accuracy, for every
      method that is not a discriminative baseline, against the best baseline;
  scaling (optional): scaling_law.fit_sweep's output;
  budget_note: the caller's plain statement of the compute/data budget;
  data: the caller's summary of the data the numbers rest on ({name: number, text or
      a flat/nested mapping}, e.g. windows per split, subjects, dead-lettered rows);
      data[GENERATIVE_BASIS][task] (lsm-eval) = {"windows",
      "windows_without_visible_input", "subjects", "features_scored", "features",
      "features_without_scores", "scored_positions_per_feature"}: what that task's
      numbers rest on;
  meta: whatever the caller records (model config, data dir, seeds, commit);
  figures: {caption: path relative to RUN/eval}.
Task names: generative tasks are those of trainer/evaluators (interpolation_30m,
extrapolation_60m, random_imputation_80, sensor_imputation_6); few-shot results go
in as their own discriminative tasks, e.g. activity_recognition_10_shot.
The markdown is rendered from the results dict alone, so the two never disagree.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from schemas.features import FEATURES
from trainer import paths
from trainer.metrics import relative_improvement

RESULTS_VERSION = 1
RESULTS_NAME = "results.json"
REPORT_NAME = "report.md"
MODEL = "model"
GENERATIVE_BASELINES = ("mean_fill", "linear_interpolation", "nearest", "mice",
                        "cross_feature")
# data[GENERATIVE_BASIS][task]: what a generative task's numbers rest on (lsm-eval's
# trainer/evaluators/generative.basis); the generative section renders it.
GENERATIVE_BASIS = "generative tasks rest on"
# Where the model's quality at a benchmark's budget is measured (the report points
# there when this run's model loses).
BENCHMARK = ('benchmarks/README.md, sections "Generative quality" (synthetic cohort, '
             'benchmarks/results/generative_quality.json) and "Real recordings: model vs '
             'baselines" (Fitbit exports, benchmarks/results/real_quality.json)')
# Generative methods that are neither the model nor baselines: reported beside them,
# never the best baseline (lsm-eval --oracle's noise-free signal).
REFERENCES = ("oracle", "oracle_smooth")
DISCRIMINATIVE_BASELINES = ("supervised", "random_forest")
GENERATIVE_KEYS = ("mae", "mse")
DISCRIMINATIVE_KEYS = ("accuracy", "macro_f1", "map")
_UNITS = {f.name: f.unit for f in FEATURES}


def _plain(value: Any) -> Any:
  """JSON-safe copy: numpy scalars to Python, NaN/inf to None (strict JSON)."""
  if isinstance(value, Mapping):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple, np.ndarray)):
    return [_plain(v) for v in value]
  if isinstance(value, (np.integer, np.bool_)):
    return value.item()
  if isinstance(value, (float, np.floating)):
    return float(value) if math.isfinite(value) else None
  return value


def generative_tasks() -> dict[str, Any]:
  """The generative task names the evaluators define (trainer/evaluators/)."""
  from trainer import evaluators  # pylint: disable=g-import-not-at-top
  return evaluators.tasks_of("generative")


def _check_entries(section: str, tasks: Mapping[str, Mapping[str, Mapping[str, Any]]],
                   keys: Sequence[str]) -> None:
  for task, methods in tasks.items():
    if section == "generative" and task not in generative_tasks():
      raise ValueError(f"generative task name {task!r} is not one of "
                       f"trainer/evaluators' generative TASKS {list(generative_tasks())}")
    for method, entry in methods.items():
      missing = [k for k in keys if k not in entry]
      if missing:
        raise ValueError(f"{section}[{task!r}][{method!r}] lacks {missing}")


def blind(data: Mapping[str, Any] | None, task: str) -> bool:
  """Whether every window a generative task scores left nothing visible (lsm-eval's
  basis), e.g. sensor imputation of a one-feature export: no method has an input."""
  b = (data or {}).get(GENERATIVE_BASIS, {}).get(task, {})
  return bool(b.get("windows")) and b.get("windows_without_visible_input") == b["windows"]


def build_results(generative: Mapping[str, Mapping[str, Mapping[str, Any]]],
                  discriminative: Mapping[str, Mapping[str, Mapping[str, Any]]], *,
                  budget_note: str, meta: Mapping[str, Any] | None = None,
                  scaling: Mapping[str, Any] | None = None,
                  figures: Mapping[str, str] | None = None,
                  data: Mapping[str, Any] | None = None,
                  discriminative_baselines: Sequence[str] = DISCRIMINATIVE_BASELINES
                  ) -> dict[str, Any]:
  """Validates the per-task entries and adds the model-versus-baseline comparisons."""
  if not budget_note or not budget_note.strip():
    raise ValueError("budget_note is required: say plainly what budget produced these "
                     "numbers (steps, windows, model size, hardware)")
  _check_entries("generative", generative, GENERATIVE_KEYS)
  _check_entries("discriminative", discriminative, DISCRIMINATIVE_KEYS)
  improvement: dict[str, Any] = {"generative": {}, "discriminative": {}}
  for task, methods in generative.items():
    baselines = {m: e["mae"] for m, e in methods.items()
                 if m != MODEL and m not in REFERENCES}
    if MODEL in methods and baselines and not blind(data, task):
      improvement["generative"][task] = {
          "metric": "mae", **relative_improvement(methods[MODEL]["mae"], baselines)}
  for task, methods in discriminative.items():
    baselines = {m: e["accuracy"] for m, e in methods.items()
                 if m in discriminative_baselines}
    if baselines:
      improvement["discriminative"][task] = {
          m: {"metric": "accuracy",
              **relative_improvement(e["accuracy"], baselines, higher_is_better=True)}
          for m, e in methods.items() if m not in discriminative_baselines}
  return _plain({
      "results_version": RESULTS_VERSION,
      "budget_note": budget_note.strip(),
      "data": data or {},
      "generative": generative,
      "discriminative": discriminative,
      "improvement": improvement,
      "scaling": scaling or {},
      "meta": meta or {},
      "figures": figures or {},
  })


def _number(value: Any, digits: int = 4) -> str:
  return "n/a" if value is None else f"{value:.{digits}g}"


def _percent(value: Any) -> str:
  """+12.3%; a margin under 0.05% gets two more digits, so a near tie that counts as a
  loss never reads "-0.0%"."""
  if value is None:
    return "n/a"
  return f"{100 * value:+.{3 if 0 < abs(value) < 5e-4 else 1}f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
          + ["| " + " | ".join(row) + " |" for row in rows])


def _inline(value: Any) -> str:
  """One line for a data-summary value: mappings as "key value, ...", nested ones in
  brackets, so windows per dataset and split stay readable in a bullet."""
  if isinstance(value, Mapping):
    return ", ".join(f"{k} ({_inline(v)})" if isinstance(v, Mapping) else f"{k} {_inline(v)}"
                     for k, v in value.items())
  if isinstance(value, float):
    return _number(value, 3)
  return str(value)


def _data_section(results: Mapping[str, Any]) -> list[str]:
  return (["## Data", ""] + [f"- {name}: {_inline(v)}" for name, v in results["data"].items()
                             if name != GENERATIVE_BASIS] + [""])


# Why two baselines can give the same numbers (trainer/baselines.py's fallbacks).
FALLBACKS = (
    "cross_feature predicts from the other features visible at the same minute; "
    "where none is (whole minutes hidden, or an export with one feature) it is linear "
    "interpolation in time. mice regresses features on each other within the window; "
    "with one feature it has nothing to regress on and is mean fill.")


def _identical_lines(tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
  """Names the baselines that scored exactly alike on a task and says why they can."""
  same = []
  for task, entries in tasks.items():
    groups: dict[Any, list[str]] = {}
    for m in GENERATIVE_BASELINES:
      if m in entries and entries[m]["mae"] is not None:
        groups.setdefault((entries[m]["mae"], entries[m]["mse"]), []).append(m)
    same += [f"{task} ({' = '.join(g)})" for g in groups.values() if len(g) > 1]
  if not same:
    return []
  return [f"Identical baseline columns: {'; '.join(same)}. {FALLBACKS}", ""]


def _run_lines(meta: Mapping[str, Any]) -> list[str]:
  """One bullet per meta entry; a mapping (lsm-eval's notes, seconds by phase) gets one
  indented bullet per key instead of a pasted dict."""
  lines = []
  for k, v in meta.items():
    if isinstance(v, Mapping):
      lines += [f"- {k}:"] + [f"  - {kk}: {_inline(vv)}" for kk, vv in v.items()]
    else:
      lines.append(f"- {k}: {_inline(v)}")
  return lines


def _basis_lines(basis: Mapping[str, Mapping[str, Any]]) -> list[str]:
  """One line per generative task: the windows, subjects and features it rests on."""
  lines = []
  for task, b in basis.items():
    missing = b["features_without_scores"]
    nothing = b.get("windows_without_visible_input", 0)
    lines.append(f"- {task}: rests on {b['windows']} windows of {b['subjects']} subject"
                 f"{'' if b['subjects'] == 1 else 's'}; {b['features_scored']} of "
                 f"{b['features']} features scored"
                 + (f" (none for {', '.join(missing)})" if 0 < len(missing) <= 8 else
                    f" (none for the other {len(missing)})" if missing else "")
                 + (f"; {nothing} of the windows had nothing visible to any method"
                    if nothing else ""))
  return ["### What each number rests on", "",
          "Windows and distinct subjects with at least one scored position (hidden and "
          "observed); a feature with none is not judged by that task.", ""] + lines + [""]


def _method_order(tasks: Mapping[str, Mapping[str, Any]], first: Sequence[str]) -> list[str]:
  seen = [m for m in first if any(m in methods for methods in tasks.values())]
  for methods in tasks.values():
    seen += [m for m in methods if m not in seen]
  return seen


def _generative_section(results: Mapping[str, Any]) -> list[str]:
  tasks = results["generative"]
  methods = _method_order(tasks, (MODEL,) + GENERATIVE_BASELINES)
  unjudged = [t for t in tasks if blind(results["data"], t)]
  lines = ["## Generative tasks", "",
           "Errors over the hidden positions that were observed in the raw data, in "
           "normalised units; every method saw the same masks. Lower is better; the "
           "best method of each task is in bold. The last column is the model's MAE "
           "reduction relative to the best baseline (positive: the model is better).", ""]
  for metric in GENERATIVE_KEYS:
    rows = []
    for task, entries in tasks.items():
      values = {m: entries[m][metric] for m in methods if m in entries}
      best = None if task in unjudged else min(
          (v for m, v in values.items() if v is not None and m not in REFERENCES), default=None)
      row = [task] + [("**%s**" if values.get(m) == best else "%s") % _number(values.get(m))
                      if m in values else "" for m in methods]
      if metric == "mae":
        gain = results["improvement"]["generative"].get(task)
        row.append(f"{_percent(gain['relative_improvement'])} vs {gain['best_baseline']}"
                   if gain else "not judged: nothing visible" if task in unjudged else "n/a")
      rows.append(row)
    header = ["task"] + methods + (["model vs best baseline"] if metric == "mae" else [])
    lines += [f"### {metric.upper()}", ""] + _table(header, rows) + [""]
  gains = [g["relative_improvement"] for g in results["improvement"]["generative"].values()]
  if gains:
    wins = sum(g is not None and g > 0 for g in gains)
    lines += [f"The model's MAE beats the best baseline on {wins} of {len(gains)} tasks.", ""]
    if wins < len(gains):
      lines += [f"At this run's budget the model loses to the best baseline on "
                f"{len(gains) - wins} of {len(gains)} tasks; how the default recipe "
                f"compares at the benchmark's budget is in {BENCHMARK}.", ""]
  lines += _identical_lines(tasks)
  if unjudged:
    lines += [f"Not judged: {', '.join(unjudged)}. Every scored window hid all it "
              "observed, so every method could only guess a constant.", ""]
  if results["data"].get(GENERATIVE_BASIS):
    lines += _basis_lines(results["data"][GENERATIVE_BASIS])
  if any(m in REFERENCES for m in methods):
    lines += ["oracle: the synthetic generator's noise-free signal (lsm-eval --oracle), the "
              "lowest error any method could reach; oracle_smooth: without the per-minute "
              "terms shared by features too, about the lowest where whole minutes are "
              "hidden (interpolation, extrapolation). Ceilings, never bold and never the "
              "best baseline.", ""]
  model_tasks = [t for t, e in tasks.items() if "per_feature" in e.get(MODEL, {})]
  if model_tasks:
    features = list(tasks[model_tasks[0]][MODEL]["per_feature"])
    scored = [name for name in features
              if any(tasks[t][MODEL]["per_feature"][name]["mae"] is not None
                     for t in model_tasks)]
    rows = [[name, _UNITS.get(name, "")]
            + [_number(tasks[t][MODEL]["per_feature"][name]["mae"], 3) for t in model_tasks]
            for name in scored]
    lines += ["### Model MAE per feature, physical units", "",
              "Inverted with the pipeline's training statistics (x = z * std + mean); "
              "n/a where the task scored nothing for that feature"
              + (f"; left out: {len(features) - len(scored)} feature(s) no task scored"
                 if len(scored) < len(features) else "") + ".", ""]
    lines += _table(["feature", "unit"] + model_tasks, rows) + [""]
  return lines


def _discriminative_section(results: Mapping[str, Any]) -> list[str]:
  tasks = results["discriminative"]
  methods = _method_order(tasks, ())
  lines = ["## Discriminative tasks", "",
           "Mean and spread (std over seeds, runs in brackets) of each metric. "
           "Higher is better.", ""]
  for metric in DISCRIMINATIVE_KEYS:
    rows = []
    for task, entries in tasks.items():
      row = [task]
      for m in methods:
        entry = entries.get(m)
        row.append("" if entry is None else
                   f"{_number(entry[metric], 3)} ± {_number(entry.get(metric + '_std'), 2)}"
                   f" ({entry.get('runs', 1)})")
      rows.append(row)
    lines += [f"### {metric}", ""] + _table(["task"] + methods, rows) + [""]
  gains = results["improvement"]["discriminative"]
  rows = [[task, m, _percent(g["relative_improvement"]), g["best_baseline"]]
          for task, per_method in gains.items() for m, g in per_method.items()]
  if rows:
    lines += ["### Accuracy relative to the best baseline (the same ViT from scratch, a "
              "random forest on window summary statistics)", ""]
    lines += _table(["task", "method", "relative accuracy gain", "baseline"], rows) + [""]
  return lines


def _scaling_section(results: Mapping[str, Any]) -> list[str]:
  rows = []
  for axis, fit in results["scaling"].items():
    if "error" in fit:
      rows.append([axis, "not fitted: " + fit["error"], "", "", "", ""])
      continue
    ci = {k: ("" if fit.get(k + "_ci") is None else
              " [%s, %s]" % tuple(_number(v, 3) for v in fit[k + "_ci"])) for k in "abc"}
    rows.append([axis] + [_number(fit[k], 4) + ci[k] for k in "abc"]
                + [_number(fit["r2"], 4), str(fit["n"])])
  lines = ["## Scaling laws", "",
           "L = a + b * X^c with 95% intervals ("
           + next((f["ci_method"] for f in results["scaling"].values() if "ci_method" in f),
                  "no fit") + ").", ""]
  return lines + _table(["axis", "a", "b", "c", "R^2", "points"], rows) + [""]


# Figures shown inside a section, by caption prefix (lsm-eval's captions); any other
# figure goes to the closing "Figures" section.
SECTION_FIGURES = {"training": ("training curve",),
                   "generative": ("reconstructions", "generative"),
                   "discriminative": ("discriminative",)}


def render_markdown(results: Mapping[str, Any]) -> str:
  """Budget, data, training curve, generative tables and reconstructions,
  discriminative tables, scaling fits, then any remaining figures."""
  unplaced = dict(results["figures"])

  def figures(section: str) -> list[str]:
    chosen = [c for c in unplaced if c.startswith(SECTION_FIGURES.get(section, ()))]
    return [line for c in chosen for line in (f"![{c}]({unplaced.pop(c)})", "")]

  lines = ["# LSM evaluation report", "", "**Budget.** " + results["budget_note"], ""]
  if results["data"]:
    lines += _data_section(results)
  if results["meta"]:
    lines += ["## Run", ""] + _run_lines(results["meta"]) + [""]
  training = figures("training")
  if training:
    lines += ["## Training", ""] + training
  if results["generative"]:
    lines += _generative_section(results) + figures("generative")
  if results["discriminative"]:
    lines += _discriminative_section(results) + figures("discriminative")
  if results["scaling"]:
    lines += _scaling_section(results)
  if unplaced:
    lines += ["## Figures", ""]
    for caption, path in unplaced.items():
      lines += [f"![{caption}]({path})", ""]
  return "\n".join(lines)


def write_report(run_dir: str, generative: Mapping[str, Any],
                 discriminative: Mapping[str, Any], *, budget_note: str,
                 meta: Mapping[str, Any] | None = None,
                 scaling: Mapping[str, Any] | None = None,
                 figures: Mapping[str, str] | None = None,
                 data: Mapping[str, Any] | None = None,
                 discriminative_baselines: Sequence[str] = DISCRIMINATIVE_BASELINES
                 ) -> tuple[str, str]:
  """Writes RUN/eval/results.json and RUN/eval/report.md; returns their paths.

  figures: {caption: PNG path}, absolute or relative to RUN/eval; each must exist and
  is linked relative to RUN/eval so the report can be moved with its folder. The
  plots named in scaling fits (fit_sweep's "figure") are linked the same way.
  """
  eval_dir = paths.join(run_dir, "eval")
  paths.makedirs(eval_dir)

  def link(caption: str, path: str) -> str:
    absolute = path if os.path.isabs(path) or not paths.is_local(path) else os.path.join(
        eval_dir, path)
    if not paths.path(absolute).is_file():
      raise FileNotFoundError(f"figure {caption!r}: {absolute} does not exist")
    return os.path.relpath(absolute, eval_dir)

  links = {caption: link(caption, path) for caption, path in (figures or {}).items()}
  scaling = {axis: dict(fit) for axis, fit in (scaling or {}).items()}
  for axis, fit in scaling.items():  # fit_sweep's plots join the figures by themselves
    if fit.get("figure"):
      fit["figure"] = link(f"{axis} scaling", fit["figure"])
      links.setdefault(f"{axis} scaling", fit["figure"])
  results = build_results(generative, discriminative, budget_note=budget_note, meta=meta,
                          scaling=scaling, figures=links, data=data,
                          discriminative_baselines=discriminative_baselines)
  results_path = paths.join(eval_dir, RESULTS_NAME)
  report_path = paths.join(eval_dir, REPORT_NAME)
  for path, text in ((results_path, json.dumps(results, indent=2, allow_nan=False)),
                     (report_path, render_markdown(results))):
    paths.write_text(path, text + "\n")
  return results_path, report_path
