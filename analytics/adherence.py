"""Appointment adherence: what became of the visits that fell due, grouped every way a clinic asks.

Denominator: visits that fell due in the period (attended + no-show + late cancel + cancelled;
AppointmentFact.outcome). Late cancel: cancelled within ANALYTICS_LATE_CANCEL_HOURS of the start.
Visits still upcoming, or past with no status recorded, are not counted. Groupings read only the
fact table (analytics/refresh.py), never the encrypted base tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Case, CharField, Count, DateField, F, Q, QuerySet, Value, When
from django.db.models.functions import Cast, TruncMonth, TruncWeek

from analytics.charts import Value as ChartValue
from analytics.filters import Filters, Period
from analytics.grouping import Counts, grouped_counts
from analytics.models import DUE_OUTCOMES, AgeBand, AppointmentFact, Outcome
from analytics.suppression import SUPPRESS_BELOW, Column, CountTable, RateColumn
from healthcrm.models import Location
from patients.models import AppointmentType, Practitioner, StatusReason

OUTCOME_COLUMNS = [
    Column(Outcome.ATTENDED, "Attended"),
    Column(Outcome.NO_SHOW, "No-show"),
    Column(Outcome.LATE_CANCEL, "Late cancel"),
    Column(Outcome.CANCELLED, "Cancelled"),
]
RATES = [
    RateColumn("no_show_rate", "No-show rate", Outcome.NO_SHOW),
    RateColumn("late_cancel_rate", "Late-cancel rate", Outcome.LATE_CANCEL),
    RateColumn("show_rate", "Show rate", Outcome.ATTENDED),
]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
LEAD_BANDS = [
    ("0", "Same day", 0, 0),
    ("1-2", "1–2 days", 1, 2),
    ("3-7", "3–7 days", 3, 7),
    ("8-14", "8–14 days", 8, 14),
    ("15-30", "15–30 days", 15, 30),
    ("31+", "31 days or more", 31, None),
]


def lead_band_expression() -> Case:
    whens = []
    for key, _, low, high in LEAD_BANDS:
        condition = Q(lead_days__gte=low) if high is None else Q(lead_days__gte=low, lead_days__lte=high)
        whens.append(When(condition, then=Value(key)))
    return Case(*whens, default=Value("31+"), output_field=CharField())


@dataclass(frozen=True)
class Dimension:
    key: str
    label: str

    def rows(self, present: Sequence[Any]) -> list[tuple[str, str]]:
        # Names are looked up once per table (not once per row: 200 providers were 200 queries).
        names = _practitioners() if self.key == "provider" else _locations() if self.key == "location" else {}
        return [(str(k), self.row_label(k, names)) for k in present]

    def row_label(self, key: Any, names: dict[int, str] | None = None) -> str:
        if self.key == "provider":
            return (names if names is not None else _practitioners()).get(key, f"Provider #{key}")
        if self.key == "location":
            if key is None:
                return "No location"
            return (names if names is not None else _locations()).get(key, "No location")
        if self.key == "type":
            return str(AppointmentType(key).label) if key in AppointmentType.values else str(key)
        if self.key == "weekday":
            return WEEKDAYS[int(key)]
        if self.key == "hour":
            return f"{int(key):02d}:00"
        if self.key == "lead":
            return next(label for k, label, _, _ in LEAD_BANDS if k == key)
        if self.key == "age":
            return str(AgeBand(key).label) if key in AgeBand.values else str(key)
        return str(key)


DIMENSIONS: dict[str, Dimension] = {
    d.key: d
    for d in (
        Dimension("provider", "Provider"),
        Dimension("location", "Location"),
        Dimension("type", "Appointment type"),
        Dimension("weekday", "Weekday"),
        Dimension("hour", "Hour"),
        Dimension("lead", "Lead time (booked to visit)"),
        Dimension("age", "Patient age band"),
    )
}
_GROUP_FIELD = {
    "provider": "practitioner_id",
    "location": "location_id",
    "type": "appointment_type",
    "weekday": "weekday",
    "hour": "hour",
    "age": "age_band",
}
_ORDER = {"lead": [k for k, *_ in LEAD_BANDS], "age": list(AgeBand.values)}


def _practitioners() -> dict[int, str]:
    return dict(Practitioner.objects.values_list("pk", "display_name"))


def _locations() -> dict[int, str]:
    return dict(Location.objects.values_list("pk", "name"))


def due_facts(filters: Filters, period: Period | None = None) -> QuerySet[AppointmentFact]:
    return filters.apply(AppointmentFact.objects.filter(outcome__in=DUE_OUTCOMES), period=period)


def _columns() -> dict[str, Any]:
    return {
        **{key: F(field) for key, field in _GROUP_FIELD.items()},
        "lead": lead_band_expression(),
        "reason": F("status_reason"),
        # As dates (grouped_counts reads raw rows: date_trunc alone would give timestamps).
        "week": Cast(TruncWeek("local_date"), output_field=DateField()),
        "month": Cast(TruncMonth("local_date"), output_field=DateField()),
        "outcome": F("outcome"),
    }


_SETS: dict[str, tuple[str, ...]] = {
    "summary": ("outcome",),
    **{key: (key, "outcome") for key in ("provider", "location", "type", "weekday", "hour", "lead", "age")},
    "heat": ("weekday", "hour", "outcome"),
    "week": ("week", "outcome"),
    "month": ("month", "outcome"),
    "reason": ("reason", "outcome"),
}


def adherence_counts(filters: Filters, period: Period | None = None) -> Counts:
    """Every grouping the attendance page shows: from the daily cube, or (with a provider filter)
    from one scan of the period's due visits."""
    from analytics.cube import cube_counts

    return cube_counts(filters, period) or fact_counts(filters, period)


def fact_counts(filters: Filters, period: Period | None = None) -> Counts:
    """`adherence_counts` from one scan of the facts."""
    return grouped_counts(due_facts(filters, period), _columns(), _SETS)


def outcome_table(
    filters: Filters, dimension: str, *, period: Period | None = None, counts: Counts | None = None
) -> CountTable:
    """Outcome counts by one dimension, suppressed, with no-show/late-cancel/show rates and Wilson CIs."""
    dim = DIMENSIONS[dimension]
    grouped = (counts or adherence_counts(filters, period))[dimension]
    cells = {(str(group), outcome): n for (group, outcome), n in grouped.items()}
    present = {group for group, _ in grouped}
    order = _ORDER.get(dimension)
    keys = [k for k in order if k in present] if order else sorted(present, key=lambda k: (k is None, k))
    rows = dim.rows(keys)
    if dimension in ("provider", "location", "type"):
        rows.sort(key=lambda r: r[1])
    return CountTable(
        title=f"Visits by {dim.label.lower()}",
        row_header=dim.label,
        columns=OUTCOME_COLUMNS,
        rows=rows,
        counts=cells,
        rates=RATES,
        total_label="All visits",
    )


def _field(dimension: str) -> Any:
    return F(_GROUP_FIELD[dimension])


def summary(filters: Filters, period: Period | None = None, *, counts: Counts | None = None) -> CountTable:
    """One row: the period's outcome counts and rates (for the headline and the comparison)."""
    from analytics.cube import cube_summary

    if counts is not None:
        found = {("all", outcome): n for (outcome,), n in counts["summary"].items()}
    elif (by_outcome := cube_summary(filters, period)) is not None:
        found = {("all", outcome): n for outcome, n in by_outcome.items()}
    else:
        found = {
            ("all", outcome): n
            for outcome, n in due_facts(filters, period).values_list("outcome").annotate(n=Count("id")).order_by()
        }
    label = (period or filters.period).label()
    return CountTable("Summary", "Period", OUTCOME_COLUMNS, [("all", label)], found, RATES, total_label=label)


def _bucket_rate(no_show: int, total: int) -> ChartValue:
    """A no-show rate for a chart point: hidden when either count is 1–10 (it would give it back)."""
    if total == 0 or 0 < total < SUPPRESS_BELOW or 0 < no_show < SUPPRESS_BELOW:
        return None
    return no_show / total


def trend(
    filters: Filters, *, grain: str | None = None, counts: Counts | None = None
) -> tuple[list[str], list[ChartValue], str]:
    """No-show rate per week (ranges up to 26 weeks) or month; returns labels, values, grain."""
    grain = grain or ("week" if filters.period.days <= 182 else "month")
    found: dict[date, tuple[int, int]] = {}
    for (bucket, outcome), n in (counts or adherence_counts(filters))[grain].items():
        no_show, total = found.get(bucket, (0, 0))
        found[bucket] = (no_show + (n if outcome == Outcome.NO_SHOW else 0), total + n)
    labels, values = [], []
    for bucket in _buckets(filters.period, grain):
        labels.append(f"{bucket:%d %b}" if grain == "week" else f"{bucket:%b %Y}")
        values.append(_bucket_rate(*found[bucket]) if bucket in found else None)
    return labels, values, grain


def _buckets(period: Period, grain: str) -> list[date]:
    out = []
    if grain == "week":
        day = period.start - timedelta(days=period.start.weekday())
        while day <= period.end:
            out.append(day)
            day += timedelta(days=7)
    else:
        day = period.start.replace(day=1)
        while day <= period.end:
            out.append(day)
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return out


def heat(
    filters: Filters, *, counts: Counts | None = None
) -> tuple[list[str], list[str], list[list[ChartValue]], list[tuple[str, float, int]]]:
    """No-show rate by weekday × hour (rows Mon–Sun that have visits, columns the hours in use),
    and the worst slots: the five highest rates among slots whose counts are shown."""
    cells: dict[tuple[int, int], tuple[int, int]] = {}
    for (weekday, hour, outcome), n in (counts or adherence_counts(filters))["heat"].items():
        no_show, total = cells.get((weekday, hour), (0, 0))
        cells[(weekday, hour)] = (no_show + (n if outcome == Outcome.NO_SHOW else 0), total + n)
    days = sorted({d for d, _ in cells})
    hours = sorted({h for _, h in cells})
    values = [[_bucket_rate(*cells[(d, h)]) if (d, h) in cells else None for h in hours] for d in days]
    worst = sorted(
        (
            (f"{WEEKDAYS[d]} {h:02d}:00", rate, cells[(d, h)][1])
            for d in days
            for h in hours
            if (d, h) in cells and (rate := _bucket_rate(*cells[(d, h)])) is not None
        ),
        key=lambda item: -item[1],
    )[:5]
    return [WEEKDAYS[d] for d in days], [f"{h:02d}" for h in hours], values, worst


def reason_table(filters: Filters, *, counts: Counts | None = None) -> CountTable:
    """Why visits were missed or cancelled (coded reasons; blank = not recorded)."""
    columns = [
        Column(Outcome.NO_SHOW, "No-show"),
        Column(Outcome.LATE_CANCEL, "Late cancel"),
        Column(Outcome.CANCELLED, "Cancelled"),
    ]
    cells: dict[tuple[str, str], int] = {}
    present = set()
    for (reason, outcome), n in (counts or adherence_counts(filters))["reason"].items():
        if outcome == Outcome.ATTENDED:
            continue
        key = reason or "none"
        cells[(key, outcome)] = cells.get((key, outcome), 0) + n
        present.add(key)
    labels = {**dict(StatusReason.choices), "none": "Not recorded"}
    rows = sorted(((k, str(labels.get(k, k))) for k in present), key=lambda r: r[1])
    return CountTable("Reasons for missed and cancelled visits", "Reason", columns, rows, cells, total_label="All")
