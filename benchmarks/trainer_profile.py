"""Where a training step's time goes on CPU: a jax.profiler trace, grouped by kind.

  PYTHONPATH=. python benchmarks/trainer_profile.py [--size tiny] [--attention flax]
      [--cpu_devices 1] [--label reference]

Traces a few steps of the jitted train step (batch 128, the same device batch each
step, no loader running), reads the trace back with jax.profiler.ProfileData and
adds up the time of every XLA op (thunk) by where it sits in the step (encoder,
decoder, loss, optimizer update outside the gradient) x direction (forward,
backward) x kind (the attention core, other matmuls, elementwise, reduce, gelu,
gather/scatter of the token dropping, sort, ...),
from the op's HLO metadata in the compiled program. Op time is summed over the
threads that ran it, so it can exceed the wall time when ops ran on both cores.
Writes benchmarks/results/trainer_profile_<label>.json.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

from absl import flags
import jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from schemas.testing import write_data_dir  # pylint: disable=wrong-import-position
from trainer import cli, input_pipeline, train  # pylint: disable=wrong-import-position
from trainer.configs import mae  # pylint: disable=wrong-import-position

import results_file  # pylint: disable=wrong-import-position  (benchmarks/, next to this)

INSTRUCTION = re.compile(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ([\w\-]+)\(")
EXECUTOR_EVENTS = ("ThunkExecutor", "SlinkyThreadPool")


def hlo_ops(hlo: str) -> dict[str, tuple[set[str], str]]:
  """{instruction name: (opcodes inside it, including called computations; op_name)}."""
  computations, current = {}, None
  for line in hlo.splitlines():
    if line and not line.startswith(" ") and line.rstrip().endswith("{"):
      current = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
      computations[current] = []
    elif current and line.startswith(" "):
      computations[current].append(line)

  def opcodes(name: str, depth: int = 0) -> set[str]:
    found = set()
    for line in computations.get(name, []):
      m = INSTRUCTION.match(line)
      if m:
        found.add(m.group(3))
      if depth < 3:
        for called in re.findall(r"(?:calls|to_apply)=%?([\w.\-]+)", line):
          found |= opcodes(called, depth + 1)
    return found

  ops = {}
  for lines in computations.values():
    for line in lines:
      m = INSTRUCTION.match(line)
      if m:
        inside = {m.group(3)}
        for called in re.findall(r"calls=%?([\w.\-]+)", line):
          inside |= opcodes(called)
        meta = re.search(r'op_name="([^"]*)"', line)
        ops[m.group(1)] = (inside, meta.group(1) if meta else "")
  return ops


def category(opcodes: set[str], op_name: str) -> tuple[str, str, str]:
  """(part, direction, kind) of one op."""
  if "MAE.decode" in op_name:
    part = "decoder"
  elif "MAE.encode" in op_name or "MAE.tokens" in op_name:
    part = "encoder"
  elif "jvp(" in op_name:
    part = "loss"
  else:
    part = "optimizer"  # outside the differentiated function: clip, AdamW, apply
  direction = "backward" if "transpose(" in op_name else "forward"
  if "MultiHeadDotProductAttention" in op_name and not re.search(r"/(query|key|value|out)/",
                                                                 op_name):
    return part, direction, "attention: scores, softmax, weighted sum"
  for kind, marks in (("matmul", {"dot", "convolution"}), ("sort", {"sort"}),
                      ("gather/scatter", {"gather", "scatter", "dynamic-slice",
                                          "dynamic-update-slice"}),
                      ("softmax (exp)", {"exponential"}), ("layer norm", {"rsqrt"}),
                      ("gelu", {"tanh", "erf"}), ("reduce", {"reduce"})):
    if opcodes & marks:
      return part, direction, kind
  return part, direction, "elementwise/copy"


def profile(trainer, batch, steps: int) -> dict:
  """Op time per (part, direction, kind) in ms per step, and the top ops."""
  trace_dir = tempfile.mkdtemp(prefix="lsm-trace-")
  options = jax.profiler.ProfileOptions()
  options.python_tracer_level = 0
  with jax.profiler.trace(trace_dir, profiler_options=options):
    for _ in range(steps):
      trainer.state, m = trainer.train_step(trainer.state, batch)
    jax.block_until_ready(m)
  data = jax.profiler.ProfileData.from_file(
      glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)[0])
  per_op = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      if "XLA" not in line.name:
        continue
      for event in line.events:
        if not event.name.startswith(EXECUTOR_EVENTS):
          per_op[event.name] += event.duration_ns / 1e6 / steps
  ops = hlo_ops(trainer.steps[trainer.budget(batch)].as_text())
  groups = collections.Counter()
  for name, ms in per_op.items():
    groups[" / ".join(category(*ops.get(name, (set(), ""))))] += ms
  return {"op_ms_per_step": round(sum(per_op.values()), 1),
          "groups_ms_per_step": {k: round(v, 1) for k, v in groups.most_common()},
          "top_ops_ms_per_step": [
              {"op": name, "ms": round(ms, 1), "op_name": ops.get(name, (set(), ""))[1][-100:]}
              for name, ms in per_op.most_common(15)]}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--size", default="tiny")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--attention", default="", help="models.ATTENTION name; default: the config's")
  parser.add_argument("--cpu_devices", type=int, default=0,
                      help="CPU devices to split the batch over; 0 = the trainer's default")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--label", default="default")
  args = parser.parse_args()
  cli.use_cpu_cores(args.cpu_devices)
  flags.FLAGS.mark_as_parsed()
  config = mae.get_config(args.size)
  config.mask.strategy = "random"  # LSM's step: 36 encoder tokens (the profile's basis)
  config.data_dir = write_data_dir(tempfile.mkdtemp(prefix="lsm-bench-"),
                                   {"train": 256, "valid": 16}, shards=2)
  config.batch_size = args.batch_size
  config.model.attention = args.attention or config.model.attention
  trainer = train.Trainer(config)
  it = input_pipeline.train_iterator(config)
  batch = trainer.device_batch(next(it))
  it.close()
  flops = trainer.compile(batch)
  trainer.state, m = trainer.train_step(trainer.state, batch)
  jax.block_until_ready(m)
  with results_file.Quietness() as quiet:
    t = time.perf_counter()
    for _ in range(args.steps):
      trainer.state, m = trainer.train_step(trainer.state, batch)
    jax.block_until_ready(m)
    step_s = (time.perf_counter() - t) / args.steps
  result = {"size": args.size, "batch_size": args.batch_size,
            "attention": config.model.attention, "devices": trainer.mesh.devices.size,
            "step_ms": round(1000 * step_s, 1), "windows_per_second": args.batch_size / step_s,
            "achieved_flops_per_second": flops / step_s, **quiet.record(),
            **profile(trainer, batch, args.steps)}
  results_file.write(result, os.path.join(REPO, "benchmarks", "results",
                                          f"trainer_profile_{args.label}.json"))


if __name__ == "__main__":
  main()
