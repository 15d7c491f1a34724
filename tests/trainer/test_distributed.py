"""Two trainer processes on CPU joined by jax.distributed match one process's losses."""

from __future__ import annotations

import json
import socket
import subprocess

import numpy as np

# Runs the real Trainer and training iterator for a few steps and prints the losses.
# With LSM_DISTRIBUTED=1 it joins the others through train.maybe_initialise_distributed.
WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
from conftest import small_config
import jax
from trainer import input_pipeline, train
config = small_config({data_dir!r}, **{{"augment.enabled": True}})
train.maybe_initialise_distributed(config)
trainer = train.Trainer(config)
iterator = input_pipeline.train_iterator(config)
batch = next(iterator)
trainer.compile(trainer.device_batch(batch))
if jax.process_count() > 1:
  # Gloo gives a process 30 s to reach the first collective; compiling on a busy
  # 2-core machine can take longer, so meet at the coordinator's barrier first.
  from jax._src import distributed
  distributed.global_state.client.wait_at_barrier("compiled", 600_000)
losses, rows = [], 0
for step in range({steps}):
  if step:
    batch = next(iterator)
  rows += len(batch["values"])
  trainer.state, m = trainer.train_step(trainer.state, trainer.device_batch(batch))
  losses.append(float(m["loss"]))
print("RESULT " + json.dumps({{"process": jax.process_index(), "processes": jax.process_count(),
                              "devices": jax.device_count(), "rows": rows, "losses": losses}}))
"""
STEPS = 3


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _result(out: str) -> dict:
  line = [l for l in out.splitlines() if l.startswith("RESULT ")]
  assert line, out[-3000:]
  return json.loads(line[-1][len("RESULT "):])


def test_two_processes_match_one(data_dir, repo_dir, subprocess_env, python):
  code = WORKER.format(tests=f"{repo_dir}/tests/trainer", data_dir=data_dir, steps=STEPS)
  single = subprocess.run([python, "-c", code], env=subprocess_env(), capture_output=True,
                          text=True, timeout=300, check=False)
  assert single.returncode == 0, single.stderr[-3000:]
  port = _free_port()
  procs = [subprocess.Popen(
      [python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env=subprocess_env(LSM_DISTRIBUTED="1", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                         JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)))
           for i in range(2)]
  outs = []
  for p in procs:
    try:
      outs.append(p.communicate(timeout=300)[0])
    finally:
      p.kill()
  assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(o[-3000:] for o in outs)
  one = _result(single.stdout)
  two = [_result(o) for o in outs]
  assert one["processes"] == 1 and one["rows"] == 8 * STEPS
  assert [r["process"] for r in two] == [0, 1]
  assert all(r["processes"] == 2 and r["devices"] == 2 for r in two)
  assert [r["rows"] for r in two] == [4 * STEPS, 4 * STEPS]  # each reads half the batch
  np.testing.assert_allclose(two[0]["losses"], two[1]["losses"], rtol=0, atol=0)
  np.testing.assert_allclose(two[0]["losses"], one["losses"], rtol=1e-5)
  assert len(set(one["losses"])) == STEPS  # training moves: not a constant loss
