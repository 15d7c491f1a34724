"""Detection: every real excerpt recognised; unknown and ambiguous files are errors."""

import gzip
import io

import pytest

from pipeline.sources import SourceError, detect, read_source
from pipeline.sources import detection as detect_module
from pipeline.sources import registry

EXPECTED = {
    "fitbit_minute/name4_minuteStepsNarrow_20190730_20230830.csv": "fitbit_minute",
    "fitbit_minute/name4_fitbitWearTimeViaHR_20190730_20230830.csv": "fitbit_minute",
    "fitbit_minute/name5_minuteMETsNarrow_20190730_20230830.csv": "fitbit_minute",
    "fitbit_heartrate_seconds/heartrate_seconds_2users.csv": "fitbit_heartrate_seconds",
    "empatica_e4/ACC.csv": "empatica_e4",
    "empatica_e4/IBI.csv": "empatica_e4",
    "empatica_e4": "empatica_e4",
    "garmin/data.csv": "garmin",
    "garmin/acc.csv": "garmin",
    "nhanes_minute_counts/example_activity_count_wide.csv": "nhanes",
    "nhanes_minute_counts/example_activity_wear_wide.csv": "nhanes",
}


@pytest.mark.parametrize("name,fmt", sorted(EXPECTED.items()))
def test_real_files(data_dir, name, fmt):
  assert detect(str(data_dir / name)) == fmt


def test_canonical_formats(write):
  assert detect(write("long.csv", "subject_id,timestamp,feature,value\n")) == (
      "canonical_long")
  assert detect(write("wide.csv", "subject_id,timestamp,HR,steps\n")) == "canonical_wide"
  with pytest.raises(SourceError, match="lsm-pipeline's canonical reader"):
    read_source([write("l2.csv", "subject_id,timestamp,feature,value\n")])


def test_unknown_file_is_an_error_naming_it(data_dir):
  with pytest.raises(SourceError, match=r"garmin/LICENSE: unknown format"):
    detect(str(data_dir / "garmin" / "LICENSE"))


def test_e4_name_without_e4_preamble_is_unknown(write):
  with pytest.raises(SourceError, match="HR.csv: unknown format"):
    detect(write("HR.csv", "time,hr\n1,2\n"))


def test_ambiguous_file_is_an_error(write, monkeypatch):
  known = dict(registry.devices())
  known["lookalike"] = registry.Device("lookalike", "anything", lambda sniff: True,
                                       read=None)
  monkeypatch.setattr(registry, "devices", lambda: known)
  with pytest.raises(SourceError, match="ambiguous format, matches garmin, lookalike; "
                     "pass --format to choose"):
    detect(write("d.csv", "2019-10-16T12:08:58.041+02:00;STEPS;299.0\n"))


def test_format_override_and_mixed_exports(data_dir, write):
  garmin = str(data_dir / "garmin" / "data.csv")
  assert read_source([garmin], format="garmin", subject_id="x").format == "garmin"
  with pytest.raises(SourceError, match="unknown format 'fitbit'"):
    read_source([garmin], format="fitbit")
  with pytest.raises(SourceError, match="different formats"):
    read_source([garmin, str(data_dir / "empatica_e4" / "EDA.csv")])


def test_any_file_like_opener_works(data_dir):
  # What Beam's FileSystems.open provides for gs://: a path in, a binary file out.
  files = {"mem://bucket/g1/data.csv": (data_dir / "garmin" / "data.csv").read_bytes()}
  r = read_source(list(files), opener=lambda path: io.BytesIO(files[path]))
  assert r.format == "garmin" and set(r.provided) == {"g1"}


def test_an_empty_file_is_named_empty_not_unknown(write, tmp_path):
  with pytest.raises(detect_module.EmptyFileError, match=r"nothing.csv: empty file"):
    detect(write("nothing.csv", ""))
  packed = tmp_path / "nothing.csv.gz"
  packed.write_bytes(gzip.compress(b""))
  with pytest.raises(detect_module.EmptyFileError, match=r"nothing.csv.gz: empty file"):
    detect(str(packed))


def test_messages_name_the_real_flags(write):
  with pytest.raises(SourceError, match=r"semi.csv: unknown format .* pass --csv_delimiter ';'"):
    detect(write("semi.csv", "subject_id;timestamp;feature;value\np1;2024-03-01T00:00Z;HR;60\n"))
  with pytest.raises(SourceError, match=r"odd.csv: unknown format .* or pass --format$"):
    detect(write("odd.csv", "a,b\n1,2\n"))


def test_gzip_bytes_under_any_name_are_detected(data_dir, tmp_path):
  packed = tmp_path / "data.csv"  # gzip bytes, a plain name
  packed.write_bytes(gzip.compress((data_dir / "garmin" / "data.csv").read_bytes()))
  assert detect(str(packed)) == "garmin"
