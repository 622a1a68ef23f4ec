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

from django.db.models import Case, CharField, Count, F, Q, QuerySet, Value, When
from django.db.models.functions import TruncMonth, TruncWeek

from analytics.charts import Value as ChartValue
from analytics.filters import Filters, Period
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


def outcome_table(filters: Filters, dimension: str, *, period: Period | None = None) -> CountTable:
    """Outcome counts by one dimension, suppressed, with no-show/late-cancel/show rates and Wilson CIs."""
    dim = DIMENSIONS[dimension]
    facts = due_facts(filters, period)
    if dimension == "lead":
        facts = facts.annotate(group=lead_band_expression())
    else:
        facts = facts.annotate(group=_field(dimension))
    counts: dict[tuple[str, str], int] = {}
    present: set[Any] = set()
    for group, outcome, n in facts.values_list("group", "outcome").annotate(n=Count("id")).order_by():
        counts[(str(group), outcome)] = n
        present.add(group)
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
        counts=counts,
        rates=RATES,
        total_label="All visits",
    )


def _field(dimension: str) -> Any:
    return F(_GROUP_FIELD[dimension])


def summary(filters: Filters, period: Period | None = None) -> CountTable:
    """One row: the period's outcome counts and rates (for the headline and the comparison)."""
    counts = {
        ("all", outcome): n
        for outcome, n in due_facts(filters, period).values_list("outcome").annotate(n=Count("id")).order_by()
    }
    label = (period or filters.period).label()
    return CountTable("Summary", "Period", OUTCOME_COLUMNS, [("all", label)], counts, RATES, total_label=label)


def _bucket_rate(no_show: int, total: int) -> ChartValue:
    """A no-show rate for a chart point: hidden when either count is 1–10 (it would give it back)."""
    if total == 0 or 0 < total < SUPPRESS_BELOW or 0 < no_show < SUPPRESS_BELOW:
        return None
    return no_show / total


def trend(filters: Filters, *, grain: str | None = None) -> tuple[list[str], list[ChartValue], str]:
    """No-show rate per week (ranges up to 26 weeks) or month; returns labels, values, grain."""
    grain = grain or ("week" if filters.period.days <= 182 else "month")
    trunc = TruncWeek("local_date") if grain == "week" else TruncMonth("local_date")
    rows = (
        due_facts(filters)
        .annotate(bucket=trunc)
        .values("bucket")
        .annotate(total=Count("id"), no_show=Count("id", filter=Q(outcome=Outcome.NO_SHOW)))
        .order_by("bucket")
    )
    found = {row["bucket"]: row for row in rows}
    labels, values = [], []
    for bucket in _buckets(filters.period, grain):
        row = found.get(bucket)
        labels.append(f"{bucket:%d %b}" if grain == "week" else f"{bucket:%b %Y}")
        values.append(_bucket_rate(row["no_show"], row["total"]) if row else None)
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


def heat(filters: Filters) -> tuple[list[str], list[str], list[list[ChartValue]], list[tuple[str, float, int]]]:
    """No-show rate by weekday × hour (rows Mon–Sun that have visits, columns the hours in use),
    and the worst slots: the five highest rates among slots whose counts are shown."""
    cells = {
        (row["weekday"], row["hour"]): (row["no_show"], row["total"])
        for row in due_facts(filters)
        .values("weekday", "hour")
        .annotate(total=Count("id"), no_show=Count("id", filter=Q(outcome=Outcome.NO_SHOW)))
        .order_by()
    }
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


def reason_table(filters: Filters) -> CountTable:
    """Why visits were missed or cancelled (coded reasons; blank = not recorded)."""
    columns = [
        Column(Outcome.NO_SHOW, "No-show"),
        Column(Outcome.LATE_CANCEL, "Late cancel"),
        Column(Outcome.CANCELLED, "Cancelled"),
    ]
    counts: dict[tuple[str, str], int] = {}
    present = set()
    facts = due_facts(filters).exclude(outcome=Outcome.ATTENDED)
    for reason, outcome, n in facts.values_list("status_reason", "outcome").annotate(n=Count("id")).order_by():
        key = reason or "none"
        counts[(key, outcome)] = counts.get((key, outcome), 0) + n
        present.add(key)
    labels = {**dict(StatusReason.choices), "none": "Not recorded"}
    rows = sorted(((k, str(labels.get(k, k))) for k in present), key=lambda r: r[1])
    return CountTable("Reasons for missed and cancelled visits", "Reason", columns, rows, counts, total_label="All")
