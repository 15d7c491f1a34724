"""The Dataflow job graphs build, pickle and translate without submitting anything.

DataflowRunner with --dry_run=True runs every step of a real submission up to the
Dataflow API call: option validation, Dataflow's transform overrides, pickling every
DoFn into the portable pipeline proto, the Docker environment and the job request.
"""

from __future__ import annotations

import os

import pytest

from pipeline import main as pipeline_main
from pipeline.synthetic import beam_job

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAW = os.path.join(REPO, "tests", "data", "fitbit_minute",
                   "name4_minuteStepsNarrow_20190730_20230830.csv")
IMAGE = "us-central1-docker.pkg.dev/proj/lsm/lsm-worker:test"


def _dataflow(job: str) -> list[str]:
  return ["--runner=DataflowRunner", "--dry_run=True", "--project=proj",
          "--region=us-central1", f"--job_name={job}", "--temp_location=gs://bkt/tmp",
          "--staging_location=gs://bkt/staging", "--machine_type=n2-standard-4",
          "--max_num_workers=8"]


def _transform_names(job) -> set[str]:
  return {t.unique_name for t in job.proto_pipeline.components.transforms.values()}


def _options(job) -> dict:
  return job.options.get_all_options(drop_default=True)


def test_lsm_pipeline_graph_translates_for_dataflow(tmp_path):
  key = tmp_path / "key.txt"
  key.write_text("a secret key")
  result = pipeline_main.run(
      ["--input", RAW, "--output", str(tmp_path / "out"), "--subject_hash_key_file",
       str(key), "--labels", str(tmp_path / "no-labels-needed-to-build.csv"),
       "--num_shards=4", f"--setup_file={REPO}/setup.py"] + _dataflow("lsm-pipeline-test"))
  job = result.job
  assert job.proto.name == "lsm-pipeline-test"
  names = _transform_names(job)
  for stage in ("ReadRaw", "ParseReadings", "AlignSubjects", "ReadLabels", "CutWindows",
                "Normalise", "WriteShards", "WriteManifest", "WriteDeadLetters"):
    assert stage in names, f"{stage} missing from the Dataflow graph"
  # The job carries the pipeline's own options to the workers.
  options = _options(job)
  assert options["num_shards"] == 4 and options["subject_hash_key_file"] == str(key)
  # --setup_file: the project is staged as an sdist for the workers to install.
  environments = job.proto_pipeline.components.environments.values()
  assert any(a.role_urn.endswith("staging_to:v1") and
             b"workflow.tar.gz" in a.role_payload
             for env in environments for a in env.dependencies), environments


def test_synthetic_job_graph_translates_for_dataflow_with_the_container(tmp_path):
  result = beam_job.run(
      ["--subjects=165000", "--days=10", f"--output={tmp_path}/synth", "--format=parquet",
       f"--sdk_container_image={IMAGE}", "--sdk_location=container"]
      + _dataflow("lsm-synth-test"))
  job = result.job
  assert job.proto.name == "lsm-synth-test"
  names = _transform_names(job)
  for stage in ("GenerateCohort", "WriteCohort/WriteParts", "WriteCohort/WriteMetadata"):
    assert stage in names
  images = {env.payload for env in job.proto_pipeline.components.environments.values()}
  assert any(IMAGE.encode() in payload for payload in images)


def test_missing_cloud_options_fail_before_submission(tmp_path):
  with pytest.raises(Exception, match="project"):
    beam_job.run(["--subjects=2", "--days=1", f"--output={tmp_path}",
                  "--runner=DataflowRunner", "--dry_run=True", "--region=us-central1",
                  "--temp_location=gs://bkt/tmp"])
