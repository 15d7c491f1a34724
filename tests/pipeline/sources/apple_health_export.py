"""Synthetic Apple Health exports (export.xml), written as the Health app writes them.

Used by test_apple_health.py (a week across the March 2024 DST change, a watch and a
phone counting the same steps, duplicates, unmapped types) and by
benchmarks/apple_health_memory.py (years of days, streamed to a ~1 GB file).
Times are generated as UTC instants and written in America/Los_Angeles with the
offset of that instant ('2024-03-10 01:55:00 -0800', then '... -0700'), as Apple does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import IO, Iterable, Iterator

LA = zoneinfo.ZoneInfo("America/Los_Angeles")
WATCH = "Alice’s Apple Watch"
PHONE = "Alice’s iPhone"
WATCH_DEVICE = ("&lt;&lt;HKDevice: 0x283c8a8f0&gt;, name:Apple Watch, manufacturer:Apple "
                "Inc., model:Watch, hardware:Watch6,1, software:10.3&gt;")
PHONE_DEVICE = ("&lt;&lt;HKDevice: 0x283c8b110&gt;, name:iPhone, manufacturer:Apple Inc., "
                "model:iPhone, hardware:iPhone14,2, software:17.3&gt;")
HK = "HKQuantityTypeIdentifier"

# An excerpt of the DTD Apple writes before the root (the real one is ~200 lines).
DTD = """<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 14 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary|ClinicalRecord|Audiogram|VisionPrescription)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
<!ELEMENT ExportDate EMPTY>
<!ATTLIST ExportDate
  value CDATA #REQUIRED
>
<!ELEMENT Me EMPTY>
<!ATTLIST Me
  HKCharacteristicTypeIdentifierDateOfBirth         CDATA #REQUIRED
  HKCharacteristicTypeIdentifierBiologicalSex       CDATA #REQUIRED
>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record
  type          CDATA #REQUIRED
  unit          CDATA #IMPLIED
  value         CDATA #IMPLIED
  sourceName    CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device        CDATA #IMPLIED
  creationDate  CDATA #IMPLIED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
<!ELEMENT MetadataEntry EMPTY>
<!ATTLIST MetadataEntry
  key   CDATA #REQUIRED
  value CDATA #REQUIRED
>
<!ELEMENT HeartRateVariabilityMetadataList (InstantaneousBeatsPerMinute*)>
<!ELEMENT InstantaneousBeatsPerMinute EMPTY>
<!ATTLIST InstantaneousBeatsPerMinute
  bpm  CDATA #REQUIRED
  time CDATA #REQUIRED
>
]>
"""


def apple_time(t: dt.datetime) -> str:
  """Apple's date form, in Los Angeles local time with that instant's offset."""
  return t.astimezone(LA).strftime("%Y-%m-%d %H:%M:%S %z")


def utc(*args) -> dt.datetime:
  return dt.datetime(*args, tzinfo=dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Rec:
  """One Record element; start/end are aware datetimes, value as written."""
  type: str
  value: str
  start: dt.datetime
  end: dt.datetime | None = None
  unit: str = ""
  source: str = WATCH
  device: str | None = WATCH_DEVICE
  children: str = ""

  def xml(self) -> str:
    end = self.end or self.start
    device = f' device="{self.device}"' if self.device else ""
    attrs = (f'<Record type="{self.type}" sourceName="{self.source}" sourceVersion="10.3"'
             f'{device} unit="{self.unit}" creationDate="{apple_time(end)}" '
             f'startDate="{apple_time(self.start)}" endDate="{apple_time(end)}" '
             f'value="{self.value}"')
    return (f" {attrs}>\n{self.children}  </Record>\n" if self.children
            else f" {attrs}/>\n")


def write_export(out: IO[str], entries: Iterable[Rec | str], *, dtd: bool = True) -> int:
  """Writes an export.xml (streaming) to a text file; entries are Recs or raw XML
  elements (Workout, ActivitySummary). Returns the number of entries written."""
  out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
  if dtd:
    out.write(DTD)
  out.write('<HealthData locale="en_US">\n <ExportDate value="2024-03-15 09:00:00 -0700"/>\n'
            ' <Me HKCharacteristicTypeIdentifierDateOfBirth="1990-01-01" '
            'HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexFemale"/>\n')
  n = 0
  for e in entries:
    out.write(e.xml() if isinstance(e, Rec) else e)
    n += 1
  out.write("</HealthData>\n")
  return n


def day(d0: dt.datetime) -> Iterator[Rec | str]:
  """One day of a watch and a phone from UTC instant d0 (times below: after d0).

  HR and basal energy every 5 min (watch); active energy every minute from 06:00 to
  22:00 (about the record mix of a real watch export, ~0.9 MB a day); watch steps in
  7 min 20 s records from 08:00:30 to 19:59:10 (crossing minute boundaries); phone
  steps in 10 min records from 08:00 to 22:00 (overlapping the watch until 20:00),
  each step record with its distance; resting HR from 06:00 to 23:59; SDNN at 03:00
  with its beat list; wrist temperature 01:00-06:00; sleep (unmapped); a Workout
  and an ActivitySummary.
  """
  minute = dt.timedelta(minutes=1)
  for i in range(288):
    t = d0 + i * 5 * minute + dt.timedelta(seconds=17)
    yield Rec(f"{HK}HeartRate", str(60 + i % 40), t, unit="count/min")
    yield Rec(f"{HK}BasalEnergyBurned", "5.2", t, t + 5 * minute, unit="kcal")
  for i in range(6 * 60, 22 * 60):
    t = d0 + i * minute
    yield Rec(f"{HK}ActiveEnergyBurned", "0.5", t, t + minute, unit="kcal")
  step = dt.timedelta(minutes=7, seconds=20)
  t = d0 + dt.timedelta(hours=8, seconds=30)
  for i in range(98):
    yield Rec(f"{HK}StepCount", str(44 + i % 30), t, t + step, unit="count")
    yield Rec(f"{HK}DistanceWalkingRunning", "0.03", t, t + step, unit="km")
    t += step
  for i in range(84):
    start = d0 + dt.timedelta(hours=8) + i * 10 * minute
    yield Rec(f"{HK}StepCount", "400", start, start + 10 * minute, unit="count",
              source=PHONE, device=PHONE_DEVICE)
    yield Rec(f"{HK}DistanceWalkingRunning", "0.3", start, start + 10 * minute,
              unit="km", source=PHONE, device=PHONE_DEVICE)
  yield Rec(f"{HK}RestingHeartRate", "58", d0 + dt.timedelta(hours=6),
            d0 + dt.timedelta(hours=23, minutes=59), unit="count/min")
  beats = "".join(f'    <InstantaneousBeatsPerMinute bpm="{60 + k % 5}" time="3:00:{k:02d}.{k}0 AM"/>\n'
                  for k in range(50))
  hrv_at = d0 + dt.timedelta(hours=3)
  yield Rec(f"{HK}HeartRateVariabilitySDNN", "41.5", hrv_at, hrv_at + minute, unit="ms",
            children=f"   <HeartRateVariabilityMetadataList>\n{beats}   "
                     "</HeartRateVariabilityMetadataList>\n")
  yield Rec(f"{HK}AppleSleepingWristTemperature", "35.2", d0 + dt.timedelta(hours=1),
            d0 + dt.timedelta(hours=6), unit="degC")
  yield Rec("HKCategoryTypeIdentifierSleepAnalysis",
            "HKCategoryValueSleepAnalysisAsleepCore", d0, d0 + dt.timedelta(hours=6))
  w0 = apple_time(d0 + dt.timedelta(hours=17))
  w1 = apple_time(d0 + dt.timedelta(hours=17, minutes=30))
  yield (f' <Workout workoutActivityType="HKWorkoutActivityTypeRunning" duration="30" '
         f'durationUnit="min" sourceName="{WATCH}" startDate="{w0}" endDate="{w1}">\n'
         f'  <WorkoutEvent type="HKWorkoutEventTypeSegment" date="{w0}"/>\n </Workout>\n')
  yield (f' <ActivitySummary dateComponents="{apple_time(d0)[:10]}" '
         'activeEnergyBurned="420" activeEnergyBurnedUnit="Cal"/>\n')


def days(first: dt.datetime, n: int) -> Iterator[Rec | str]:
  """n consecutive days from `first` (a UTC instant), grouped by day as Apple does not
  (it groups by type); the parser must not care."""
  for k in range(n):
    yield from day(first + dt.timedelta(days=k))
