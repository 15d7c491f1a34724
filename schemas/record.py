"""The window record: the bytes of one ArrayRecord record.

Layout, version 1 (all little-endian; every section starts 4-byte aligned so that
decoding is a handful of zero-copy numpy views):

  offset  size        field
  0       4           magic b"LSMW"
  4       2  uint16   version (1)
  6       2  uint16   T, minutes in the window
  8       2  uint16   F, features
  10      2  uint16   length of the subject hash in bytes (S)
  12      8  int64    start: window start, UTC minutes since the Unix epoch
  20      4  float32  missing_ratio over all F features
  24      4  float32  source_missing_ratio over the features the source provides
  28      2  int16    label: window activity class (-1 unknown)
  30      2  int16    exercise: window exercise flag (1, 0, -1 unknown)
  32      1  uint8    split length in bytes (P)
  33      3           zero padding
  36      S+P         subject hash (ASCII), split name (ASCII), zero-padded to 4 bytes
  ...     4*T*F       values, float32 [T, F], normalised; 0 where missing
  ...     ceil(T*F/8) mask, np.packbits of bool [T, F] (True = observed), padded to 4
  ...     T           minute_labels, int8 [T] (activity class per minute, -1 unknown)
  ...     T           minute_exercise, int8 [T] (1, 0, -1 unknown), padded to 4
  end-4   4  uint32   CRC32C of every byte before it

A reader refuses a record whose magic, version, length or checksum is wrong, with
a RecordError that says which. Pure numpy: no TensorFlow, no pickle.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any, Mapping

import google_crc32c
import numpy as np

from schemas.constants import NUM_FEATURES, WINDOW_MINUTES

MAGIC = b"LSMW"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
_HEADER = struct.Struct("<4sHHHHqffhhB3x")  # 36 bytes
_CRC = struct.Struct("<I")
_CRC32C_RESIDUE = 0x48674BC7


class RecordError(ValueError):
  """A record that cannot be decoded: wrong magic, version, size or checksum."""


def _pad4(n: int) -> int:
  return (n + 3) & ~3


def subject_hash(raw_id: str, key: bytes) -> str:
  """Keyed hash (HMAC-SHA256, 128 bits, hex) that replaces raw subject ids.

  Keyed so that someone holding the outputs but not the key cannot test a guessed
  id; stable so the same subject always lands in the same split.
  """
  return hmac.new(key, raw_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def encode(window: Mapping[str, Any]) -> bytes:
  """Serialises one window (keys as returned by `decode`) to record bytes.

  window: values float [T, F] (normalised; cast to float32), mask bool [T, F] (True =
  observed), subject (ASCII hash), split, start (int, UTC minutes since the epoch),
  missing_ratio; optional source_missing_ratio, label and exercise (int, -1 unknown),
  minute_labels / minute_exercise (int8 [T]). Returns record_size(T, F, ...) bytes.
  Raises RecordError on a shape mismatch or a subject/split too long.
  """
  values = np.asarray(window["values"], dtype="<f4")
  if values.ndim != 2:
    raise RecordError(f"values must be [T, F], got shape {values.shape}")
  t, f = values.shape
  mask = np.asarray(window["mask"], dtype=bool)
  if mask.shape != (t, f):
    raise RecordError(f"mask shape {mask.shape} does not match values {values.shape}")
  minute_labels = _minute_array(window, "minute_labels", t)
  minute_exercise = _minute_array(window, "minute_exercise", t)
  subject = str(window["subject"]).encode("ascii")
  split = str(window["split"]).encode("ascii")
  if len(split) > 255 or len(subject) > 65535:
    raise RecordError("split or subject hash too long")
  missing_ratio = float(window["missing_ratio"])
  header = _HEADER.pack(
      MAGIC, VERSION, t, f, len(subject), int(window["start"]), missing_ratio,
      float(window.get("source_missing_ratio", missing_ratio)),
      int(window.get("label", -1)), int(window.get("exercise", -1)), len(split))
  names = subject + split
  packed_mask = np.packbits(mask.reshape(-1)).tobytes()
  minutes = minute_labels.tobytes() + minute_exercise.tobytes()
  body = b"".join((
      header, names, bytes(_pad4(len(names)) - len(names)),
      values.tobytes(),
      packed_mask, bytes(_pad4(len(packed_mask)) - len(packed_mask)),
      minutes, bytes(_pad4(len(minutes)) - len(minutes)),
  ))
  return body + _CRC.pack(google_crc32c.value(body))


def _minute_array(window: Mapping[str, Any], key: str, t: int) -> np.ndarray:
  value = window.get(key)
  if value is None:
    return np.full(t, -1, dtype=np.int8)
  array = np.asarray(value)
  if array.shape != (t,):
    raise RecordError(f"{key} must have shape ({t},), got {array.shape}")
  if array.size and (array.min() < -128 or array.max() > 127):
    raise RecordError(f"{key} values must fit int8")
  return array.astype(np.int8)


def record_size(t: int = WINDOW_MINUTES, f: int = NUM_FEATURES, subject_len: int = 32,
                split_len: int = 5) -> int:
  """Bytes of one encoded record (for sizing shards and benchmarks)."""
  return (_HEADER.size + _pad4(subject_len + split_len) + 4 * t * f
          + _pad4((t * f + 7) // 8) + _pad4(2 * t) + _CRC.size)


def decode(data: bytes) -> dict[str, Any]:
  """Parses record bytes into a dict of numpy arrays and metadata.

  Returns values float32 [T, F], mask bool [T, F], minute_labels and minute_exercise
  int8 [T], subject and split (str), start (int, UTC minutes since the epoch),
  missing_ratio and source_missing_ratio (float), label and exercise (int, -1
  unknown), version. Arrays are read-only views into `data` (copy before mutating).
  Raises RecordError naming the problem for anything that is not an intact record.
  """
  n = len(data)
  if n < _HEADER.size + _CRC.size:
    raise RecordError(f"record truncated: {n} bytes, a header alone needs {_HEADER.size}")
  (magic, version, t, f, subject_len, start, missing_ratio, source_missing_ratio,
   label, exercise, split_len) = _HEADER.unpack_from(data, 0)
  if magic != MAGIC:
    raise RecordError(f"not an LSM window record (magic {magic!r}, expected {MAGIC!r})")
  if version not in SUPPORTED_VERSIONS:
    raise RecordError(
        f"record version {version} is not supported by this reader (supports "
        f"{SUPPORTED_VERSIONS}); upgrade the lsm package to read it")
  expected = record_size(t, f, subject_len, split_len)
  if n != expected:
    raise RecordError(f"record length {n} bytes, expected {expected} for a "
                      f"[{t}, {f}] window (truncated or corrupted)")
  # CRC-32C of a message followed by its own little-endian CRC is a constant, so
  # the whole record is checked without copying the body out.
  if google_crc32c.value(data) != _CRC32C_RESIDUE:
    raise RecordError("record checksum mismatch (corrupted bytes)")
  raw = np.frombuffer(data, dtype=np.uint8)
  names = bytes(data[_HEADER.size: _HEADER.size + subject_len + split_len])
  tf_ = t * f
  o_values = _HEADER.size + _pad4(subject_len + split_len)
  o_mask = o_values + 4 * tf_
  o_minutes = o_mask + _pad4((tf_ + 7) // 8)
  return {
      "values": raw[o_values:o_mask].view("<f4").reshape(t, f),
      "mask": np.unpackbits(raw[o_mask:o_minutes], count=tf_).view(bool).reshape(t, f),
      "subject": names[:subject_len].decode("ascii"),
      "split": names[subject_len:].decode("ascii"),
      "start": start,
      "missing_ratio": missing_ratio,
      "source_missing_ratio": source_missing_ratio,
      "label": label,
      "exercise": exercise,
      "minute_labels": raw[o_minutes:o_minutes + t].view(np.int8),
      "minute_exercise": raw[o_minutes + t:o_minutes + 2 * t].view(np.int8),
      "version": version,
  }
