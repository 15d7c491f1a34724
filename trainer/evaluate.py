"""lsm-eval: generative and discriminative evaluation of a trained model against baselines.

usage: lsm-eval --workdir=RUN --data=PIPELINE_OUTPUT [--tasks=generative,discriminative]
           [--export-embeddings] [--max_windows=N] [--generative_windows=N] [--seed=S]
           [--mice_max_iter=5] [--cross_feature_windows=1000] [--seeds=0,1,2]
           [--shots=5,10,20] [--finetune_steps=200] [--oracle=ORACLE.npz]

The command: it reads the windows, runs the evaluators of trainer/evaluators/ (one
module per kind of task: generative.py, discriminative.py; the registry finds them)
and writes RUN/eval/results.json, RUN/eval/report.md and PNG figures beside them;
--export-embeddings also writes RUN/eval/embeddings.npz. TensorFlow is never
imported: the pipeline's training statistics invert the normalisation.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging

from schemas import manifest as manifest_lib
from trainer import cli
from trainer import evaluators
from trainer import paths
from trainer.evaluators import data as data_lib
from trainer.evaluators import figures as figures_lib

EMBEDDINGS_NAME = "embeddings.npz"
# Under a million windows seen, the report says plainly what its numbers can and cannot
# show, and where the measurement that can is.
SMALL_BUDGET = (
    "A small budget: these numbers show the whole job working end to end, not how good "
    "the model is; a model this briefly trained can lose to the simple baselines. "
    "benchmarks/generative_quality.py (about an hour on 2 CPU cores) is the measurement "
    "of the model against linear interpolation and MICE; LSM's own numbers need LSM's "
    "model sizes and data (deploy/README.md).")

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Flags are defined when the command runs, not on import, so lsm-train, lsm-eval
  and lsm-scaling can be imported into one process (tests) without clashing."""
  flags.DEFINE_string("workdir", None, "lsm-train workdir (config.json + checkpoints); "
                      "results go to WORKDIR/eval.")
  flags.DEFINE_string("data", None, "Pipeline output directory (manifest.json).")
  flags.DEFINE_list("tasks", ["generative", "discriminative"],
                    "Task names or groups (generative, discriminative).")
  flags.DEFINE_bool("export_embeddings", False, "Write WORKDIR/eval/embeddings.npz.")
  flags.DEFINE_integer("max_windows", 0, "Evaluate at most N windows per split (a seeded "
                       "sample; 0 = all).")
  flags.DEFINE_integer("generative_windows", 0, "At most N windows for the generative tasks "
                       "(a seeded sample; 0 = --max_windows): MICE costs per window.")
  flags.DEFINE_integer("seed", 0, "Seed of the masks, window samples and few-shot draws.")
  flags.DEFINE_string("step", "best", "Checkpoint: best, latest or a step number.")
  flags.DEFINE_integer("mice_max_iter", 5, "IterativeImputer iterations (cheaper: 2).")
  flags.DEFINE_integer("mice_jobs", 2, "Processes for MICE over windows.")
  flags.DEFINE_integer("cross_feature_windows", 1000, "Pretrain train windows (a seeded "
                       "sample) the cross-feature baseline is fitted on; 0 = no "
                       "cross-feature baseline.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of probe / fine-tune / few-shot runs.")
  flags.DEFINE_list("shots", ["5", "10", "20"], "Few-shot sizes (examples per class).")
  flags.DEFINE_integer("finetune_steps", 200, "Steps of fine-tuning and supervised training.")
  flags.DEFINE_integer("few_shot_finetune_steps", 100, "Steps of each few-shot fine-tune.")
  flags.DEFINE_integer("finetune_batch", 32, "Batch of fine-tuning and supervised training.")
  flags.DEFINE_float("finetune_lr", 3e-4, "Peak learning rate of fine-tuning / supervised.")
  flags.DEFINE_float("finetune_layer_decay", 1.0, "Fine-tuning only: layer-wise learning-"
                     "rate decay (MAE's recipe; 1.0 = every layer at --finetune_lr). On "
                     "the discriminative benchmark 0.75 lowered activity accuracy at the "
                     "default rate (benchmarks/README.md).")
  flags.DEFINE_integer("plot_windows", 3, "Windows drawn per reconstruction figure.")
  flags.DEFINE_string("oracle", "", "Synthetic data only: the .npz of noise-free windows "
                      "python -m pipeline.synthetic.oracle wrote; adds an 'oracle' row per "
                      "generative task (a ceiling, not a baseline).")


@contextlib.contextmanager
def timed(seconds: dict[str, float], phase: str):
  """Adds the block's wall time to seconds[phase]: the report says where time went."""
  start = time.perf_counter()
  try:
    yield
  finally:
    seconds[phase] = round(seconds.get(phase, 0) + time.perf_counter() - start, 1)


def evaluate(workdir: str, data_dir: str, tasks: Sequence[str] = ("generative",
                                                                  "discriminative"), *,
             export: bool = False, max_windows: int = 0, generative_windows: int = 0,
             seed: int = 0,
             step: str = "best", mice_max_iter: int = 5, mice_jobs: int = 2,
             cross_feature_windows: int = 1000,
             seeds: Sequence[int] = (0, 1, 2), shots: Sequence[int] = (5, 10, 20),
             finetune_steps: int = 200, few_shot_finetune_steps: int = 100,
             finetune_batch: int = 32, finetune_lr: float = 3e-4,
             finetune_layer_decay: float = 1.0, plot_windows: int = 3,
             oracle: str = "") -> dict[str, Any]:
  """Runs the chosen tasks' evaluators and writes WORKDIR/eval; returns the results dict.

  tasks: task, evaluator or section names (trainer/evaluators); raises ValueError on
  an unknown one, ManifestError on a bad data_dir and RecordError on an unreadable
  record (naming its shard and index).
  """
  from trainer import finetune, inference, models, report  # pylint: disable=g-import-not-at-top
  chosen = evaluators.resolve_tasks(tasks)
  manifest = manifest_lib.load(data_dir)
  manifest_lib.check_listed(data_dir, manifest)
  started = time.perf_counter()
  seconds: dict[str, float] = {}
  with timed(seconds, "load"):
    model = inference.load(workdir, step if step in ("best", "latest") else int(step))
  eval_dir = paths.join(workdir, "eval")
  paths.makedirs(eval_dir)
  params = models.count_params(model.model_config)
  options = evaluators.Options(
      seed=seed, mice_max_iter=mice_max_iter, mice_jobs=mice_jobs,
      cross_feature_windows=cross_feature_windows if "generative" in chosen else 0,
      seeds=seeds, shots=shots,
      finetune_config=finetune.FinetuneConfig(steps=finetune_steps, batch_size=finetune_batch,
                                              learning_rate=finetune_lr,
                                              layer_decay=finetune_layer_decay),
      few_shot_config=finetune.FinetuneConfig(steps=few_shot_finetune_steps,
                                              batch_size=finetune_batch,
                                              learning_rate=finetune_lr,
                                              layer_decay=finetune_layer_decay),
      plot_windows=plot_windows, oracle=oracle)
  figures_dir = os.path.abspath(eval_dir) if paths.is_local(eval_dir) else eval_dir
  context = read_data(evaluators.Context(model, workdir, figures_dir, manifest, options, {}),
                      data_dir, max_windows, generative_windows or max_windows)

  outcomes = {}
  sections: dict[str, dict[str, Any]] = {section: {} for section in evaluators.SECTIONS}
  for name, names in chosen.items():
    module = evaluators.registry()[name]
    with timed(seconds, name):
      outcomes[name] = module.run(context, names)
    sections[module.SECTION].update(outcomes[name].results)
  generative, discriminative = sections["generative"], sections["discriminative"]
  notes = context.notes

  embeddings_path = None
  if export:
    exported = [part for part in (("pretrain", context.pretrain_split, context.pretrain_test),
                                  ("labelled", "train", context.labelled_train),
                                  ("labelled", context.labelled_split, context.labelled_test))
                if part[2] is not None]
    if not exported:
      raise ValueError(f"{data_dir}: no windows to embed")
    with timed(seconds, "embeddings"):
      embeddings_path = data_lib.export_embeddings(paths.join(eval_dir, EMBEDDINGS_NAME),
                                                   model, exported)
  with timed(seconds, "figures"):
    figures = figures_lib.figure_paths(context, outcomes, sections)
  import jax
  budget_note = (
      f"model {model.config.size} ({params:,} parameters) pre-trained "
      f"{model.step} steps of batch {model.config.batch_size} "
      f"(~{model.step * model.config.batch_size:,} windows seen, masking "
      f"{model.config.mask.strategy}); generative tasks on "
      f"{notes.get('generative_windows', 0)} windows ({notes.get('generative_split')}), "
      f"MICE max_iter {mice_max_iter}; "
      + (f"fine-tune / supervised {finetune_steps} steps of batch {finetune_batch} at "
         f"peak learning rate {finetune_lr:g}, few-shot {few_shot_finetune_steps} steps, "
         f"{len(seeds)} seed{'' if len(seeds) == 1 else 's'}; "
         if discriminative else "discriminative tasks not run; ")
      + f"on {jax.device_count()} {jax.devices()[0].platform} device(s), "
      f"{os.cpu_count()} CPU cores. "
      + (SMALL_BUDGET if model.step * model.config.batch_size < 1_000_000 else ""))
  meta = {"workdir": os.path.abspath(workdir), "data": os.path.abspath(data_dir),
          "checkpoint_step": model.step, "model_size": model.config.size,
          "parameters": params, "seed": seed, "max_windows": max_windows,
          "generative_windows_requested": generative_windows or "all (up to max_windows)",
          **({"seeds": list(seeds), "shots": list(shots)} if discriminative else {}),
          # The basis is rendered in the generative section (data[GENERATIVE_BASIS]).
          "notes": {k: v for k, v in notes.items() if k != "generative_basis"},
          **({"embeddings": embeddings_path} if embeddings_path else {}), "seconds": round(time.perf_counter() - started, 1),
          "seconds_by_phase": seconds}
  report.write_report(workdir, generative, discriminative, budget_note=budget_note,
                      meta=meta, figures=figures,
                      data=data_lib.data_summary(data_dir, manifest, notes))
  return json.loads(paths.read_text(paths.join(eval_dir, report.RESULTS_NAME)))


def read_data(context, data_dir: str, max_windows: int, generative_windows: int):
  """The context with the windows every evaluator and the embedding export share: the
  pretrain test split (valid when test is empty), a sample of the pretrain train split
  (options.cross_feature_windows; none when 0) and the labelled train and test/valid
  splits, each a seeded sample when capped; the notes say what was used."""
  seed, notes = context.options.seed, context.notes
  if context.options.cross_feature_windows:
    context.pretrain_train = data_lib.read_windows(
        data_dir, "pretrain", "train", context.options.cross_feature_windows, seed)
  context.pretrain_split, context.pretrain_test = data_lib.first_split(
      data_dir, "pretrain", ("test", "valid"), generative_windows, seed)
  split = context.pretrain_split
  if split is None:
    notes["generative"] = "skipped: the pretrain dataset has no test or valid windows"
  else:
    notes["generative_split"] = split + ("" if split == "test" else
                                         " (the test split is empty: fell back to valid)")
    notes["generative_windows"] = int(len(context.pretrain_test["values"]))
  context.labelled_train = data_lib.read_windows(data_dir, "labelled", "train", max_windows,
                                                 seed)
  context.labelled_split, context.labelled_test = data_lib.first_split(
      data_dir, "labelled", ("test", "valid"), max_windows, seed)
  return context


def int_list(flag: str, values: Sequence[str], minimum: int) -> list[int]:
  """The flag's comma-separated integers, each >= minimum; CommandError (one line,
  before any data is read) when empty or not so."""
  try:
    numbers = [int(v) for v in values]
  except ValueError:
    numbers = []
  if not numbers or min(numbers) < minimum:
    raise cli.CommandError(f"--{flag}={','.join(values)}: expected a comma-separated list "
                           f"of integers >= {minimum}")
  return numbers


def _main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:  # a misspelt task stops with one line, before any data is read
    evaluators.resolve_tasks(FLAGS.tasks)
  except ValueError as e:
    raise cli.CommandError(f"--tasks: {e}") from None
  seeds, shots = int_list("seeds", FLAGS.seeds, 0), int_list("shots", FLAGS.shots, 1)
  if not 0 < FLAGS.finetune_layer_decay <= 1:
    raise cli.CommandError(f"--finetune_layer_decay={FLAGS.finetune_layer_decay}: must be in "
                           "(0, 1]")
  results = evaluate(
      FLAGS.workdir, FLAGS.data, FLAGS.tasks, export=FLAGS.export_embeddings,
      max_windows=FLAGS.max_windows, generative_windows=FLAGS.generative_windows,
      seed=FLAGS.seed, step=FLAGS.step,
      mice_max_iter=FLAGS.mice_max_iter, mice_jobs=FLAGS.mice_jobs,
      cross_feature_windows=FLAGS.cross_feature_windows,
      seeds=seeds, shots=shots,
      finetune_steps=FLAGS.finetune_steps,
      few_shot_finetune_steps=FLAGS.few_shot_finetune_steps,
      finetune_batch=FLAGS.finetune_batch, finetune_lr=FLAGS.finetune_lr,
      finetune_layer_decay=FLAGS.finetune_layer_decay, plot_windows=FLAGS.plot_windows,
      oracle=FLAGS.oracle)
  for task, gain in results["improvement"]["generative"].items():
    logging.info("%s: model MAE %.4f, best baseline %s %.4f (%+.1f%%)", task,
                 gain["model_value"], gain["best_baseline"], gain["best_value"],
                 100 * (gain["relative_improvement"] or 0))
  report_path = os.path.join(FLAGS.workdir, "eval", "report.md")
  notes = results["meta"]["notes"]
  skipped = {kind: notes[kind] for kind in ("generative", "discriminative")
             if str(notes.get(kind, "")).startswith("skipped")}
  for kind, why in skipped.items():
    logging.warning("lsm-eval: %s tasks %s", kind, why)
  if not results.get("generative") and not results.get("discriminative"):
    raise cli.CommandError("nothing was evaluated: " + "; ".join(
        f"{kind} tasks {why}" for kind, why in skipped.items()) + f" (see {report_path})")
  print(report_path)


def main() -> None:
  define_flags()
  # --export-embeddings is the documented spelling; absl flags use underscores.
  sys.argv = [a.replace("--export-embeddings", "--export_embeddings")
              .replace("--max-windows", "--max_windows") for a in sys.argv]
  flags.mark_flags_as_required(["workdir", "data"])
  cli.run(_main, __name__, "lsm-eval")


if __name__ == "__main__":
  main()
