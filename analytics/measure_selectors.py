"""Reads of the quality measures: rates per clinic, per provider and over time (every count through
`CountTable`, so analysts see small cells suppressed), the drill-down worklist, and treatment
effectiveness for patients on care plans.

Rate = numerator / (denominator − exclusions), with a Wilson 95 % interval; the partition columns of
every table are numerator met / not met / excluded, which sum to the denominator.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet, StdDev, Sum

from analytics.effectiveness import EFFECTIVENESS_ROWS, ConditionGroup, GoalMeasure
from analytics.measures import MEASURES, Measure, period_ends
from analytics.models import MeasureCount, MeasureResult, TreatmentChange
from analytics.stats import Z95, Rate
from analytics.suppression import HIDDEN, SUPPRESS_BELOW, Column, CountTable, RateColumn

MET, NOT_MET, EXCLUDED = "met", "not_met", "excluded"
UNATTRIBUTED = "none"


def measure_get(measure_id: str) -> Measure | None:
    """The measure by id ("CMS165v12") or slug ("cms165v12"); None when unknown."""
    return MEASURES.get(measure_id) or next((m for m in MEASURES.values() if m.slug == measure_id), None)


def measure_periods(today: date, count: int = 24) -> list[date]:
    """The period ends with results among the last `count` month ends to `today`, newest first."""
    candidates = period_ends(today, count)
    found = set(MeasureCount.objects.filter(period_end__in=candidates).values_list("period_end", flat=True))
    return [end for end in candidates if end in found]


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


def _grouped_counts(rows: QuerySet[Any], *keys: str) -> dict[Any, dict[tuple[str, str], int]]:
    """{first key's value: {(row key, column): n}} from MeasureCount rows summed by `keys`; with one
    key, everything is under None."""
    out: dict[Any, dict[tuple[str, str], int]] = defaultdict(dict)
    grouped = rows.values(*keys).annotate(
        met=Sum("numerator"), excluded_n=Sum("excluded"), denominator_n=Sum("denominator")
    )
    for row in grouped:
        if not row["denominator_n"]:
            continue  # only initial-population patients (CMS147 without a flu-season visit): no row
        outer = row[keys[0]] if len(keys) > 1 else None
        value = row[keys[-1]]
        name = UNATTRIBUTED if value is None else value.isoformat() if isinstance(value, date) else str(value)
        counts = out[outer]
        counts[(name, MET)] = row["met"]
        counts[(name, EXCLUDED)] = row["excluded_n"]
        counts[(name, NOT_MET)] = row["denominator_n"] - row["met"] - row["excluded_n"]
    return out


def _counts(rows: QuerySet[Any], key: str) -> dict[tuple[str, str], int]:
    return _grouped_counts(rows, key).get(None, {})


class MeasuresTable(CountTable):
    """A CountTable of different measures: no totals row (a rate pooled over measures, one of them
    inverse, means nothing). The totals still take part in suppression, as if they were published."""

    def display_rows(self) -> list[dict[str, Any]]:
        return [row for row in super().display_rows() if not row["is_total"]]


def measure_clinic_table(period_end: date, practitioner_id: int | None = None) -> CountTable:
    """Every measure's counts and rate for one period (optionally one provider's patients)."""
    rows = MeasureCount.objects.filter(period_end=period_end)
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


def measure_provider_tables(period_end: date) -> dict[str, CountTable]:
    """Each measure by attributed provider for one period (one query for all measures); unattributed
    patients on their own row."""
    from patients.models import Practitioner

    grouped = _grouped_counts(MeasureCount.objects.filter(period_end=period_end), "measure", "practitioner_id")
    present = {key for counts in grouped.values() for key, _ in counts}
    names = dict(
        Practitioner.objects.filter(pk__in=[int(k) for k in present if k != UNATTRIBUTED]).values_list(
            "pk", "display_name"
        )
    )
    tables = {}
    for measure in MEASURES.values():
        counts = grouped.get(measure.id, {})
        keys = {key for key, _ in counts}
        table_rows = sorted(((str(pk), name) for pk, name in names.items() if str(pk) in keys), key=lambda r: r[1])
        if UNATTRIBUTED in keys:
            table_rows.append((UNATTRIBUTED, "Not attributed"))
        tables[measure.id] = CountTable(
            title=f"{measure.id} by provider, 12 months to {period_end:%d %b %Y}",
            row_header="Provider",
            columns=_columns(measure),
            rows=table_rows,
            counts=counts,
            rates=[_rate_column(measure)],
        )
    return tables


def measure_provider_table(measure: Measure, period_end: date) -> CountTable:
    return measure_provider_tables(period_end)[measure.id]


def measure_trend_tables(period_ends: Sequence[date], practitioner_id: int | None = None) -> dict[str, CountTable]:
    """Each measure over periods (oldest first; one query for all measures). The total row sums
    different periods' patients, so it is labelled as such: a patient counts once per period."""
    rows = MeasureCount.objects.filter(period_end__in=list(period_ends))
    if practitioner_id is not None:
        rows = rows.filter(practitioner_id=practitioner_id)
    grouped = _grouped_counts(rows, "measure", "period_end")
    ordered = sorted(period_ends)
    return {
        measure.id: CountTable(
            title=f"{measure.id} over 12-month periods",
            row_header="12 months to",
            columns=_columns(measure),
            rows=[(end.isoformat(), f"{end:%b %Y}") for end in ordered],
            counts=grouped.get(measure.id, {}),
            rates=[_rate_column(measure)],
            total_label="All periods (patient-periods)",
        )
        for measure in MEASURES.values()
    }


def measure_trend_table(
    measure: Measure, period_ends: Sequence[date], practitioner_id: int | None = None
) -> CountTable:
    return measure_trend_tables(period_ends, practitioner_id)[measure.id]


def measure_gap_patient_ids(measure: Measure, period_end: date, practitioner_id: int | None = None) -> list[int]:
    """Patients not meeting the measure in the period (for the inverse CMS122: those in its numerator,
    poor control or no result); excluded patients are not gaps. Worklist roles only (the view checks)."""
    rows = MeasureResult.objects.filter(measure=measure.id, period_end=period_end, in_denominator=True, excluded=False)
    rows = rows.filter(in_numerator=True) if measure.inverse else rows.filter(in_numerator=False)
    if practitioner_id is not None:
        rows = rows.filter(practitioner_id=practitioner_id)
    return list(rows.order_by("patient_id").values_list("patient_id", flat=True))


# -- Treatment effectiveness (the per-patient changes are built by analytics/effectiveness.py) ------


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
    def of(cls, n: int, mean: float | None, stdev: float | None) -> GroupChange:
        if n == 0 or 0 < n < SUPPRESS_BELOW or mean is None:
            return cls(n, None, None, None)
        half = Z95 * (stdev or 0.0) / math.sqrt(n)
        return cls(n, mean, mean - half, mean + half)


@dataclass(frozen=True)
class Effectiveness:
    condition: ConditionGroup
    goal: GoalMeasure
    plan: GroupChange
    comparison: GroupChange

    @property
    def difference(self) -> float | None:
        if self.plan.mean is None or self.comparison.mean is None:
            return None
        return self.plan.mean - self.comparison.mean


def treatment_effectiveness() -> list[Effectiveness]:
    """Per (condition, goal measure): the mean change on a care plan and without one, from the
    TreatmentChange facts; a 95 % interval of each mean (normal approximation); groups under 11 hidden."""
    grouped = {
        (row["condition"], row["goal"], row["on_plan"]): row
        for row in TreatmentChange.objects.values("condition", "goal", "on_plan").annotate(
            n=Count("pk"), mean=Avg("change"), stdev=StdDev("change", sample=True)
        )
    }

    def group(condition: ConditionGroup, goal: GoalMeasure, on_plan: bool) -> GroupChange:
        row = grouped.get((condition.key, goal.key, on_plan))
        return GroupChange.of(row["n"], row["mean"], row["stdev"]) if row else GroupChange.of(0, None, None)

    return [
        Effectiveness(condition, goal, group(condition, goal, True), group(condition, goal, False))
        for condition, goal in EFFECTIVENESS_ROWS
    ]
