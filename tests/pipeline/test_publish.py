"""Atomic publication (pipeline.publish): staging, the swap, kills, unwritable output.

The unit tests stage a small fake run by hand and crash publish() at every file
system operation; the end-to-end test kills lsm-pipeline with SIGKILL during reruns
over an older output, then checks that a clean rerun writes the bytes of a fresh run.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline import main, publish
from schemas import manifest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OLD = {"pretrain/train-0000{}-of-00003.array_record".format(i): b"old shard %d" % i
       for i in range(3)}
OLD.update({"transform/transform_fn/saved_model.pb": b"old graph",
            "transform/transform_fn/variables/x": b"old variable",
            "dead_letter/dead_letter.jsonl": b"old letters", "extras/extras.jsonl": b""})
NEW = {"pretrain/train-00000-of-00001.array_record": b"new shard",
       "transform/transform_fn/saved_model.pb": b"new graph",
       "dead_letter/dead_letter.jsonl": b"new letters", "extras/extras.jsonl": b"x"}
NEW_NAMES = ["pretrain/train-00000-of-00001.array_record", "dead_letter/dead_letter.jsonl",
             "extras/extras.jsonl"]


def _files(root) -> dict:
  """{relative path: bytes} of every file under root."""
  out = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, root)] = f.read()
  return out


def _put(root, files: dict) -> None:
  for rel, data in files.items():
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    with open(os.path.join(root, rel), "wb") as f:
      f.write(data)


def _old_run(out) -> None:
  _put(out, {**OLD, manifest.MANIFEST_NAME: b'{"old": true}'})


def _stage_new_run(out) -> str:
  staging = publish.staging_dir(str(out))
  # a temporary of a retried write and a probe: staged, never published
  _put(staging, {**NEW, "pretrain/.tmp-0a1b-train-00000-of-00001.array_record": b"half"})
  return staging


def test_publish_replaces_an_older_run_with_more_shards_manifest_last(tmp_path):
  out = tmp_path / "out"
  _old_run(out)
  staging = _stage_new_run(out)
  path = publish.publish(str(out), staging, b'{"new": true}', NEW_NAMES)
  assert path == str(out / manifest.MANIFEST_NAME)
  assert _files(out) == {**NEW, manifest.MANIFEST_NAME: b'{"new": true}'}
  assert sorted(os.listdir(out)) == ["dead_letter", "extras", "manifest.json", "pretrain",
                                     "transform"]  # no staging folder left


def _crashing(monkeypatch, at: int):
  """Makes the at-th file system change (create, delete, rename) of publish raise."""
  calls = []  # one entry per change made
  for name in ("create", "delete", "rename"):
    real = getattr(FileSystems, name)

    def wrapper(*args, _real=real, **kwargs):
      calls.append(None)
      if len(calls) == at:
        raise KeyboardInterrupt("killed")  # not an Exception: nothing may catch it
      return _real(*args, **kwargs)
    monkeypatch.setattr(FileSystems, name, wrapper)


def _check_whole_or_no_manifest(out) -> str:
  """'old' (the earlier run intact), 'new' (this run published) or 'none' (no
  manifest); never a manifest beside another run's files."""
  files = _files(out)
  body = files.get(manifest.MANIFEST_NAME)
  if body is None:
    return "none"
  published = {k: v for k, v in files.items() if not k.startswith((".staging/", "tmp/"))}
  if body == b'{"old": true}':
    assert published == {**OLD, manifest.MANIFEST_NAME: body}
    return "old"
  assert published == {**NEW, manifest.MANIFEST_NAME: b'{"new": true}'}
  return "new"


def test_a_crash_at_any_step_leaves_the_old_run_or_no_manifest(tmp_path, monkeypatch):
  seen = []
  for at in range(1, 100):
    out = tmp_path / f"crash{at}"
    _old_run(out)
    staging = _stage_new_run(out)
    _crashing(monkeypatch, at)
    try:
      publish.publish(str(out), staging, b'{"new": true}', NEW_NAMES)
      crashed = False
    except KeyboardInterrupt:
      crashed = True
    monkeypatch.undo()
    state = _check_whole_or_no_manifest(out)
    seen.append(state)
    # A retry of the step (Dataflow) resumes where it stopped.
    if crashed and publish.staged(staging):
      publish.publish(str(out), staging, b'{"new": true}', NEW_NAMES)
      assert _check_whole_or_no_manifest(out) == "new"
    if not crashed:
      break
  assert not crashed and {"old", "none", "new"} <= set(seen)


def test_publish_on_a_non_local_file_system(remote):
  old = {**OLD, manifest.MANIFEST_NAME: b'{"old": true}'}
  _put(remote.dir / "out", old)
  staging = publish.staging_dir(remote.url("out"))
  assert staging.startswith("fakegs://out/.staging/")
  _put(remote.dir / staging[len("fakegs://"):], NEW)
  remote.events.clear()
  path = publish.publish(remote.url("out"), staging, b'{"new": true}', NEW_NAMES)
  assert path == "fakegs://out/manifest.json"
  assert _files(remote.dir / "out") == {**NEW, manifest.MANIFEST_NAME: b'{"new": true}'}
  # the old manifest goes first; the new one is renamed into place after every file
  assert remote.events[1] == ("delete", "fakegs://out/manifest.json")
  renames = [e[1:] for e in remote.events if e[0] == "rename"]
  assert renames == [(f"{staging}/dead_letter/dead_letter.jsonl",
                      "fakegs://out/dead_letter/dead_letter.jsonl"),
                     (f"{staging}/manifest.json", "fakegs://out/manifest.json")]
  assert not any(e[0] == "create" and e[1] == "fakegs://out/manifest.json"
                 for e in remote.events)  # never written in place


def test_unwritable_output_fails_at_start_in_one_line(tmp_path, raw, remote, monkeypatch):
  data = raw.write(raw.wide_frame(raw.make_cohort(1, 10)), str(tmp_path / "in.csv"))
  parent = tmp_path / "a_file"
  parent.write_text("not a folder")
  with pytest.raises(SystemExit) as exit_:
    main.run(raw.pipeline_args([data], str(parent / "out")))
  assert str(exit_.value.code) == (f"lsm-pipeline: cannot write to --output {parent}/out: "
                                   f"{parent} is a file, not a folder")

  def refused(*_, **__):
    raise OSError(13, "Permission denied", "fakegs://bucket/out/.staging/probe")
  fake = type(FileSystems.get_filesystem(remote.url("bucket")))
  monkeypatch.setattr(fake, "create", refused)  # a bucket this user cannot write
  with pytest.raises(SystemExit) as exit_:
    main.run(raw.pipeline_args([data], remote.url("bucket/out")))
  assert str(exit_.value.code) == (
      "lsm-pipeline: cannot write to --output fakegs://bucket/out: Permission denied "
      "(fakegs://bucket/out/.staging/probe)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_fails_at_start(tmp_path, raw):
  data = raw.write(raw.wide_frame(raw.make_cohort(1, 10)), str(tmp_path / "in.csv"))
  out = tmp_path / "out"
  out.mkdir()
  out.chmod(0o555)
  try:
    with pytest.raises(SystemExit) as exit_:
      main.run(raw.pipeline_args([data], str(out)))
  finally:
    out.chmod(0o755)
  assert str(exit_.value.code).startswith(f"lsm-pipeline: cannot write to --output {out}: "
                                          "Permission denied")


# Run in a subprocess: lsm-pipeline whose manifest rename waits, so that SIGKILL lands
# after the earlier run was removed and the new shards moved in, before the manifest.
SLOW_MANIFEST = """
import sys, time
from pipeline import main, publish
real = publish._rename
def slow(sources, destinations):
  if sources and sources[0].endswith("manifest.json"):
    time.sleep(300)
  real(sources, destinations)
publish._rename = slow
main.main(sys.argv[1:])
"""


def _kill_when(argv, ready, env) -> None:
  """Starts `argv`, SIGKILLs it as soon as ready() holds (polled every 10 ms)."""
  proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.monotonic() + 180
  while not ready():
    assert proc.poll() is None, f"exited before the kill: {proc.stdout.read().decode()}"
    assert time.monotonic() < deadline, "never reached the kill point"
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  proc.stdout.close()


def _staged_files(out) -> list:
  return [f for f in _files(out / ".staging") if not f.startswith("probe-")] \
      if (out / ".staging").exists() else []


def _older_run_with_more_shards(fresh, out) -> dict:
  """A copy of `fresh` as an earlier run that cut every split into 3 shards."""
  shutil.copytree(fresh, out)
  body = json.loads((out / manifest.MANIFEST_NAME).read_text())
  for split, entries in body["datasets"]["pretrain"].items():
    [entry] = entries
    shard = (out / entry["path"]).read_bytes()
    os.remove(out / entry["path"])
    body["datasets"]["pretrain"][split] = []
    for i in range(3):
      path = f"pretrain/{manifest.shard_name(split, i, 3)}"
      (out / path).write_bytes(shard if i == 0 else b"")
      body["datasets"]["pretrain"][split].append(
          {"path": path, "records": entry["records"] if i == 0 else 0})
  (out / manifest.MANIFEST_NAME).write_text(json.dumps(body))
  return _files(out)


def test_kill_9_during_reruns_then_a_clean_rerun_writes_a_fresh_runs_bytes(tmp_path, raw):
  data = raw.write(raw.wide_frame(raw.make_cohort(6, 400, seed=5)), str(tmp_path / "in.csv"))
  args = lambda out, *extra: raw.pipeline_args(
      [data], str(out), "--window_minutes", "60", "--num_shards", "1", *extra)
  fresh, out = tmp_path / "fresh", tmp_path / "out"
  main.run(args(fresh))
  old = _older_run_with_more_shards(fresh, out)
  env = {**os.environ, "PYTHONPATH": REPO}

  # 1. Killed while the rerun writes its staging folder: the earlier run stays whole.
  _kill_when([sys.executable, "-m", "pipeline", *args(out, "--overwrite")],
             lambda: _staged_files(out), env)
  assert {k: v for k, v in _files(out).items()
          if not k.startswith((".staging/", "tmp/"))} == old
  manifest.check_listed(str(out), manifest.load(str(out)))

  # 2. Killed inside publication, after the swap began: no manifest at all, never the
  # earlier one beside the new shards.
  new_shard = out / "pretrain" / manifest.shard_name("train", 0, 1)
  _kill_when([sys.executable, "-c", SLOW_MANIFEST, *args(out, "--overwrite")],
             lambda: new_shard.exists(), env)
  assert not (out / manifest.MANIFEST_NAME).exists()
  assert not (out / "pretrain" / manifest.shard_name("train", 1, 3)).exists()
  with pytest.raises(manifest.ManifestError, match="no manifest"):
    manifest.load(str(out))

  # 3. A clean rerun: exactly the files of a fresh run, shards and manifest byte-identical.
  main.run(args(out, "--overwrite"))
  got, want = _files(out), _files(fresh)
  assert sorted(got) == sorted(want)
  assert got[manifest.MANIFEST_NAME] == want[manifest.MANIFEST_NAME]
  shards = [k for k in want if k.endswith(".array_record")]
  assert len(shards) == 3 and all(got[k] == want[k] for k in shards)
