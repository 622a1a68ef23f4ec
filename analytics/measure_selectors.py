"""Reads of the quality measures: rates per clinic, per provider and over time (every count through
`CountTable`, so analysts see small cells suppressed), the drill-down worklist, and treatment
effectiveness for patients on care plans.

Rate = numerator / (denominator − exclusions), with a Wilson 95 % interval; the partition columns of
every table are numerator met / not met / excluded, which sum to the denominator.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet

from analytics.measures import (
    BP_PANELS,
    DIABETES,
    DIABETES_ICD_PREFIXES,
    HYPERTENSION,
    MEASURES,
    SYSTOLIC,
    Measure,
)
from analytics.models import MeasureResult
from analytics.stats import Z95, Rate
from analytics.suppression import HIDDEN, SUPPRESS_BELOW, Column, CountTable, RateColumn

MET, NOT_MET, EXCLUDED = "met", "not_met", "excluded"
UNATTRIBUTED = "none"


def measure_get(measure_id: str) -> Measure | None:
    """The measure by id ("CMS165v12") or slug ("cms165v12"); None when unknown."""
    return MEASURES.get(measure_id) or next((m for m in MEASURES.values() if m.slug == measure_id), None)


def measure_periods() -> list[date]:
    """The period ends that have results, newest first."""
    return list(MeasureResult.objects.order_by("-period_end").values_list("period_end", flat=True).distinct())


@dataclass(frozen=True)
class MeasureCounts:
    """A measure's populations in one period, unsuppressed: for code and tests. Pages show counts only
    through a CountTable (small cells hidden)."""

    ip: int
    denominator: int
    excluded: int
    numerator: int

    @property
    def rate(self) -> Rate:
        """numerator / (denominator − exclusions), with its Wilson interval."""
        return Rate(self.numerator, self.denominator - self.excluded)


def measure_counts(measure: Measure, period_end: date, practitioner_id: int | None = None) -> MeasureCounts:
    rows = MeasureResult.objects.filter(measure=measure.id, period_end=period_end)
    if practitioner_id is not None:
        rows = rows.filter(practitioner_id=practitioner_id)
    found = rows.aggregate(
        ip=Count("pk", filter=Q(in_ip=True)),
        denominator=Count("pk", filter=Q(in_denominator=True)),
        excluded=Count("pk", filter=Q(excluded=True)),
        numerator=Count("pk", filter=Q(in_numerator=True)),
    )
    return MeasureCounts(**found)


def _rate_column(measure: Measure | None = None) -> RateColumn:
    label = "Rate (lower is better)" if measure is not None and measure.inverse else "Rate"
    return RateColumn("rate", label, numerator=MET, denominator=(MET, NOT_MET))


def _columns(measure: Measure | None) -> list[Column]:
    if measure is None:
        return [Column(MET, "Numerator met"), Column(NOT_MET, "Not met"), Column(EXCLUDED, "Excluded")]
    return [Column(MET, measure.numerator_label), Column(NOT_MET, measure.not_met_label), Column(EXCLUDED, "Excluded")]


def _counts(rows: QuerySet[Any], key: str) -> dict[tuple[str, str], int]:
    """{(row key, column): n} from MeasureResult rows grouped by `key` (denominator rows only)."""
    counts: dict[tuple[str, str], int] = {}
    grouped = (
        rows.filter(in_denominator=True)
        .values(key)
        .annotate(
            met=Count("pk", filter=Q(in_numerator=True)),
            excluded=Count("pk", filter=Q(excluded=True)),
            denominator=Count("pk"),
        )
    )
    for row in grouped:
        name = UNATTRIBUTED if row[key] is None else str(row[key])
        counts[(name, MET)] = row["met"]
        counts[(name, EXCLUDED)] = row["excluded"]
        counts[(name, NOT_MET)] = row["denominator"] - row["met"] - row["excluded"]
    return counts


class MeasuresTable(CountTable):
    """A CountTable of different measures: no totals row (a rate pooled over measures, one of them
    inverse, means nothing). The totals still take part in suppression, as if they were published."""

    def display_rows(self) -> list[dict[str, Any]]:
        return [row for row in super().display_rows() if not row["is_total"]]


def measure_clinic_table(period_end: date, practitioner_id: int | None = None) -> CountTable:
    """Every measure's counts and rate for one period (optionally one provider's patients)."""
    rows = MeasureResult.objects.filter(period_end=period_end)
    if practitioner_id is not None:
        rows = rows.filter(practitioner_id=practitioner_id)
    return MeasuresTable(
        title=f"Quality measures, 12 months to {period_end:%d %b %Y}",
        row_header="Measure",
        columns=_columns(None),
        rows=[(m.id, f"{m.id} {m.title}") for m in MEASURES.values()],
        counts=_counts(rows, "measure"),
        rates=[_rate_column()],
    )


def measure_provider_table(measure: Measure, period_end: date) -> CountTable:
    """One measure by attributed provider for one period; unattributed patients on their own row."""
    from patients.models import Practitioner

    rows = MeasureResult.objects.filter(measure=measure.id, period_end=period_end)
    counts = _counts(rows, "practitioner_id")
    present = {key for key, _ in counts}
    names = dict(
        Practitioner.objects.filter(pk__in=[int(k) for k in present if k != UNATTRIBUTED]).values_list(
            "pk", "display_name"
        )
    )
    table_rows = sorted(((str(pk), name) for pk, name in names.items()), key=lambda r: r[1])
    if UNATTRIBUTED in present:
        table_rows.append((UNATTRIBUTED, "Not attributed"))
    return CountTable(
        title=f"{measure.id} by provider, 12 months to {period_end:%d %b %Y}",
        row_header="Provider",
        columns=_columns(measure),
        rows=table_rows,
        counts=counts,
        rates=[_rate_column(measure)],
    )


def measure_trend_table(
    measure: Measure, period_ends: Sequence[date], practitioner_id: int | None = None
) -> CountTable:
    """One measure over periods (oldest first). The total row sums different periods' patients, so it
    is labelled as such: a patient counts once per period."""
    rows = MeasureResult.objects.filter(measure=measure.id, period_end__in=list(period_ends))
    if practitioner_id is not None:
        rows = rows.filter(practitioner_id=practitioner_id)
    ordered = sorted(period_ends)
    return CountTable(
        title=f"{measure.id} over 12-month periods",
        row_header="12 months to",
        columns=_columns(measure),
        rows=[(end.isoformat(), f"{end:%b %Y}") for end in ordered],
        counts=_counts(rows, "period_end"),
        rates=[_rate_column(measure)],
        total_label="All periods (patient-periods)",
    )


def measure_gap_patient_ids(measure: Measure, period_end: date, practitioner_id: int | None = None) -> list[int]:
    """Patients not meeting the measure in the period (for the inverse CMS122: those in its numerator,
    poor control or no result); excluded patients are not gaps. Worklist roles only (the view checks)."""
    rows = MeasureResult.objects.filter(measure=measure.id, period_end=period_end, in_denominator=True, excluded=False)
    rows = rows.filter(in_numerator=True) if measure.inverse else rows.filter(in_numerator=False)
    if practitioner_id is not None:
        rows = rows.filter(practitioner_id=practitioner_id)
    return list(rows.order_by("patient_id").values_list("patient_id", flat=True))


# -- Treatment effectiveness ----------------------------------------------------------------------

BASELINE_AFTER = timedelta(days=30)


@dataclass(frozen=True)
class GoalMeasure:
    key: str
    label: str
    unit: str
    goal_codes: frozenset[str]  # Goal.observation_code values that measure it


HBA1C_GOAL = GoalMeasure("hba1c", "HbA1c", "%", frozenset({"4548-4"}))
SYSTOLIC_GOAL = GoalMeasure("systolic", "Systolic blood pressure", "mm[Hg]", BP_PANELS | {SYSTOLIC})


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
EFFECTIVENESS_ROWS = (
    (DIABETES_GROUP, HBA1C_GOAL),
    (HYPERTENSION_GROUP, SYSTOLIC_GOAL),
    (DIABETES_GROUP, SYSTOLIC_GOAL),
)


@dataclass(frozen=True)
class GroupChange:
    """Mean change of the goal measure in one group; n and the mean are hidden when 0 < n < 11."""

    n: int
    mean: float | None
    low: float | None
    high: float | None

    @property
    def suppressed(self) -> bool:
        return 0 < self.n < SUPPRESS_BELOW

    @property
    def n_display(self) -> int | str:
        return HIDDEN if self.suppressed else self.n

    @classmethod
    def of(cls, changes: Sequence[float]) -> GroupChange:
        n = len(changes)
        if n == 0 or 0 < n < SUPPRESS_BELOW:
            return cls(n, None, None, None)
        mean = statistics.fmean(changes)
        half = Z95 * statistics.stdev(changes) / math.sqrt(n) if n > 1 else 0.0
        return cls(n, mean, mean - half, mean + half)


@dataclass(frozen=True)
class Effectiveness:
    condition: ConditionGroup
    goal: GoalMeasure
    plan: GroupChange
    comparison: GroupChange
    index_date: date | None  # the comparison group's start: the plan group's median start

    @property
    def difference(self) -> float | None:
        if self.plan.mean is None or self.comparison.mean is None:
            return None
        return self.plan.mean - self.comparison.mean


def _readings(goal: GoalMeasure, patient_ids: set[int], now: datetime) -> dict[int, list[tuple[datetime, float]]]:
    """Each patient's values of the goal measure, oldest first (systolic: panel component or 8480-6)."""
    from patients.models import Observation

    codes = {"4548-4"} if goal is HBA1C_GOAL else set(BP_PANELS) | {SYSTOLIC}
    series: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
    rows = Observation.objects.filter(patient_id__in=patient_ids, code__in=sorted(codes), effective_at__lte=now)
    for patient_id, code, at, value, components in rows.values_list(
        "patient_id", "code", "effective_at", "value_quantity", "components"
    ).iterator(chunk_size=5000):
        if code in BP_PANELS:
            item = next((c for c in components or [] if isinstance(c, dict) and c.get("code") == SYSTOLIC), None)
            value = _decimal(item.get("value")) if item else None
        if value is not None:
            series[patient_id].append((at, float(value)))
    for values in series.values():
        values.sort(key=lambda item: item[0])
    return series


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except ArithmeticError:
        return None


def change_since(series: Sequence[tuple[datetime, float]], start: datetime) -> float | None:
    """Latest value minus the baseline: the last value on or before `start`, else the first within 30
    days after it. None without a baseline or without a later value."""
    before = [item for item in series if item[0] <= start]
    after = [item for item in series if start < item[0] <= start + BASELINE_AFTER]
    baseline = before[-1] if before else after[0] if after else None
    if baseline is None or not series or series[-1][0] <= baseline[0]:
        return None
    return series[-1][1] - baseline[1]


def treatment_effectiveness(now: datetime) -> list[Effectiveness]:
    """For each (condition, goal measure): patients with the condition on an active care plan with a
    goal on that measure (start: the plan's creation; several plans: the earliest) against patients
    with the condition and no active care plan at all, whose start is the plan group's median start
    (the same calendar period). Change = latest value (up to `now`) − baseline (`change_since`).
    Computed from the base tables on request: codes, numbers and dates only, nothing decrypted.
    """
    from patients.models import CarePlan, Condition, Goal

    active_conditions = Condition.objects.filter(clinical_status__in=("active", "recurrence", "relapse"))
    by_patient: dict[int, set[str]] = defaultdict(set)
    for patient_id, code in active_conditions.values_list("patient_id", "code"):
        by_patient[patient_id].add(code)
    on_any_plan = set(CarePlan.objects.filter(status="active").values_list("patient_id", flat=True))
    results = []
    for condition, goal in EFFECTIVENESS_ROWS:
        with_condition = {pk for pk, codes in by_patient.items() if any(condition.matches(c) for c in codes)}
        starts: dict[int, datetime] = {}
        goals = Goal.objects.filter(
            care_plan__status="active",
            observation_code__in=sorted(goal.goal_codes),
            care_plan__patient_id__in=with_condition,
        ).exclude(status="cancelled")
        for patient_id, created_at in goals.values_list("care_plan__patient_id", "care_plan__created_at"):
            if patient_id not in starts or created_at < starts[patient_id]:
                starts[patient_id] = created_at
        comparison = with_condition - on_any_plan
        index = _median_instant(list(starts.values()))
        series = _readings(goal, set(starts) | (comparison if index else set()), now)
        plan_changes = [c for pk, start in starts.items() if (c := change_since(series.get(pk, []), start)) is not None]
        comparison_changes = (
            [c for pk in comparison if (c := change_since(series.get(pk, []), index)) is not None] if index else []
        )
        results.append(
            Effectiveness(
                condition=condition,
                goal=goal,
                plan=GroupChange.of(plan_changes),
                comparison=GroupChange.of(comparison_changes),
                index_date=index.date() if index else None,
            )
        )
    return results


def _median_instant(instants: list[datetime]) -> datetime | None:
    if not instants:
        return None
    ordered = sorted(instants)
    return ordered[(len(ordered) - 1) // 2]  # the lower median: an instant that exists
