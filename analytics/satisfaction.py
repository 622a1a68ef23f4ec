"""Patient satisfaction: Net Promoter Score, mean CSAT and survey response rate, by provider,
location and month.

Denominator: post-visit survey messages sent in the period (the day sent, clinic time; SurveyFact).
Every sent survey is a promoter (9–10), a passive (7–8), a detractor (0–6) or not answered, so the
four counts partition the surveys sent and go through one CountTable per grouping (small cells
"<11", complementary cells withheld). From its published cells:

    response rate = answered / sent                   (shown when both are known from the table)
    NPS           = (promoters − detractors) / answered × 100, from −100 to 100
                                                      (shown when promoters, detractors, answered are)
    mean CSAT     = mean of the 1–5 answers of a question (shown when the row's answered count is
                    known and at least SUPPRESS_BELOW patients answered that question)

Facts hold scores only; the comments (PHI) stay in engagement and are never shown here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, F, Q, QuerySet
from django.db.models.functions import TruncMonth
from django.utils import timezone

from analytics.charts import Value as ChartValue
from analytics.filters import Filters, Period
from analytics.models import NpsGroup, SurveyFact
from analytics.refresh import builder
from analytics.stats import wilson
from analytics.suppression import HIDDEN, SUPPRESS_BELOW, TOTAL, Column, CountTable
from engagement import selectors as engagement_selectors
from engagement.models import NPS_DETRACTOR_MAX, NPS_PROMOTER_MIN
from healthcrm.models import Location
from healthcrm.tenancy import require_current_organization
from patients.models import Practitioner

GROUP_COLUMNS = [
    Column(NpsGroup.PROMOTER, "Promoters (9–10)"),
    Column(NpsGroup.PASSIVE, "Passives (7–8)"),
    Column(NpsGroup.DETRACTOR, "Detractors (0–6)"),
    Column(NpsGroup.NO_RESPONSE, "No response"),
]
ANSWERED = (NpsGroup.PROMOTER, NpsGroup.PASSIVE, NpsGroup.DETRACTOR)
CSAT_QUESTIONS = [
    ("csat_access", "Ease of getting an appointment (1–5)"),
    ("csat_explain", "How well the team explained (1–5)"),
]
DIMENSIONS = {"provider": "Provider", "location": "Location", "month": "Month"}


def nps_group(nps: int | None) -> str:
    if nps is None:
        return NpsGroup.NO_RESPONSE
    if nps >= NPS_PROMOTER_MIN:
        return NpsGroup.PROMOTER
    return NpsGroup.DETRACTOR if nps <= NPS_DETRACTOR_MAX else NpsGroup.PASSIVE


def nps_score(promoters: int, detractors: int, answered: int) -> float | None:
    """%promoters − %detractors, from −100 to 100 (None with no answers)."""
    return (promoters - detractors) * 100 / answered if answered else None


# -- The fact builder -----------------------------------------------------------------------------


@builder("surveys")
def build_survey_facts(since: datetime | None, now: datetime) -> int:
    """One SurveyFact per sent survey message with its answer's scores; a message that is no longer
    counted as sent (it failed after a retry) loses its fact."""
    organization = require_current_organization()
    messages = engagement_selectors.survey_messages(since=since)
    sent = [m for m in messages if m["status"] in engagement_selectors.SENT_STATUSES and m["sent_at"]]
    gone = [m["id"] for m in messages if m not in sent]
    if gone:
        SurveyFact.objects.filter(message_id__in=gone).delete()
    scores = {s["message_id"]: s for s in engagement_selectors.survey_scores_for([m["id"] for m in sent])}
    facts = []
    for m in sent:
        answer = scores.get(m["id"])
        facts.append(
            SurveyFact(
                organization=organization,
                message_id=m["id"],
                # The answer's copies (the visit as it was answered for), else the visit's own.
                practitioner_id=answer["practitioner_id"] if answer else m["visit_practitioner_id"],
                location_id=answer["location_id"] if answer else m["visit_location_id"],
                sent_at=m["sent_at"],
                local_date=timezone.localtime(m["sent_at"], organization.zone).date(),
                nps_group=nps_group(answer["nps"] if answer else None),
                nps=answer["nps"] if answer else None,
                csat_access=answer["csat_access"] if answer else None,
                csat_explain=answer["csat_explain"] if answer else None,
                refreshed_at=now,
            )
        )
    SurveyFact.objects.bulk_create(
        facts,
        update_conflicts=True,
        unique_fields=["message"],
        update_fields=[
            "practitioner",
            "location",
            "sent_at",
            "local_date",
            "nps_group",
            "nps",
            "csat_access",
            "csat_explain",
            "refreshed_at",
            "updated_at",
        ],
        batch_size=5000,
    )
    return len(facts)


# -- Tables ----------------------------------------------------------------------------------------


@dataclass
class SatisfactionTable:
    """A CountTable of NPS groups by one dimension, plus what is derived from its published cells
    (response rate, NPS) and the mean CSAT answers. `display_rows()` and `csv_rows()` are what the
    page and its CSV show: the same cells."""

    counts: CountTable
    csat: dict[str, dict[str, tuple[float | None, int]]]  # row -> question -> (mean, answers)

    @property
    def title(self) -> str:
        return self.counts.title

    @property
    def row_header(self) -> str:
        return self.counts.row_header

    @property
    def columns(self) -> Sequence[Column]:
        return self.counts.columns

    def _published(self, row: str, col: str) -> int | None:
        return None if (row, col) in self.counts.hidden else self.counts.values[(row, col)]

    def answered(self, row: str) -> int | None:
        """Surveys answered, when the table's published cells give it (all three groups, or the
        total and the no-response count); None otherwise."""
        groups = [self._published(row, c) for c in ANSWERED]
        if all(g is not None for g in groups):
            return sum(g for g in groups if g is not None)
        total, silent = self._published(row, TOTAL), self._published(row, NpsGroup.NO_RESPONSE)
        return total - silent if total is not None and silent is not None else None

    def response_rate(self, row: str) -> tuple[float, float, float] | None:
        answered, sent = self.answered(row), self._published(row, TOTAL)
        if answered is None or not sent:
            return None
        low, high = wilson(answered, sent) or (0.0, 1.0)
        return answered / sent, low, high

    def nps(self, row: str) -> float | None:
        answered = self.answered(row)
        promoters, detractors = self._published(row, NpsGroup.PROMOTER), self._published(row, NpsGroup.DETRACTOR)
        if answered is None or promoters is None or detractors is None:
            return None
        return nps_score(promoters, detractors, answered)

    def csat_mean(self, row: str, question: str) -> float | None:
        mean, answers = self.csat.get(row, {}).get(question, (None, 0))
        if self.answered(row) is None or answers < SUPPRESS_BELOW:
            return None
        return mean

    def display_rows(self) -> list[dict[str, Any]]:
        rows = []
        for row in self.counts.display_rows():
            key = row["key"]
            rows.append(
                {
                    **row,
                    "response_rate": self.response_rate(key),
                    "nps": self.nps(key),
                    "csat": [self.csat_mean(key, q) for q, _ in CSAT_QUESTIONS],
                }
            )
        return rows

    def csv_rows(self) -> Iterable[list[Any]]:
        yield [
            self.row_header,
            *[c.label for c in self.columns],
            "Surveys sent",
            "Response rate (%)",
            "Response rate 95% CI low",
            "Response rate 95% CI high",
            "NPS",
            *[f"Mean {label}" for _, label in CSAT_QUESTIONS],
        ]
        for row in self.display_rows():
            rate = row["response_rate"]
            shown_rate = [f"{v * 100:.1f}" for v in rate] if rate else ["suppressed", "", ""]
            yield [
                row["label"],
                *row["cells"],
                row["total"],
                *shown_rate,
                f"{row['nps']:.0f}" if row["nps"] is not None else HIDDEN,
                *[f"{m:.2f}" if m is not None else HIDDEN for m in row["csat"]],
            ]


def survey_facts(filters: Filters, period: Period | None = None) -> QuerySet[SurveyFact]:
    return filters.apply(SurveyFact.objects.all(), period=period)


def _group_expression(dimension: str) -> Any:
    return {"provider": F("practitioner_id"), "location": F("location_id"), "month": TruncMonth("local_date")}[
        dimension
    ]


def _row_key(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _row_label(dimension: str, value: Any, names: dict[Any, str]) -> str:
    if dimension == "month":
        return f"{value:%b %Y}"
    if value is None:
        return "No location" if dimension == "location" else "No provider"
    return names.get(value, f"{DIMENSIONS[dimension]} #{value}")


def satisfaction_table(filters: Filters, dimension: str, *, period: Period | None = None) -> SatisfactionTable:
    """NPS groups of the surveys sent in the period by provider, location or month."""
    facts = survey_facts(filters, period).annotate(group=_group_expression(dimension))
    counts: dict[tuple[str, str], int] = {}
    present: set[Any] = set()
    for group, nps_group_, n in facts.values_list("group", "nps_group").annotate(n=Count("id")).order_by():
        counts[(_row_key(group), nps_group_)] = n
        present.add(group)
    names: dict[Any, str] = {}
    if dimension == "provider":
        names = dict(Practitioner.objects.filter(pk__in=present).values_list("pk", "display_name"))
    elif dimension == "location":
        names = dict(Location.objects.filter(pk__in=present).values_list("pk", "name"))
    rows = [(_row_key(v), _row_label(dimension, v, names)) for v in present]
    if dimension == "month":
        rows.sort(key=lambda r: r[0])
    else:
        rows.sort(key=lambda r: r[1])
    label = DIMENSIONS[dimension]
    table = CountTable(
        title=f"Satisfaction by {label.lower()}",
        row_header=label,
        columns=GROUP_COLUMNS,
        rows=rows,
        counts=counts,
        total_label="All surveys",
    )
    return SatisfactionTable(table, _csat(survey_facts(filters, period), _group_expression(dimension), key=_row_key))


def _csat(facts: QuerySet[SurveyFact], group: Any, *, key: Any) -> dict[str, dict[str, tuple[float | None, int]]]:
    """Mean and number of answers of each CSAT question, per `group` (its row key by `key`) and for
    all (TOTAL)."""
    aggregates: dict[str, Any] = {}
    for question, _ in CSAT_QUESTIONS:
        aggregates[f"{question}_mean"] = Avg(question)
        aggregates[f"{question}_n"] = Count("id", filter=Q(**{f"{question}__isnull": False}))
    out: dict[str, dict[str, tuple[float | None, int]]] = {}
    for row in facts.values(bucket=group).annotate(**aggregates).order_by():
        out[key(row["bucket"])] = {q: (row[f"{q}_mean"], row[f"{q}_n"]) for q, _ in CSAT_QUESTIONS}
    overall = facts.aggregate(**aggregates)
    out[TOTAL] = {q: (overall[f"{q}_mean"], overall[f"{q}_n"]) for q, _ in CSAT_QUESTIONS}
    return out


def summary(filters: Filters, period: Period | None = None) -> SatisfactionTable:
    """One row: the period's counts, response rate, NPS and CSAT (headline and comparison)."""
    facts = survey_facts(filters, period)
    counts = {("all", g): n for g, n in facts.values_list("nps_group").annotate(n=Count("id")).order_by()}
    label = (period or filters.period).label()
    table = CountTable("Summary", "Period", GROUP_COLUMNS, [("all", label)], counts, total_label=label)
    csat = _csat(facts, F("organization_id"), key=lambda _: "all")
    return SatisfactionTable(table, csat)


def trend(filters: Filters) -> tuple[list[str], list[ChartValue], list[ChartValue], list[ChartValue]]:
    """Per month of the period: the share of answers that were promoters and detractors, and the NPS;
    None for a month whose counts would be hidden (any of them 1–10)."""
    rows = {
        row["month"]: row
        for row in survey_facts(filters)
        .annotate(month=TruncMonth("local_date"))
        .values("month")
        .annotate(
            promoters=Count("id", filter=Q(nps_group=NpsGroup.PROMOTER)),
            passives=Count("id", filter=Q(nps_group=NpsGroup.PASSIVE)),
            detractors=Count("id", filter=Q(nps_group=NpsGroup.DETRACTOR)),
        )
        .order_by()
    }
    labels: list[str] = []
    promoters: list[ChartValue] = []
    detractors: list[ChartValue] = []
    scores: list[ChartValue] = []
    for month in months(filters.period):
        labels.append(f"{month:%b %Y}")
        row = rows.get(month)
        counts = (row["promoters"], row["passives"], row["detractors"]) if row else (0, 0, 0)
        answered = sum(counts)
        if not answered or any(0 < n < SUPPRESS_BELOW for n in counts):
            promoters.append(None)
            detractors.append(None)
            scores.append(None)
            continue
        promoters.append(counts[0] / answered)
        detractors.append(counts[2] / answered)
        scores.append(nps_score(counts[0], counts[2], answered))
    return labels, promoters, detractors, scores


def months(period: Period) -> list[date]:
    out = []
    day = period.start.replace(day=1)
    while day <= period.end:
        out.append(day)
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return out
