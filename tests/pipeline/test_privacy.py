"""Privacy: the key never enters the job graph; the shareable output names no one."""

import base64
import bz2
import json
import os
import re
import shutil
import stat
import sys
import types
import zlib

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import keys, main, options as lsm_options, privacy
from pipeline.read import match_inputs

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
SECRET = "KEY-7f3a9c-distinctive-secret"
IDS = ("alice-smith-1984", "bob-jones-1990", "carol-white-1975")


@pytest.fixture(autouse=True)
def _fresh_key_cache():
  keys._stored.cache_clear()
  yield
  keys._stored.cache_clear()


def _payloads(blob: bytes) -> bytes:
  """The serialised graph with every pickled payload in it (DoFns with their
  arguments, CombineFns, Create's elements) unpacked too: Beam stores them as
  base64 of bz2 (or zlib) compressed pickles."""
  out = [blob]
  for run in re.findall(rb"[A-Za-z0-9+/]{32,}={0,2}", blob):
    try:
      packed = base64.b64decode(run, validate=True)
    except ValueError:
      continue
    for decompress in (bz2.decompress, zlib.decompress):
      try:
        out.append(decompress(packed))
      except (OSError, ValueError, zlib.error):
        continue
  return b"\n".join(out)


def _graph(tmp_path, ref, extra=()):
  raw = tmp_path / "in.csv"
  raw.write_text("subject_id,timestamp,HR\ns1,2024-03-01T08:00:00Z,60\n")
  labels = tmp_path / "sessions.csv"
  labels.write_text("subject_id,start,end,activity,exercise\n")
  e4 = tmp_path / "e4"
  e4.mkdir(exist_ok=True)
  shutil.copy(f"{DATA}/empatica_e4/HR.csv", e4 / "HR.csv")
  opts = PipelineOptions([f"--output={tmp_path / 'out'}", f"--labels={labels}", *extra]
                         ).view_as(lsm_options.LsmOptions)
  p = beam.Pipeline(options=opts)
  main.build(p, opts, match_inputs([str(raw), str(e4 / "HR.csv")]), ref)
  return p, opts


def test_key_bytes_appear_nowhere_in_the_serialised_graph(tmp_path, monkeypatch):
  key_file = tmp_path / "key.txt"
  key_file.write_text(SECRET + "\n")
  for ref in (keys.KeyRef(file=str(key_file)), keys.KeyRef()):
    monkeypatch.setenv(keys.KEY_ENV, SECRET)
    p, opts = _graph(tmp_path, ref)
    graph = _payloads(p.to_runner_api().SerializeToString())
    assert b"ParseReadings" in graph and b"KeyedFlatMap" in graph  # the DoFns unpacked
    assert SECRET.encode() not in graph
    assert SECRET not in json.dumps(opts.get_all_options(), default=str)
  # The check itself finds a key that a stage holds as an argument (how it used to be).
  p = beam.Pipeline()
  _ = p | beam.Create([1]) | beam.Map(lambda x, k: x, SECRET.encode())
  assert SECRET.encode() in _payloads(p.to_runner_api().SerializeToString())


def test_literal_key_goes_to_the_environment_not_the_options(monkeypatch):
  monkeypatch.delenv(keys.KEY_ENV, raising=False)
  argv = keys.literal_to_env(["--output=o", "--subject_hash_key", SECRET, "--num_shards=1"])
  assert argv == ["--output=o", "--num_shards=1"] and os.environ[keys.KEY_ENV] == SECRET
  assert keys.literal_to_env(["--subject_hash_key=other"]) == []
  assert os.environ[keys.KEY_ENV] == "other"
  opts = PipelineOptions(argv).view_as(lsm_options.LsmOptions)
  assert lsm_options.subject_key(opts) == keys.KeyRef()
  assert keys.KeyRef().resolve() == b"other"


def test_key_file_is_read_once_per_process_and_stripped(tmp_path):
  path = tmp_path / "k"
  path.write_bytes(b"  abc\n")
  ref = keys.KeyRef(file=str(path))
  assert ref.resolve() == b"abc"
  path.write_bytes(b"changed")
  assert ref.resolve() == b"abc"  # cached: workers do not re-read it per DoFn
  empty = tmp_path / "empty"
  empty.write_bytes(b"\n")
  with pytest.raises(keys.MissingKeyError, match=f"key file {empty} is empty"):
    keys.KeyRef(file=str(empty)).resolve()


def test_secret_manager_key_read_through_the_client(monkeypatch):
  asked = []

  class FakeClient:
    def access_secret_version(self, request):
      asked.append(request["name"])
      return types.SimpleNamespace(payload=types.SimpleNamespace(data=b"from-secret\n"))

  monkeypatch.setattr(keys, "_secret_client", FakeClient)
  ref = keys.KeyRef(secret="projects/p/secrets/lsm-key")
  assert ref.resolve() == b"from-secret" and ref.resolve() == b"from-secret"
  assert asked == ["projects/p/secrets/lsm-key/versions/latest"]  # once per process
  with pytest.raises(keys.MissingKeyError, match="not a Secret Manager name"):
    keys.KeyRef(secret="lsm-key").resolve()


def test_secret_manager_missing_library_says_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "google.cloud.secretmanager", None)
  with pytest.raises(keys.MissingKeyError, match="pip install google-cloud-secret-manager"):
    keys.KeyRef(secret="projects/p/secrets/s/versions/3").resolve()


def test_environment_key_refused_on_a_remote_runner(monkeypatch):
  monkeypatch.setenv(keys.KEY_ENV, SECRET)
  opts = PipelineOptions(["--runner=DataflowRunner"]).view_as(lsm_options.LsmOptions)
  with pytest.raises(SystemExit, match="--subject_hash_key_secret"):
    lsm_options.subject_key(opts)
  monkeypatch.delenv(keys.KEY_ENV)
  with pytest.raises(SystemExit, match="no subject hash key"):
    lsm_options.subject_key(PipelineOptions([]).view_as(lsm_options.LsmOptions))


def test_default_dead_letter_dir_is_beside_the_output(tmp_path):
  assert lsm_options.default_dead_letter_dir("gs://b/lsm/v1/") == "gs://b/lsm/v1.dead_letter"
  assert lsm_options.default_dead_letter_dir(str(tmp_path / "out")) == \
      str(tmp_path / "out.dead_letter")


def _cohort(raw, root):
  """Ids that are distinctive strings, and files and folders named after them: a
  canonical CSV (with one bad row, so the dead letters hold the id), an E4 session
  folder, a Fitabase METs export (extras) with its steps."""
  cohort = raw.make_cohort(1, 40)
  cohort = {IDS[0]: cohort.popitem()[1]}
  frame = raw.wide_frame(cohort)
  frame.loc[3, "timestamp"] = "not a time"
  canonical = raw.write(frame, str(root / f"{IDS[0]}.csv"))
  e4 = root / IDS[1]
  e4.mkdir(exist_ok=True)
  for name in ("HR.csv", "TEMP.csv", "BVP.csv"):
    shutil.copy(f"{DATA}/empatica_e4/{name}", e4 / name)
  for kind in ("METs", "Steps"):
    shutil.copy(f"{DATA}/fitbit_minute/name5_minute{kind}Narrow_20190730_20230830.csv",
                root / f"{IDS[2]}_minute{kind}Narrow_20190730_20230830.csv")
  return [canonical, str(e4), str(root / f"{IDS[2]}_*.csv")]


def test_shareable_output_names_no_subject_and_no_input_path(raw, tmp_path):
  cohort_dir = tmp_path / "cohort"
  cohort_dir.mkdir()
  inputs = _cohort(raw, cohort_dir)
  out = tmp_path / "out"
  main.run(raw.pipeline_args(inputs, str(out), "--split=1,0,0", "--num_shards=1",
                             "--window_minutes=10", "--max_missing=0.9", "--tz=UTC"))
  paths = match_inputs(inputs)
  needles = privacy.identifiers(IDS, paths, root=str(cohort_dir))
  assert IDS[1] in needles and f"{IDS[0]}.csv" in needles
  manifest = json.loads((out / "manifest.json").read_text())
  written = [os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs]
  assert any(w.startswith("pretrain/") for w in written) and "extras/extras.jsonl" in written
  assert manifest["counts"]["windows"]["pretrain"]["written"]["train"] > 0
  assert privacy.find_identifiers(str(out), needles) == {}
  # Inputs by keyed id and format, never by path; the data owner recomputes the id.
  by_id = {e["id"]: e for e in manifest["inputs"]}
  canonical = by_id[keys.input_id(inputs[0], b"test-key")]
  assert canonical["format"] == "canonical_wide" and canonical["counts"]["rows_read"] == 40
  assert canonical["counts"]["rows_dead_letter/bad_timestamp"] == 1
  e4_hr = by_id[keys.input_id(os.path.join(inputs[1], "HR.csv"), b"test-key")]
  assert e4_hr == {"id": e4_hr["id"], "format": "empatica_e4",
                   "export": keys.input_id(inputs[1], b"test-key")}
  extras = [json.loads(l) for l in (out / "extras" / "extras.jsonl").read_text().splitlines()]
  assert {e["source"] for e in extras} >= {keys.input_id(
      str(cohort_dir / f"{IDS[2]}_minuteMETsNarrow_20190730_20230830.csv"), b"test-key")}
  # The dead letters, for the data owner, hold the raw rows (by design), beside the
  # output, owner-only, and no subject hash.
  letters = lsm_options.default_dead_letter_dir(str(out))
  found = privacy.find_identifiers(letters, needles)
  assert IDS[0] in found[lsm_options.DEAD_LETTER_FILE]
  entries = [json.loads(l) for l in open(os.path.join(letters, lsm_options.DEAD_LETTER_FILE))]
  assert entries and not any("subject" in e for e in entries)
  assert stat.S_IMODE(os.stat(letters).st_mode) == privacy.PRIVATE_DIR_MODE
  assert privacy.is_owner_only(os.path.join(letters, lsm_options.DEAD_LETTER_FILE))


def test_find_identifiers_reads_names_bytes_and_records(tmp_path):
  (tmp_path / "a.json").write_text('{"x": "alice-smith-1984"}')
  (tmp_path / "bob-jones-1990.txt").write_text("nothing")
  (tmp_path / "clean.txt").write_text("nothing")
  assert privacy.find_identifiers(str(tmp_path), IDS) == {
      "a.json": ["alice-smith-1984"], "bob-jones-1990.txt": ["bob-jones-1990"]}
  assert privacy.identifiers(["ab"], ["/r/ab-x/HR.csv"], root="/r") == [
      "/r/ab-x/HR.csv", "HR.csv", "ab-x", "ab"]
