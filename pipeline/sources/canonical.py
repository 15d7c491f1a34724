"""The canonical formats (schemas/raw.py) as registry entries.

lsm-pipeline reads them itself (pipeline/read.py, pipeline/parse.py), so their
`read` is None; they are declared here so that detection, --format and the README
table list them beside the devices. pipeline/devices.py also takes a CSV whose
header names subject_id and timestamp through aliases or with extra columns as
canonical, which these strict rules do not accept.
"""

from __future__ import annotations

from pipeline.sources.registry import Device, Sniff
from schemas.features import canonical_name
from schemas.raw import LONG_COLUMNS, WIDE_ID_COLUMNS


def _columns(sniff: Sniff) -> list[str]:
  return [h.strip() for h in sniff.lines[0].split(",")] if sniff.lines else []


def is_long(sniff: Sniff) -> bool:
  return _columns(sniff) == list(LONG_COLUMNS)


def is_wide(sniff: Sniff) -> bool:
  cols = _columns(sniff)
  return (cols[:2] == list(WIDE_ID_COLUMNS) and len(cols) > 2
          and all(canonical_name(c) for c in cols[2:]))


_SUBJECT = "the subject_id column"
DEVICES = (
    Device("canonical_long", looks_for="header subject_id,timestamp,feature,value",
           detect=is_long, read=None, subject_rule=_SUBJECT,
           example="lsm-pipeline --input 'raw/*.csv' --output out"),
    Device("canonical_wide", looks_for="header subject_id,timestamp,<LSM features>",
           detect=is_wide, read=None, subject_rule=_SUBJECT,
           example="lsm-pipeline --input wide.parquet --output out"),
)
