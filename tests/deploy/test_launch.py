"""The launch scripts' --dry-run prints exactly the commands they would run."""

from __future__ import annotations

import shlex

import pytest

from deploy.dataflow import launch as dataflow
from deploy.gpu import launch as gpu
from deploy.tpu import launch as tpu

CLOUD = ["--project", "proj", "--region", "us-central1", "--bucket", "gs://bkt"]


def _printed(capsys, main, argv) -> list[list[str]]:
  # Before any "--": what follows it goes to the job untouched.
  cut = argv.index("--") if "--" in argv else len(argv)
  assert main(argv[:cut] + ["--dry-run"] + argv[cut:]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert all(line.startswith("[dry-run] ") for line in lines), lines
  return [shlex.split(line[len("[dry-run] "):]) for line in lines]


def test_dataflow_pipeline_command(capsys):
  [command] = _printed(capsys, dataflow.main, [
      "pipeline", *CLOUD, "--input", "gs://bkt/raw/*.parquet", "--input", "gs://bkt/raw/*.csv",
      "--output", "gs://bkt/lsm/v1", "--subject_hash_key_file", "gs://keys/lsm.key",
      "--session_labels", "gs://bkt/labels.csv", "--", "--max_missing=0.4"])
  assert command[0] == "lsm-pipeline"
  for flag in ("--input=gs://bkt/raw/*.parquet", "--input=gs://bkt/raw/*.csv",
               "--output=gs://bkt/lsm/v1", "--subject_hash_key_file=gs://keys/lsm.key",
               "--session_labels=gs://bkt/labels.csv", "--num_shards=256",
               "--runner=DataflowRunner", "--project=proj", "--region=us-central1",
               "--temp_location=gs://bkt/tmp", "--staging_location=gs://bkt/staging",
               "--machine_type=n2-standard-4", "--max_num_workers=64",
               "--autoscaling_algorithm=THROUGHPUT_BASED", "--max_missing=0.4"):
    assert flag in command, flag
  assert any(f.startswith("--setup_file=") and f.endswith("/setup.py") for f in command)
  assert any(f.startswith("--job_name=lsm-pipeline-") for f in command)


def test_dataflow_pipeline_on_the_pinned_container(capsys):
  [command] = _printed(capsys, dataflow.main, [
      "pipeline", *CLOUD, "--input", "gs://bkt/raw/*", "--output", "gs://bkt/out",
      "--subject_hash_key_file", "gs://keys/k", "--use_container"])
  assert "--sdk_container_image=us-central1-docker.pkg.dev/proj/lsm/lsm-worker:latest" \
      in command
  assert "--sdk_location=container" in command
  assert not any(f.startswith("--setup_file") for f in command)


def test_dataflow_synth_command(capsys):
  [command] = _printed(capsys, dataflow.main, [
      "synth", *CLOUD, "--output", "gs://bkt/synth", "--max_workers", "32"])
  assert command[1:3] == ["-m", "pipeline.synthetic.beam_job"]
  for flag in ("--subjects=165000", "--days=10", "--output=gs://bkt/synth",
               "--format=parquet", "--runner=DataflowRunner", "--max_num_workers=32"):
    assert flag in command, flag


def test_dataflow_image_and_template(capsys):
  [build] = _printed(capsys, dataflow.main, ["build-image", *CLOUD])
  assert build[:3] == ["gcloud", "builds", "submit"]
  assert "--config=deploy/dataflow/cloudbuild.yaml" in build
  [template] = _printed(capsys, dataflow.main, ["build-template", *CLOUD])
  assert template[:4] == ["gcloud", "dataflow", "flex-template", "build"]
  assert "gs://bkt/templates/lsm-pipeline.json" in template
  assert "--metadata-file=deploy/dataflow/metadata.json" in template


def test_dataflow_rejects_a_local_bucket():
  with pytest.raises(SystemExit, match="gs://"):
    dataflow.main(["synth", "--project", "p", "--region", "r", "--bucket", "/tmp/b",
                   "--output", "gs://b/s", "--dry-run"])


def test_tpu_runs_the_same_training_command_on_every_worker(capsys):
  commands = _printed(capsys, tpu.main, [
      "--project", "proj", "--zone", "us-west4-a", "--name", "lsm-v5e",
      "--accelerator", "v5litepod-16", "--bucket", "gs://bkt", "--data", "gs://bkt/lsm/v1",
      "--workdir", "gs://bkt/runs/b", "--", "--config.batch_size=4096"])
  assert commands[0][:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"]
  assert "--accelerator-type=v5litepod-16" in commands[0]
  ssh = [c for c in commands if c[4] == "ssh"]
  assert ssh and all("--worker=all" in c for c in ssh)
  remote = [c[-1] for c in ssh]
  assert any("jax[tpu]==0.10.2" in r for r in remote)
  assert any("gcsfuse" in r and "/mnt/lsm" in r for r in remote)
  train = shlex.split(remote[-1][len("--command="):])
  assert train[0] == "lsm/.venv/bin/lsm-train"
  for flag in ("--config=lsm/trainer/configs/mae.py:b", "--workdir=/mnt/lsm/runs/b",
               "--config.data_dir=/mnt/lsm/lsm/v1", "--config.distributed=True",
               "--config.batch_size=4096"):
    assert flag in train, flag


def test_tpu_delete_and_bucket_checks(capsys):
  base = ["--project", "p", "--zone", "z", "--name", "n", "--bucket", "gs://bkt",
          "--data", "gs://bkt/d", "--workdir", "gs://bkt/w"]
  [delete] = _printed(capsys, tpu.main, base + ["--steps", "delete"])
  assert delete[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "delete"]
  with pytest.raises(SystemExit, match="inside --bucket"):
    tpu.main(base[:-4] + ["--data", "gs://other/d", "--workdir", "gs://bkt/w",
                          "--steps", "train", "--dry-run"])


def test_gpu_recipe_is_bfloat16_data_parallel_on_all_gpus(capsys):
  commands = _printed(capsys, gpu.main, ["--data", "/data/v1", "--workdir", "/runs/b",
                                         "--gpus", "8"])
  assert "jax[cuda12]==0.10.2" in commands[2]
  assert "len(d) >= 8" in commands[-2][-1]
  train = commands[-1]
  for flag in ("--config=trainer/configs/mae.py:b", "--config.data_dir=/data/v1",
               "--config.model.dtype=bfloat16", "--config.batch_size=4096",
               "--config.num_train_steps=50000"):
    assert flag in train, flag
  assert not any("distributed" in f for f in train)
