"""Treatment effectiveness: how far a care-plan goal measure moved for patients on a plan, against
patients with the same condition and no plan. The builder writes one TreatmentChange per patient and
group; `analytics.measure_selectors.treatment_effectiveness` averages them.

For each (condition, goal measure) in EFFECTIVENESS_ROWS:
- plan group: patients with the condition (active) on an active care plan with a goal (not cancelled)
  on that measure; their start is the plan's creation (several plans: the earliest);
- comparison group: patients with the condition and no active care plan at all; their start is the
  plan group's median start, so both are measured over the same calendar period;
- change = the latest value up to now − the baseline: the last value on or before the start, else
  the first within 30 days after it. No baseline, or no value after the baseline: not counted.
Systolic blood pressure is the 8480-6 component of a BP panel (85354-9, 55284-4) or a lone 8480-6
observation; a goal on the panel or on 8480-6 counts as a systolic goal. HbA1c is 4548-4.

Limits: an observational, unmatched comparison (the groups differ in more than the plan); care-plan
status has no history, so a plan completed since is not seen. Codes, numbers and dates only: nothing
is decrypted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q

from analytics.measures import BP_PANELS, DIABETES, DIABETES_ICD_PREFIXES, HYPERTENSION, SYSTOLIC
from analytics.models import TreatmentChange
from analytics.refresh import builder, chunks
from engagement.recalls import HBA1C
from healthcrm.tenancy import require_current_organization

BASELINE_AFTER = timedelta(days=30)
ACTIVE_CONDITION = ("active", "recurrence", "relapse")


@dataclass(frozen=True)
class GoalMeasure:
    key: str
    label: str
    unit: str
    goal_codes: frozenset[str]  # Goal.observation_code values that measure it
    observation_codes: frozenset[str]  # the observations its values come from


HBA1C_GOAL = GoalMeasure("hba1c", "HbA1c", "%", frozenset({HBA1C}), frozenset({HBA1C}))
SYSTOLIC_GOAL = GoalMeasure(
    "systolic", "Systolic blood pressure", "mm[Hg]", BP_PANELS | {SYSTOLIC}, BP_PANELS | {SYSTOLIC}
)


@dataclass(frozen=True)
class ConditionGroup:
    key: str
    label: str
    codes: frozenset[str]
    prefixes: tuple[str, ...] = ()

    def matches(self, code: str) -> bool:
        return code in self.codes or bool(self.prefixes and code.startswith(self.prefixes))


DIABETES_GROUP = ConditionGroup("diabetes", "Diabetes", DIABETES, DIABETES_ICD_PREFIXES)
HYPERTENSION_GROUP = ConditionGroup("hypertension", "Hypertension", HYPERTENSION)
EFFECTIVENESS_ROWS: tuple[tuple[ConditionGroup, GoalMeasure], ...] = (
    (DIABETES_GROUP, HBA1C_GOAL),
    (HYPERTENSION_GROUP, SYSTOLIC_GOAL),
    (DIABETES_GROUP, SYSTOLIC_GOAL),
)


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except ArithmeticError:
        return None


def readings(goal: GoalMeasure, patient_ids: set[int], now: datetime) -> dict[int, list[tuple[datetime, float]]]:
    """Each patient's values of the goal measure up to `now`, oldest first."""
    from patients.models import Observation

    series: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
    for batch in chunks(sorted(patient_ids)):
        rows = Observation.objects.filter(
            patient_id__in=batch, code__in=sorted(goal.observation_codes), effective_at__lte=now
        ).values_list("patient_id", "code", "effective_at", "value_quantity", "components")
        for patient_id, code, at, value, components in rows.iterator(chunk_size=5000):
            if code in BP_PANELS:
                item = next((c for c in components or [] if isinstance(c, dict) and c.get("code") == SYSTOLIC), None)
                value = _decimal(item.get("value")) if item else None
            if value is not None:
                series[patient_id].append((at, float(value)))
    for values in series.values():
        values.sort(key=lambda item: item[0])
    return series


def change_since(series: Sequence[tuple[datetime, float]], start: datetime) -> float | None:
    """Latest value minus the baseline: the last value on or before `start`, else the first within 30
    days after it. None without a baseline or without a later value."""
    before = [item for item in series if item[0] <= start]
    after = [item for item in series if start < item[0] <= start + BASELINE_AFTER]
    baseline = before[-1] if before else after[0] if after else None
    if baseline is None or series[-1][0] <= baseline[0]:
        return None
    return series[-1][1] - baseline[1]


def lower_median(instants: list[datetime]) -> datetime | None:
    """The lower median: an instant that exists (a plan's own start)."""
    if not instants:
        return None
    ordered = sorted(instants)
    return ordered[(len(ordered) - 1) // 2]


def treatment_changes(now: datetime) -> list[tuple[int, str, str, bool, float]]:
    """(patient id, condition, goal, on plan, change) for every patient counted in some group."""
    from patients.models import CarePlan, Condition, Goal

    by_patient: dict[int, set[str]] = defaultdict(set)
    for patient_id, code in Condition.objects.filter(clinical_status__in=ACTIVE_CONDITION).values_list(
        "patient_id", "code"
    ):
        by_patient[patient_id].add(code)
    on_any_plan = set(CarePlan.objects.filter(status="active").values_list("patient_id", flat=True))
    out: list[tuple[int, str, str, bool, float]] = []
    for condition, goal in EFFECTIVENESS_ROWS:
        with_condition = {pk for pk, codes in by_patient.items() if any(condition.matches(c) for c in codes)}
        starts: dict[int, datetime] = {}
        goals = Goal.objects.filter(care_plan__status="active", observation_code__in=sorted(goal.goal_codes)).exclude(
            status="cancelled"
        )
        for patient_id, created_at in goals.values_list("care_plan__patient_id", "care_plan__created_at"):
            if patient_id in with_condition and (patient_id not in starts or created_at < starts[patient_id]):
                starts[patient_id] = created_at
        index = lower_median(list(starts.values()))
        comparison = (with_condition - on_any_plan) if index is not None else set()
        series = readings(goal, set(starts) | comparison, now)
        for patient_id, start in starts.items():
            if (change := change_since(series.get(patient_id, []), start)) is not None:
                out.append((patient_id, condition.key, goal.key, True, change))
        for patient_id in comparison:
            if index is not None and (change := change_since(series.get(patient_id, []), index)) is not None:
                out.append((patient_id, condition.key, goal.key, False, change))
    return out


@builder("treatment")
def build_treatment_changes(since: datetime | None, now: datetime) -> int:
    """Rebuild TreatmentChange (all of it: the comparison's start moves with every plan). An
    incremental run does nothing when no observation, condition, care plan or goal changed since."""
    from patients.models import CarePlan, Condition, Goal, Observation

    organization = require_current_organization()
    if since is not None:
        touched = Q(updated_at__gte=since)
        if not any(m.objects.filter(touched).exists() for m in (Observation, Condition, CarePlan, Goal)):
            return 0
    rows = treatment_changes(now)
    with transaction.atomic():
        TreatmentChange.objects.all().delete()
        TreatmentChange.objects.bulk_create(
            [
                TreatmentChange(
                    organization=organization,
                    patient_id=patient_id,
                    condition=condition,
                    goal=goal,
                    on_plan=on_plan,
                    change=change,
                    refreshed_at=now,
                )
                for patient_id, condition, goal, on_plan, change in rows
            ],
            batch_size=5000,
        )
    return len(rows)
