"""Preventive-care recall definitions (data, not rules): who is due, and for which period.

A `Rule` of kind preventive_recall names one of these in `params["recall"]`; the rule's
materialization (engagement.services) sends one message per due patient per period: the outbox
slot is "<recall key>:<period key>", so a beat that runs every few minutes never sends twice.

The candidate set is computed in SQL from plain columns (codes, dates, statuses). Sex and date of
birth are encrypted, so the mammography recall filters them in Python, on the candidates only.

Limitation: patients/ has no procedure model. Mammography is taken as done when the patient has
an observation with a mammography LOINC code (MAMMOGRAPHY_LOINC) in the last two years.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef

TYPE_2_DIABETES = "44054006"  # SNOMED CT
HBA1C = "4548-4"  # LOINC
FLU_VACCINES = ("141", "158")  # CVX
MAMMOGRAPHY_LOINC = ("24606-6", "24604-1", "26346-7", "36625-2")
ACTIVE_CONDITION = ("active", "recurrence", "relapse")


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


def _everyone(patient: Any, day: date) -> bool:
    return True


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _women_50_74(patient: Any, day: date) -> bool:
    """Decrypts sex and date of birth (candidates only: never in SQL)."""
    if patient.sex != "female" or patient.date_of_birth is None:
        return False
    return 50 <= age_on(patient.date_of_birth, day) <= 74


def _patients() -> Any:
    from patients.models import Patient

    return Patient.objects.filter(is_active=True)


def _hba1c_due(now: datetime) -> set[int]:
    from patients.models import Condition, Observation

    diabetic = Condition.objects.filter(
        patient_id=OuterRef("pk"), code=TYPE_2_DIABETES, clinical_status__in=ACTIVE_CONDITION
    )
    recent = Observation.objects.filter(
        patient_id=OuterRef("pk"), code=HBA1C, effective_at__gte=now - timedelta(days=90)
    )
    return set(_patients().filter(Exists(diabetic)).exclude(Exists(recent)).values_list("pk", flat=True))


def _annual_due(now: datetime) -> set[int]:
    from patients.models import Appointment

    seen = Appointment.objects.filter(
        patient_id=OuterRef("pk"),
        appointment_type="annual",
        status="completed",
        starts_at__gte=now - timedelta(days=365),
    )
    return set(_patients().exclude(Exists(seen)).values_list("pk", flat=True))


def _flu_due(now: datetime) -> set[int]:
    from patients.models import Immunization

    given = Immunization.objects.filter(
        patient_id=OuterRef("pk"),
        vaccine_code__in=FLU_VACCINES,
        status="completed",
        occurrence_date__gte=date(now.year, 8, 1),
    )
    return set(_patients().exclude(Exists(given)).values_list("pk", flat=True))


def _mammography_due(now: datetime) -> set[int]:
    from patients.models import Observation

    done = Observation.objects.filter(
        patient_id=OuterRef("pk"), code__in=MAMMOGRAPHY_LOINC, effective_at__gte=now - timedelta(days=730)
    )
    return set(_patients().exclude(Exists(done)).values_list("pk", flat=True))


@dataclass(frozen=True)
class Recall:
    key: str
    name: str
    template_key: str
    period_key: Callable[[date], str]
    due_patient_ids: Callable[[datetime], set[int]]
    in_season: Callable[[date], bool] = _always
    patient_matches: Callable[[Any, date], bool] = _everyone


RECALLS: dict[str, Recall] = {
    recall.key: recall
    for recall in (
        Recall("hba1c", "HbA1c every 3 months (type 2 diabetes)", "recall_hba1c", _quarter, _hba1c_due),
        Recall("annual_wellness", "Annual wellness visit", "recall_annual_wellness", _year, _annual_due),
        Recall("flu_shot", "Flu shot each autumn", "recall_flu_shot", _year, _flu_due, in_season=_autumn),
        Recall(
            "mammography",
            "Mammography every 2 years (women 50-74)",
            "recall_mammography",
            _two_years,
            _mammography_due,
            patient_matches=_women_50_74,
        ),
    )
}
