import struct

import numpy as np
import pytest

import schemas
from schemas import record


def make_window(seed=0, t=schemas.WINDOW_MINUTES, f=schemas.NUM_FEATURES, labelled=True):
  rng = np.random.default_rng(seed)
  mask = rng.random((t, f)) > 0.3
  window = {
      "values": np.where(mask, rng.standard_normal((t, f)), 0).astype(np.float32),
      "mask": mask,
      "subject": record.subject_hash(f"subject-{seed}", b"secret"),
      "split": "valid",
      "start": 27_000_000 + seed,
      "missing_ratio": float(1 - mask.mean()),
      "source_missing_ratio": 0.125,
  }
  if labelled:
    window.update(label=4, exercise=1,
                  minute_labels=rng.integers(-1, 8, t), minute_exercise=rng.integers(-1, 2, t))
  return window


def test_round_trip_is_bit_exact():
  window = make_window()
  decoded = record.decode(record.encode(window))
  assert decoded["values"].dtype == np.float32 and decoded["values"].shape == (300, 26)
  assert decoded["values"].tobytes() == window["values"].tobytes()
  assert decoded["mask"].dtype == bool
  np.testing.assert_array_equal(decoded["mask"], window["mask"])
  np.testing.assert_array_equal(decoded["minute_labels"], window["minute_labels"])
  np.testing.assert_array_equal(decoded["minute_exercise"], window["minute_exercise"])
  for key in ("subject", "split", "start", "label", "exercise"):
    assert decoded[key] == window[key], key
  assert decoded["missing_ratio"] == np.float32(window["missing_ratio"])
  assert decoded["source_missing_ratio"] == 0.125
  assert decoded["version"] == record.VERSION


def test_unlabelled_window_defaults_to_unknown():
  window = make_window(labelled=False)
  del window["source_missing_ratio"]
  decoded = record.decode(record.encode(window))
  assert decoded["label"] == -1 and decoded["exercise"] == -1
  assert (decoded["minute_labels"] == -1).all() and (decoded["minute_exercise"] == -1).all()
  assert decoded["source_missing_ratio"] == np.float32(decoded["missing_ratio"])


@pytest.mark.parametrize("t, f", [(300, 26), (60, 26), (7, 3), (1, 1)])
def test_other_shapes_round_trip(t, f):
  window = make_window(t=t, f=f)
  data = record.encode(window)
  assert len(data) == record.record_size(t, f, 32, len("valid"))
  decoded = record.decode(data)
  np.testing.assert_array_equal(decoded["mask"], window["mask"])
  assert decoded["values"].tobytes() == window["values"].tobytes()


def test_subject_hash_is_keyed_and_stable():
  assert record.subject_hash("a", b"k") == record.subject_hash("a", b"k")
  assert record.subject_hash("a", b"k") != record.subject_hash("a", b"other")
  assert len(record.subject_hash("a", b"k")) == 32
  assert "participant-0042" not in record.subject_hash("participant-0042", b"k")


def test_truncated_record_is_refused():
  data = record.encode(make_window())
  for cut in (0, 10, len(data) // 2, len(data) - 1):
    with pytest.raises(record.RecordError, match="truncated"):
      record.decode(data[:cut])


@pytest.mark.parametrize("position", [40, 100, 5000, 31000, -3])
def test_corrupted_byte_is_refused(position):
  data = bytearray(record.encode(make_window()))
  data[position] ^= 0x10
  with pytest.raises(record.RecordError, match="checksum"):
    record.decode(bytes(data))


def test_wrong_magic_is_refused():
  data = record.encode(make_window())
  with pytest.raises(record.RecordError, match="not an LSM window record"):
    record.decode(b"XXXX" + data[4:])


def test_newer_version_is_refused_with_its_number():
  data = bytearray(record.encode(make_window()))
  struct.pack_into("<H", data, 4, 7)
  with pytest.raises(record.RecordError, match="version 7"):
    record.decode(bytes(data))


def test_encode_validates_shapes():
  window = make_window()
  window["mask"] = window["mask"][:10]
  with pytest.raises(record.RecordError, match="mask shape"):
    record.encode(window)
  window = make_window()
  window["minute_labels"] = np.zeros(5)
  with pytest.raises(record.RecordError, match="minute_labels"):
    record.encode(window)


def test_decoded_arrays_are_read_only_views():
  decoded = record.decode(record.encode(make_window()))
  with pytest.raises(ValueError):
    decoded["values"][0, 0] = 1.0
