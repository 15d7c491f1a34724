"""NHANES-style wide day rows: ID, Day, MIN1..MIN1440, plus a wear-flag companion.

The counts are ActiGraph hip activity counts: not steps and not any other LSM
feature, so this source provides no LSM feature at all. Its rows are kept as
extras (not_an_lsm_feature) rather than forced into `steps`; the subjects are
still declared (with an empty feature set) so the manifest shows them. The public
files carry no calendar dates (Day is the day of wear), so extras have no
timestamp. Which file is which is read from the file name ('count' / 'wear'),
because both have the same header.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.sources import common, registry

MINUTES_PER_DAY = 1440
HEADER_PREFIX = ["ID", "Day", "MIN1"]


def is_nhanes_header(header: list[str]) -> bool:
  return (len(header) == 2 + MINUTES_PER_DAY and header[:3] == HEADER_PREFIX
          and header[-1] == f"MIN{MINUTES_PER_DAY}")


def role_of(path: str) -> str:
  """'wear' or 'counts' from the file name; an error if the name does not say."""
  name = common.basename(path).lower()
  wear, count = "wear" in name, "count" in name
  if wear == count:
    raise common.SourceError(
        f"{path}: NHANES counts and wear-flag files share one header; the file name "
        "must contain 'count' or 'wear' (not both) to tell them apart")
  return "wear" if wear else "counts"


def read_nhanes(paths: Sequence[str], *, opener: common.Opener = common.local_open,
                ) -> common.SourceResult:
  """Counts files (extras) and wear files (validated, summarised in notes)."""
  results = [_read(p, role_of(p), opener) for p in paths]
  return common.merge_results("nhanes", results)


def _read(path: str, role: str, opener: common.Opener) -> common.SourceResult:
  rows = common.split_rows(common.read_text(path, opener), path)
  if not is_nhanes_header(rows.header):
    raise common.SourceError(f"{path}: expected header ID,Day,MIN1..MIN{MINUTES_PER_DAY}")
  f = rows.fields
  row_no = f.index.to_numpy()
  ids = f[0].to_numpy(dtype=object)
  day, day_reason = common.classify_values(f[1])
  reason = np.where(ids == "", "missing_subject", "")
  reason = np.where((reason == "") & (day_reason != ""), "bad_timestamp", reason)
  ok = reason == ""
  cells = f.iloc[:, 2:]
  dead = common.reason_entries(path, reason, row_no, subject_id=ids, field="ID,Day",
                               raw=(f[0] + "," + f[1]).to_numpy(dtype=object))
  notes = {}
  provided = {s: frozenset() for s in pd.unique(ids[ok])}
  if role == "wear":
    flags = common.numbers(pd.Series(cells[ok].to_numpy(dtype=object).ravel())).to_numpy()
    notes = {"nhanes_wear_minutes": int(np.nansum(flags == 1)),
             "nhanes_nonwear_minutes": int(np.nansum(flags == 0))}
    return common.SourceResult("nhanes", common.empty_readings(), common.empty_entries(),
                               pd.concat([rows.malformed, dead], ignore_index=True),
                               provided, rows.n_rows, int(ok.sum()), notes)
  extras = common.entries(path, row_no[ok], "not_an_lsm_feature", subject_id=ids[ok],
                          field="activity_counts",
                          raw=("Day " + f[1][ok] + ": " +
                               cells[ok].iloc[:, :10].agg(",".join, axis=1) + ",...")
                          .to_numpy(dtype=object))
  return common.SourceResult("nhanes", common.empty_readings(), extras,
                             pd.concat([rows.malformed, dead], ignore_index=True),
                             provided, rows.n_rows, 0, notes)


def _registry_read(paths: Sequence[str], *, tz, subject_id, subject_id_pattern,
                   opener: common.Opener) -> common.SourceResult:
  """The registry's call; NHANES rows name their subject (ID) and have no dates, so
  neither tz nor the subject options apply."""
  del tz, subject_id, subject_id_pattern
  return read_nhanes(paths, opener=opener)


DEVICE = registry.Device(
    "nhanes", looks_for="header ID,Day,MIN1..MIN1440",
    detect=lambda sniff: bool(sniff.lines) and is_nhanes_header(sniff.lines[0].split(",")),
    read=_registry_read, subject_rule="the ID column",
    example="lsm-pipeline --input counts.csv --input wear.csv --output out")
