"""Patient engagement (issue 15 item 3): education reach and questionnaire completion, as
suppressed count tables.

The figures come from engagement's selectors (`education_reach`, `engagement_completion`), never
from its tables: analytics is above engagement and reads through its door. Condition codes are
named with this app's chronic-condition catalogue (analytics/population.py CONDITIONS).

| figure | definition |
| --- | --- |
| sent | education messages sent (the outbox's send time) in the period, in the clinic's zone |
| opened | of those, the ones whose page the patient opened at least once (previewers not counted) |
| by condition | the diagnosis that triggered the send; else the item's first condition code |
| completion | of the messages of an answerable kind (questionnaires) sent in the period, those answered |
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from analytics.population import CONDITIONS, ICD10CM, SNOMED
from analytics.suppression import Column, CountTable, RateColumn
from engagement.selectors import CompletionRow, ReachRow, education_reach, engagement_completion

REACH_COLUMNS = (Column("opened", "Opened"), Column("not_opened", "Not opened"))
REACH_RATES = (RateColumn("open_rate", "Open rate", "opened"),)
COMPLETION_COLUMNS = (Column("answered", "Answered"), Column("not_answered", "Not answered"))
COMPLETION_RATES = (RateColumn("completion_rate", "Completion rate", "answered"),)
DIMENSIONS = {"content": "Content", "condition": "Condition", "language": "Language"}
NO_CONDITION = "No condition"


def period_bounds(start: date, end: date, zone: Any) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in the clinic's zone."""
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


def condition_label(code: str) -> str:
    """A code's chronic-condition name (SNOMED CT, or ICD-10-CM by prefix); the code itself otherwise."""
    if not code:
        return NO_CONDITION
    for condition in CONDITIONS.values():
        if condition.matches(SNOMED, code) or condition.matches(ICD10CM, code):
            return condition.label
    return code


def reach_rows(start: datetime, end: datetime) -> list[ReachRow]:
    return education_reach(start=start, end=end)


def reach_table(rows: list[ReachRow], dimension: str) -> CountTable:
    """Sent education by content, condition or language: opened and not opened (a partition of sent)."""
    counts: dict[tuple[str, str], int] = {}
    labels: dict[str, str] = {}
    for row in rows:
        if dimension == "content":
            key, label = row.item_key, row.title
        elif dimension == "condition":
            label = condition_label(row.condition_code)
            key = label
        else:
            key = label = row.language
        labels[key] = label
        counts[(key, "opened")] = counts.get((key, "opened"), 0) + row.opened
        counts[(key, "not_opened")] = counts.get((key, "not_opened"), 0) + row.sent - row.opened
    name = DIMENSIONS[dimension]
    return CountTable(
        title=f"Education reach by {name.lower()}",
        row_header=name,
        columns=REACH_COLUMNS,
        rows=sorted(labels.items(), key=lambda kv: kv[1]),
        counts=counts,
        rates=REACH_RATES,
        total_label="All education sent",
    )


def completion_rows(start: datetime, end: datetime) -> list[CompletionRow]:
    return engagement_completion(start=start, end=end)


def completion_table(rows: list[CompletionRow]) -> CountTable:
    """Answerable content (questionnaires) sent in the period: answered and not answered."""
    answerable = [r for r in rows if r.answerable]
    counts: dict[tuple[str, str], int] = {}
    for r in answerable:
        counts[(r.subject_type, "answered")] = r.answered
        counts[(r.subject_type, "not_answered")] = r.sent - r.answered
    return CountTable(
        title="Questionnaire completion",
        row_header="Content",
        columns=COMPLETION_COLUMNS,
        rows=[(r.subject_type, r.content) for r in answerable],
        counts=counts,
        rates=COMPLETION_RATES,
        total_label="All questionnaires sent",
    )
