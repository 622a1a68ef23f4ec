"""Preventive-care recall definitions (data, not rules): who is due, for which period, since when.

One definition serves two readers:

- a `Rule` of kind preventive_recall names one in `params["recall"]`; the rule's materialization
  (engagement.services) sends one message per due patient per period: the outbox slot is
  "<recall key>:<period key>", so a beat that runs every few minutes never sends twice;
- the care-gap worklist (analytics.gaps) opens a gap for every patient `open_gaps(now)` returns
  (with the date the gap opened) and closes it when a record counted by `closing` arrives.

A definition is: the patients who may have the gap (`eligible`, SQL on plain columns), the
records that close it (`closing`, with the date field `done_field`), how far back such a record
counts (`window`), how long one is good for (`valid_for`, to date the gap), and optional Python
filters on the candidates only (`patient_matches`: sex and date of birth are encrypted, never in
SQL) and a season (`in_season`, `season_opens`). Changing a definition here changes both the
recall messages and the worklist.

Clinical sources and our simplifications, one per definition:

- hba1c: ADA Standards of Care in Diabetes, section 6 (glycemic goals): A1C at least twice a year
  when at goal, quarterly when therapy changed or not at goal. Simplified: quarterly for every
  patient with an active type 2 diabetes condition (SNOMED 44054006 exactly, no descendant codes);
  only LOINC 4548-4 counts (not 17856-6 or point-of-care codes); a result older than 90 days is
  stale. Eligible since the diagnosis was recorded here (the onset date is encrypted, often empty).
  The HEDIS measure (one result a year) is looser.
- annual_wellness: the Medicare Annual Wellness Visit (42 CFR 410.15: once every 12 months).
  Simplified: every active patient, whatever the age or insurance; a completed appointment of type
  "annual" in the last 365 days closes it (a booked one does not).
- flu_shot: CDC/ACIP, a seasonal influenza vaccine every year for everyone 6 months and older,
  offered from September. Simplified: the season is September to December (no January-March
  recalls; an open gap of a season that ended closes as expired); a completed immunization with
  CVX 141 or 158 since 1 August counts; no age or contraindication exclusions.
- mammography: USPSTF breast cancer screening (2016: biennial for women 50-74; the 2024 update
  starts at 40) and HEDIS BCS-E (50-74). Simplified: recorded sex "female", aged 50-74 today, no
  mastectomy exclusion; a mammography observation (MAMMOGRAPHY_LOINC) in the last 730 days counts.

Limitation: patients/ has no procedure model. Mammography is taken as done when the patient has
an observation with a mammography LOINC code (MAMMOGRAPHY_LOINC) in the last two years.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Exists, Min, OuterRef

TYPE_2_DIABETES = "44054006"  # SNOMED CT
HBA1C = "4548-4"  # LOINC
FLU_VACCINES = ("141", "158")  # CVX
MAMMOGRAPHY_LOINC = ("24606-6", "24604-1", "26346-7", "36625-2")
ACTIVE_CONDITION = ("active", "recurrence", "relapse")

# What closes a gap (analytics.models.CareGap.closed_by).
OBSERVATION, IMMUNIZATION, VISIT = "observation", "immunization", "visit"


def _quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _year(day: date) -> str:
    return str(day.year)


def _two_years(day: date) -> str:
    first = day.year - (day.year % 2)
    return f"{first}-{first + 1}"


def _always(day: date) -> bool:
    return True


def _autumn(day: date) -> bool:
    return day.month >= 9  # September to December


def _no_season(day: date) -> date | None:
    return None


def _flu_season_opens(day: date) -> date | None:
    return date(day.year, 9, 1)


def _everyone(patient: Any, day: date) -> bool:
    return True


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _birthday(birth: date, years: int) -> date:
    try:
        return birth.replace(year=birth.year + years)
    except ValueError:  # 29 February
        return date(birth.year + years, 3, 1)


def _women_50_74(patient: Any, day: date) -> bool:
    """Decrypts sex and date of birth (candidates only: never in SQL)."""
    if patient.sex != "female" or patient.date_of_birth is None:
        return False
    return 50 <= age_on(patient.date_of_birth, day) <= 74


def _local_date(moment: datetime, zone: Any) -> date:
    return moment.astimezone(zone).date()


def _registered_since(patient_ids: list[int], zone: Any) -> dict[int, date]:
    """Eligible since the patient was registered here (the default)."""
    from patients.models import Patient

    rows = Patient.objects.filter(pk__in=patient_ids).values_list("pk", "created_at")
    return {pk: _local_date(created, zone) for pk, created in rows}


def _diagnosed_since(patient_ids: list[int], zone: Any) -> dict[int, date]:
    """Eligible since the (earliest active) type 2 diabetes diagnosis was recorded here. The onset
    date is encrypted and often missing; the date the condition was recorded is a plain column."""
    from patients.models import Condition

    rows = (
        Condition.objects.filter(patient_id__in=patient_ids, code=TYPE_2_DIABETES, clinical_status__in=ACTIVE_CONDITION)
        .values("patient_id")
        .annotate(first=Min("created_at"))
        .values_list("patient_id", "first")
    )
    return {pk: _local_date(first, zone) for pk, first in rows}


def _fifty_since(patient_ids: list[int], zone: Any) -> dict[int, date]:
    """Registered and 50 years old (whichever came later); birth dates decrypted here, candidates only."""
    from patients.models import Patient

    patients = Patient.objects.filter(pk__in=patient_ids).only("pk", "created_at", "date_of_birth")
    return {
        p.pk: max(_local_date(p.created_at, zone), _birthday(p.date_of_birth, 50)) for p in patients if p.date_of_birth
    }


def _patients() -> Any:
    from patients.models import Patient

    return Patient.objects.filter(is_active=True)


def _diabetics() -> Any:
    from patients.models import Condition

    diabetic = Condition.objects.filter(
        patient_id=OuterRef("pk"), code=TYPE_2_DIABETES, clinical_status__in=ACTIVE_CONDITION
    )
    return _patients().filter(Exists(diabetic))


def _hba1c_results() -> Any:
    from patients.models import Observation

    return Observation.objects.filter(code=HBA1C)


def _annual_visits() -> Any:
    from patients.models import Appointment

    return Appointment.objects.filter(appointment_type="annual", status="completed")


def _flu_shots() -> Any:
    from patients.models import Immunization

    return Immunization.objects.filter(vaccine_code__in=FLU_VACCINES, status="completed")


def _mammograms() -> Any:
    from patients.models import Observation

    return Observation.objects.filter(code__in=MAMMOGRAPHY_LOINC)


def _days_back(days: int) -> Callable[[datetime], datetime]:
    def window(now: datetime) -> datetime:
        return now - timedelta(days=days)

    return window


def _since_august(now: datetime) -> datetime:
    return now.replace(month=8, day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Recall:
    """One preventive-care recall, and so one kind of care gap (see the module docstring)."""

    key: str
    name: str
    template_key: str
    period_key: Callable[[date], str]
    eligible: Callable[[], Any]  # a Patient queryset (plain columns only)
    closing: Callable[[], Any]  # a queryset of the records that close the gap
    done_field: str  # their date or datetime field
    closed_by: str  # OBSERVATION, IMMUNIZATION or VISIT
    window: Callable[[datetime], datetime]  # a closing record at or after this counts as done now
    valid_for: timedelta | None  # how long one is good for (None: for the season)
    eligible_since: Callable[[list[int], Any], dict[int, date]] = _registered_since
    in_season: Callable[[date], bool] = _always
    season_opens: Callable[[date], date | None] = _no_season
    patient_matches: Callable[[Any, date], bool] = _everyone

    @property
    def reads_demographics(self) -> bool:
        """Whether `patient_matches` reads the candidates' decrypted sex and date of birth."""
        return self.patient_matches is not _everyone

    # -- Reads ------------------------------------------------------------------------------------

    def _done_since(self, moment: datetime) -> Any:
        field = self.closing().model._meta.get_field(self.done_field)
        bound = moment if isinstance(field, models.DateTimeField) else moment.date()
        return self.closing().filter(**{f"{self.done_field}__gte": bound})

    def due_patient_ids(self, now: datetime) -> set[int]:
        """Eligible patients without a closing record in the window (SQL; `patient_matches` and the
        season are the caller's: the materializer checks them on the candidates it loads)."""
        done = self._done_since(self.window(now)).filter(patient_id=OuterRef("pk"))
        return set(self.eligible().exclude(Exists(done)).values_list("pk", flat=True))

    def due_now(self, now: datetime, chunk: int = 1000) -> set[int]:
        """The patients with an open gap now: due, in season, and matching `patient_matches`
        (decrypting only the fields it reads, for the candidates only)."""
        today = now.date()
        if not self.in_season(today):
            return set()
        ids = self.due_patient_ids(now)
        if not self.reads_demographics:
            return ids
        return self.matching(ids, today, chunk)

    def matching(self, patient_ids: Iterable[int], today: date, chunk: int = 1000) -> set[int]:
        """Those of these patients who meet `patient_matches` today (decrypting sex and birth date)."""
        from patients.models import Patient

        ordered = sorted(patient_ids)
        found: set[int] = set()
        for index in range(0, len(ordered), chunk):
            batch = ordered[index : index + chunk]
            candidates = Patient.objects.filter(pk__in=batch).only("pk", "sex", "date_of_birth")
            found.update(p.pk for p in candidates if self.patient_matches(p, today))
        return found

    def gap_since(self, patient_ids: Iterable[int], now: datetime, chunk: int = 1000) -> dict[int, date]:
        """Since when each of these patients has had the gap (a local date of `now`'s zone): the day
        the last closing record stopped counting (its date + `valid_for`), or the season's opening,
        but never before the patient became eligible (`eligible_since`), nor after today."""
        zone, today = now.tzinfo, now.date()
        season = self.season_opens(today)
        ordered = sorted(patient_ids)
        gaps: dict[int, date] = {}
        for index in range(0, len(ordered), chunk):
            batch = ordered[index : index + chunk]
            since = self.eligible_since(batch, zone)
            last = self.last_done(batch, zone)
            for pk in batch:
                dates = [since.get(pk, today)]
                if pk in last and self.valid_for is not None:
                    dates.append(last[pk] + self.valid_for)
                if season is not None:
                    dates.append(season)
                gaps[pk] = min(max(dates), today)
        return gaps

    def open_gaps(self, now: datetime) -> dict[int, date]:
        """Which patients have an open gap now, and since when."""
        return self.gap_since(self.due_now(now), now)

    def last_done(self, patient_ids: Iterable[int], zone: Any) -> dict[int, date]:
        """The date of each patient's latest closing record (any time)."""
        return self._dates(self.closing().filter(patient_id__in=list(patient_ids)), zone, latest=True)

    def first_done_since(self, patient_ids: Iterable[int], now: datetime) -> dict[int, date]:
        """The date of each patient's first closing record inside the window (what closed the gap)."""
        return self._dates(self._done_since(self.window(now)).filter(patient_id__in=list(patient_ids)), now.tzinfo)

    def _dates(self, queryset: Any, zone: Any, latest: bool = False) -> dict[int, date]:
        found: dict[int, date] = {}
        for patient_id, value in queryset.values_list("patient_id", self.done_field):
            day = _local_date(value, zone) if isinstance(value, datetime) else value
            if patient_id not in found or (day > found[patient_id] if latest else day < found[patient_id]):
                found[patient_id] = day
        return found


RECALLS: dict[str, Recall] = {
    recall.key: recall
    for recall in (
        Recall(
            "hba1c",
            "HbA1c every 3 months (type 2 diabetes)",
            "recall_hba1c",
            _quarter,
            eligible=_diabetics,
            closing=_hba1c_results,
            done_field="effective_at",
            closed_by=OBSERVATION,
            window=_days_back(90),
            valid_for=timedelta(days=90),
            eligible_since=_diagnosed_since,
        ),
        Recall(
            "annual_wellness",
            "Annual wellness visit",
            "recall_annual_wellness",
            _year,
            eligible=_patients,
            closing=_annual_visits,
            done_field="starts_at",
            closed_by=VISIT,
            window=_days_back(365),
            valid_for=timedelta(days=365),
        ),
        Recall(
            "flu_shot",
            "Flu shot each autumn",
            "recall_flu_shot",
            _year,
            eligible=_patients,
            closing=_flu_shots,
            done_field="occurrence_date",
            closed_by=IMMUNIZATION,
            window=_since_august,
            valid_for=None,
            in_season=_autumn,
            season_opens=_flu_season_opens,
        ),
        Recall(
            "mammography",
            "Mammography every 2 years (women 50-74)",
            "recall_mammography",
            _two_years,
            eligible=_patients,
            closing=_mammograms,
            done_field="effective_at",
            closed_by=OBSERVATION,
            window=_days_back(730),
            valid_for=timedelta(days=730),
            eligible_since=_fifty_since,
            patient_matches=_women_50_74,
        ),
    )
}
