"""The device registry: a new format is one module; README's table is the registry's.

The proof writes a device module into a temporary folder added to
pipeline.sources' search path (as a new file under pipeline/sources/ would be),
and then detection, --format, its own flag and an lsm-pipeline run take it with no
other change.
"""

import json
import pathlib
import sys
import textwrap
import zipfile

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

import pipeline.sources
from pipeline import devices, main, options as lsm_options
from pipeline.sources import detection, read_source, registry
from schemas import manifest

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"
BEGIN, END = "<!-- devices:begin -->", "<!-- devices:end -->"

# The whole new device: a JSON array of {"t": unix seconds, "bpm": beats/min}.
FAKE_MODULE = textwrap.dedent('''
    """A made-up wearable export: a JSON array of heart-rate samples."""
    import json

    import numpy as np

    from pipeline.sources import common, registry


    def _detect(sniff):
      return (len(sniff.lines) > 1 and sniff.lines[0].strip() == "["
              and '"bpm"' in sniff.lines[1])


    def read(paths, *, tz, subject_id, subject_id_pattern, opener, fake_unit):
      subject = common.one_subject(paths, "folder", subject_id=subject_id,
                                   pattern=subject_id_pattern)
      results = []
      for path in paths:
        samples = json.loads(common.read_text(path, opener))
        t = np.array([s["t"] for s in samples], np.int64) * 10**9
        frame = common.readings_frame(subject, t.astype("datetime64[ns]"), "HR",
                                      [s["bpm"] for s in samples], path,
                                      np.arange(1, len(samples) + 1))
        results.append(common.SourceResult(
            "fake_hr", frame, common.empty_entries(), common.empty_entries(),
            {subject: frozenset({"HR"})}, len(samples), len(samples),
            {f"unit_{fake_unit}": len(samples)}))
      return common.merge_results("fake_hr", results)


    DEVICE = registry.Device(
        "fake_hr", looks_for="a JSON array of {t, bpm}", detect=_detect, read=read,
        subject_rule="the folder's name", example="lsm-pipeline --input 'fake/*.json'",
        options=(registry.Option("fake_unit", "bpm", "unit of the bpm field"),),
        optional=("quiet-*.json",))
''')
START = 1_700_000_040  # a whole minute, UTC


@pytest.fixture
def fresh_registry():
  """devices() walks the package again before and after the test."""
  registry.devices.cache_clear()
  yield
  registry.devices.cache_clear()


@pytest.fixture
def fake_device(tmp_path, monkeypatch, fresh_registry):
  """The fake device, one module in a folder on pipeline.sources' search path."""
  package = tmp_path / "plugins"
  package.mkdir()
  (package / "fake_hr.py").write_text(FAKE_MODULE)
  monkeypatch.setattr(pipeline.sources, "__path__",
                      list(pipeline.sources.__path__) + [str(package)])
  monkeypatch.delitem(sys.modules, "pipeline.sources.fake_hr", raising=False)
  yield
  sys.modules.pop("pipeline.sources.fake_hr", None)


def _fake_export(folder: pathlib.Path, minutes: int = 30) -> pathlib.Path:
  """One sample per minute from START, 60 + minute % 7 bpm, as pretty-printed JSON."""
  folder.mkdir(parents=True)
  path = folder / "hr-2023-11-14.json"
  samples = [{"t": START + 60 * i, "bpm": 60 + i % 7} for i in range(minutes)]
  path.write_text("[\n" + ",\n".join(json.dumps(s) for s in samples) + "\n]\n")
  return path


def test_a_device_is_one_module(fake_device, tmp_path):
  path = str(_fake_export(tmp_path / "p7"))
  assert detection.detect(path) == "fake_hr"
  assert "fake_hr" in lsm_options.formats() and "fake_hr" in pipeline.sources.FORMATS
  parsed = PipelineOptions(["--format=fake_hr", "--fake_unit=bpm2"]).view_as(
      lsm_options.LsmOptions)
  assert parsed.format == "fake_hr"
  assert lsm_options.device_options(parsed)["fake_unit"] == "bpm2"
  result = read_source([path], options={"fake_unit": "x"})
  assert result.format == "fake_hr" and result.notes == {"unit_x": 30}
  assert result.readings["value"].tolist()[:8] == [60, 61, 62, 63, 64, 65, 66, 60]
  # Its .json is the device's under --format auto, not JSON lines for the canonical reader.
  assert devices._detect(path) == "fake_hr"
  # An empty optional file (Device.optional) is the device's by name, skipped, counted.
  quiet = tmp_path / "p7" / "quiet-2023-11-14.json"
  quiet.write_text("")
  assert detection.detect(str(quiet)) == "fake_hr"
  both = read_source([path, str(quiet)])
  assert both.notes == {"unit_bpm": 30, "optional_files_empty": 1}
  assert "| `fake_hr` | a JSON array of {t, bpm} | no | the folder's name |" in (
      registry.markdown_table())


def test_the_new_device_runs_end_to_end(fake_device, tmp_path, raw):
  """30 minutes of one subject -> three 10-minute windows in train, its flag read."""
  _fake_export(tmp_path / "in" / "p7")
  out = str(tmp_path / "out")
  main.run(raw.pipeline_args([str(tmp_path / "in" / "p7" / "*.json")], out,
                             "--split=1,0,0", "--num_shards=1", "--window_minutes=10",
                             "--fake_unit=beats"))
  m = manifest.load(out)
  assert [e["format"] for e in m["inputs"]] == ["fake_hr"]
  assert m["counts"]["windows"]["pretrain"]["written"] == {"train": 3, "valid": 0,
                                                           "test": 0}
  fake = m["counts"]["sources"]["fake_hr"]
  assert fake["entries_read"] == 30 and fake["unit_beats"] == 30
  assert m["options"]["device_options_given"] == ["fake_unit"]


def test_readme_table_is_the_registrys(fresh_registry):
  text = README.read_text()
  assert text.count(BEGIN) == 1 and text.count(END) == 1
  table = text.split(BEGIN, 1)[1].split(END, 1)[0]
  assert table.strip("\n") + "\n" == registry.markdown_table(), (
      "README.md's device table is stale: paste pipeline.sources.registry.markdown_table()")


def test_canonical_formats_come_first(fresh_registry):
  assert registry.formats()[:2] == ("canonical_long", "canonical_wide")
  assert set(devices.device_formats()) == set(registry.formats()[2:])


def test_two_defaults_for_one_flag_are_refused(tmp_path, monkeypatch, fresh_registry):
  package = tmp_path / "plugins"
  package.mkdir()
  for name, default in (("twin_a", "1"), ("twin_b", "2")):
    (package / f"{name}.py").write_text(textwrap.dedent(f'''
        from pipeline.sources import registry
        DEVICE = registry.Device("{name}", "x", lambda s: False, read=lambda p: None,
                                 options=(registry.Option("shared", "{default}", "h"),))
    '''))
    monkeypatch.delitem(sys.modules, f"pipeline.sources.{name}", raising=False)
  monkeypatch.setattr(pipeline.sources, "__path__",
                      list(pipeline.sources.__path__) + [str(package)])
  with pytest.raises(ValueError, match="option --shared declared with defaults '1' and '2'"):
    registry.devices()
  for name in ("twin_a", "twin_b"):
    sys.modules.pop(f"pipeline.sources.{name}", None)


def test_sniff_sees_a_zip_and_an_xml_root_after_its_doctype(tmp_path):
  packed = tmp_path / "export.zip"
  with zipfile.ZipFile(packed, "w") as z:
    z.writestr("notes/readme.xml", "<Notes/>")
  found = detection.sniff(str(packed))
  assert (found.magic[:4], found.lines, found.text) == (b"PK\x03\x04", [], False)
  with pytest.raises(pipeline.sources.SourceError, match=r"export.zip: unknown format "
                     r"\(not text, first bytes b'PK\\x03\\x04"):
    detection.detect(str(packed))
  xml = tmp_path / "export.xml"
  xml.write_text('<?xml version="1.0"?>\n<!DOCTYPE HealthData [\n<!ELEMENT a (b)>\n'
                 '<!ATTLIST a\n  x CDATA #REQUIRED\n>\n]>\n<HealthData locale="en">\n'
                 + "<Record/>\n" * 20)
  lines = detection.sniff(str(xml)).lines
  assert len(lines) == detection.SNIFF_LINES and lines[-1] == '<HealthData locale="en">'
