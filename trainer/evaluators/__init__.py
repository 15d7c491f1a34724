"""lsm-eval's evaluators, one module per kind of task, and the registry that finds them.

An evaluator is a module of this package that defines
  SECTION: "generative" or "discriminative", the results.json section it fills;
  TASKS: {task name: spec}, the names --tasks accepts (the spec is the module's own);
  run(context, tasks) -> Outcome: results {task: {method: metrics}} and notes;
and may define figures(context, outcome) -> {caption: PNG path}.
The registry imports every module of the package (pkgutil), so adding an evaluator
is adding one file here, and adding a task is adding one entry to an evaluator's
TASKS. Modules without TASKS (data, figures) are helpers, not evaluators.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import types
from typing import Any, Mapping, Sequence

import numpy as np

# Report sections in the order evaluators run (and results.json lists them).
SECTIONS = ("generative", "discriminative")


@dataclasses.dataclass(frozen=True)
class Options:
  """lsm-eval's settings shared by the evaluators (see trainer/evaluate.py's flags)."""
  seed: int = 0
  mice_max_iter: int = 5
  mice_jobs: int = 2
  cross_feature_windows: int = 1000
  seeds: Sequence[int] = (0, 1, 2)
  shots: Sequence[int] = (5, 10, 20)
  finetune_config: Any = None  # trainer.finetune.FinetuneConfig of full fine-tuning
  few_shot_config: Any = None  # ... and of each few-shot run
  plot_windows: int = 3
  oracle: str = ""  # --oracle: noise-free windows (.npz) scored as the "oracle" method


@dataclasses.dataclass
class Context:
  """What every evaluator may read: the model, the windows lsm-eval read and settings.

  eval_dir: where figures go (absolute for a local run: the report links them relative
    to RUN/eval); pretrain_test / labelled_train / labelled_test: read_windows dicts
    (or None) of the splits named by pretrain_split / "train" / labelled_split;
  pretrain_train: a seeded sample of the pretrain train split (or None), what the
    cross-feature baseline is fitted on (never the windows it is scored on);
  notes: the evaluation's notes (meta.notes), which evaluators add to.
  """
  model: Any
  workdir: str
  eval_dir: str
  manifest: Mapping[str, Any]
  options: Options
  notes: dict[str, Any]
  pretrain_split: str | None = None
  pretrain_test: Mapping[str, np.ndarray] | None = None
  pretrain_train: Mapping[str, np.ndarray] | None = None
  labelled_train: Mapping[str, np.ndarray] | None = None
  labelled_test: Mapping[str, np.ndarray] | None = None
  labelled_split: str | None = None


@dataclasses.dataclass
class Outcome:
  """An evaluator's results {task: {method: metrics}} and anything its figures need."""
  results: dict[str, Any] = dataclasses.field(default_factory=dict)
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@functools.cache
def registry() -> dict[str, types.ModuleType]:
  """{evaluator name: module}, in SECTIONS order, then by name."""
  found = []
  for info in pkgutil.iter_modules(__path__):
    module = importlib.import_module(f"{__name__}.{info.name}")
    if hasattr(module, "TASKS"):
      if module.SECTION not in SECTIONS:
        raise ValueError(f"{module.__name__}: SECTION {module.SECTION!r} is not one of "
                         f"{SECTIONS}")
      found.append((SECTIONS.index(module.SECTION), info.name, module))
  return {name: module for _, name, module in sorted(found)}


def tasks_of(section: str) -> dict[str, Any]:
  """{task name: spec} of every evaluator filling a section."""
  return {task: spec for module in registry().values() if module.SECTION == section
          for task, spec in module.TASKS.items()}


def resolve_tasks(names: Sequence[str]) -> dict[str, list[str]]:
  """{evaluator name: its chosen tasks, in TASKS order} from task, evaluator and
  section names ("generative" = every generative task). Raises ValueError on a name
  that is none of these."""
  chosen = set()
  for name in (n.strip() for n in names):
    if name in SECTIONS:
      chosen |= set(tasks_of(name))
    elif name in registry():
      chosen |= set(registry()[name].TASKS)
    elif any(name in m.TASKS for m in registry().values()):
      chosen.add(name)
    else:
      every = [t for m in registry().values() for t in m.TASKS]
      raise ValueError(f"unknown task {name!r}; expected a group {sorted(SECTIONS)} or one of "
                       f"{every}")
  out = {name: [t for t in m.TASKS if t in chosen] for name, m in registry().items()}
  return {name: tasks for name, tasks in out.items() if tasks}
