"""lsm-eval's PNG figures: the training curve, each evaluator's own figures and one bar
chart per report section."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from trainer import paths

# section: (metric, y label, title, error bars from the spread over seeds)
SECTION_CHARTS = {
    "generative": ("mae", "MAE (normalised)", "generative tasks: model vs baselines", False),
    "discriminative": ("macro_f1", "macro-F1 (mean ± std over seeds)",
                       "discriminative tasks", True),
}


def save(figure, path: str) -> str:
  """Lays the figure out and writes it as a PNG at path (local or a URI)."""
  figure.tight_layout()
  return paths.save_figure(figure, path)


def bar_chart(results: Mapping[str, Mapping[str, Mapping]], metric: str, *, ylabel: str,
              title: str, spread: bool = False):
  """Grouped bars of results[task][method][metric], one group per task; a method a
  task lacks (a skipped few-shot run) leaves a gap rather than shifting the others.
  With `spread`, the std over seeds (METRIC_std) as error bars."""
  from trainer import plots  # pylint: disable=g-import-not-at-top
  tasks = list(results)
  methods = list(dict.fromkeys(m for entries in results.values() for m in entries))
  figure = plots.new_figure((max(6, 0.8 * len(tasks) + 2), 3.8))
  axes = figure.add_subplot()
  width = 0.8 / len(methods)
  for i, m in enumerate(methods):
    present = [t for t in tasks if m in results[t]]
    axes.bar([tasks.index(t) + i * width for t in present],
             [results[t][m][metric] for t in present], width, label=m,
             yerr=[results[t][m][metric + "_std"] for t in present] if spread else None)
  axes.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks, rotation=45,
                  ha="right", fontsize=7)
  axes.set_ylabel(ylabel)
  axes.legend(fontsize=7)
  axes.set_title(title)
  return figure


def training_curve(workdir: str):
  """The run's train (and validation) loss per step from its metrics logs; None
  when the run logged nothing."""
  from trainer import plots, summaries  # pylint: disable=g-import-not-at-top
  train_log = summaries.read_jsonl(paths.join(workdir, "metrics_train.jsonl"))
  valid_log = summaries.read_jsonl(paths.join(workdir, "metrics_valid.jsonl"))
  if not train_log:
    return None
  figure = plots.new_figure()
  axes = figure.add_subplot()
  steps = sorted(train_log)
  axes.plot(steps, [train_log[s]["loss"] for s in steps], label="train loss")
  if valid_log:
    vs = sorted(valid_log)
    axes.plot(vs, [valid_log[s]["loss"] for s in vs], "o-", label="validation loss")
  axes.set_xlabel("step")
  axes.set_ylabel("masked MSE (normalised)")
  axes.set_yscale("log")
  axes.legend()
  axes.set_title("training curve")
  return figure


def figure_paths(context, outcomes: Mapping[str, Any],
                 sections: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
  """{caption: PNG path}: training curve, each evaluator's figures (in registry order),
  then a bar chart per non-empty section."""
  from trainer import evaluators  # pylint: disable=g-import-not-at-top
  out = {}
  curve = training_curve(context.workdir)
  if curve is not None:
    out["training curve"] = save(curve, paths.join(context.eval_dir, "training_curve.png"))
  for name, module in evaluators.registry().items():
    if name in outcomes and hasattr(module, "figures"):
      out.update(module.figures(context, outcomes[name]))
  for section, results in sections.items():
    if results:
      metric, ylabel, title, spread = SECTION_CHARTS[section]
      out[f"{section} tasks"] = save(
          bar_chart(results, metric, ylabel=ylabel, title=title, spread=spread),
          paths.join(context.eval_dir, f"{section}.png"))
  return out
