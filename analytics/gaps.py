"""Care gaps: the preventive-care recalls (engagement.recalls) as facts, worklists and a closure rate.

    build_care_gaps(since, now)        # refresh builder: opens gaps for due patients, closes them
    worklist(...)                      # open gaps for the clinical roles' worklist (PHI: access-logged)
    worklist_rows(gaps)                # each gap with its contact attempts (messages, calls)
    gap_closure(start, end, within)    # gaps closed within N days / gaps opened, by month (CountTable)

A gap kind is a recall definition, nothing else: `Recall.due_now(now)` says who has the gap,
`Recall.gap_since` since when, `Recall.first_done_since` what closed it; the recall rule sends from
the same definition. The builder recomputes every recall's due set on each run (the due sets depend
on time as much as on changed rows, so `since` is not used), dates only the new gaps and writes only
what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncMonth
from django.utils import timezone

from analytics.models import CARE_CLOSURES, CareGap, GapClosedBy, PatientFact
from analytics.refresh import builder
from analytics.suppression import Column, CountTable, RateColumn
from engagement.models import CallLog
from engagement.recalls import RECALLS, Recall
from engagement.services import recall_messages
from healthcrm.tenancy import require_current_organization


@builder("care_gaps")
def build_care_gaps(since: datetime | None, now: datetime) -> int:
    """Open a gap for each patient a recall says is due (opened_on: since when), close open gaps
    whose patient is no longer due: by the closing record (its date, never before the opening),
    as expired when the recall's season ended, else as no longer eligible. Returns rows written.

    A recall's sex and age condition is read from PatientFact.recall_eligible (the patients builder,
    earlier in the same run, evaluated `patient_matches` for every patient it refreshed), so a run
    decrypts nothing here but the new gaps' dates (and candidates that have no facts yet): a
    patient who turns 50 gets the mammography gap with the nightly full rebuild."""
    organization = require_current_organization()
    local_now = timezone.localtime(now, organization.zone)
    today = local_now.date()
    written = 0
    for recall in RECALLS.values():
        due = _due_now(recall, local_now)
        open_gaps = {
            patient_id: (pk, opened_on)
            for pk, patient_id, opened_on in CareGap.objects.filter(
                recall_key=recall.key, closed_on__isnull=True
            ).values_list("pk", "patient_id", "opened_on")
        }
        leaving = [pid for pid in open_gaps if pid not in due]
        done = recall.first_done_since(leaving, local_now)
        closed = []
        for pid in leaving:
            pk, opened_on = open_gaps[pid]
            if pid in done:
                closed_by, closed_on = recall.closed_by, max(done[pid], opened_on)
            elif not recall.in_season(today):
                closed_by, closed_on = GapClosedBy.EXPIRED, today
            else:
                closed_by, closed_on = GapClosedBy.INELIGIBLE, today
            closed.append(CareGap(pk=pk, closed_by=closed_by, closed_on=closed_on, refreshed_at=now, updated_at=now))
        CareGap.objects.bulk_update(closed, ["closed_by", "closed_on", "refreshed_at", "updated_at"], batch_size=1000)
        period = recall.period_key(today)
        opened = [
            CareGap(
                organization=organization,
                patient_id=pid,
                recall_key=recall.key,
                period=period,
                opened_on=opened_on,
                refreshed_at=now,
            )
            for pid, opened_on in sorted(recall.gap_since(due - set(open_gaps), local_now).items())
        ]
        # A concurrent refresh of the same organization inserted it first: the partial unique index holds.
        CareGap.objects.bulk_create(opened, ignore_conflicts=True, batch_size=1000)
        written += len(closed) + len(opened)
    return written


def _due_now(recall: Recall, now: datetime) -> set[int]:
    """`Recall.due_now` with its sex and age condition taken from the patients' facts."""
    if not recall.in_season(now.date()):
        return set()
    due = recall.due_patient_ids(now)
    if recall.reads_demographics:
        eligible, known = set(), set()
        for patient_id, keys in PatientFact.objects.values_list("patient_id", "recall_eligible"):
            known.add(patient_id)
            if recall.key in keys:
                eligible.add(patient_id)
        # A patient without facts yet (the builder run on its own) is checked the slow way.
        due = (due & eligible) | recall.matching(due - known, now.date())
    return due


# -- The worklist (patients: clinical roles only, access-logged by the views) ------------------------

ATTEMPTS_NONE, ATTEMPTS_SOME = "none", "some"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=require_current_organization().zone)


def worklist(*, recall_key: str = "", care_team_user_id: int | None = None, attempts: str = "") -> Any:
    """Open gaps, oldest first; filters: a gap kind, a user on the patient's active care team,
    contact attempts since the gap opened (none / some: a recall message or a logged call)."""
    from patients.models import CareTeamMember

    gaps = CareGap.objects.filter(closed_on__isnull=True, recall_key__in=list(RECALLS))
    if recall_key:
        gaps = gaps.filter(recall_key=recall_key)
    if care_team_user_id is not None:
        team = CareTeamMember.objects.filter(patient_id=OuterRef("patient_id"), user_id=care_team_user_id, active=True)
        gaps = gaps.filter(Exists(team))
    if attempts in (ATTEMPTS_NONE, ATTEMPTS_SOME):
        # The gap's own attempts: of its recall key, from the first day it was open.
        any_attempt = Q()
        for key in RECALLS:
            calls = CallLog.objects.filter(
                patient_id=OuterRef("patient_id"), recall_key=key, called_at__date__gte=OuterRef("opened_on")
            )
            sent = recall_messages(recall_key=key).filter(
                patient_id=OuterRef("patient_id"), due_at__date__gte=OuterRef("opened_on")
            )
            any_attempt |= Q(recall_key=key) & (Exists(calls) | Exists(sent))
        gaps = gaps.filter(any_attempt) if attempts == ATTEMPTS_SOME else gaps.exclude(any_attempt)
    return gaps.order_by("opened_on", "pk")


@dataclass
class WorklistRow:
    gap: CareGap
    name: str  # the gap kind's name (the recall's)
    messages: list[Any] = field(default_factory=list)  # OutboundMessage, newest first
    calls: list[CallLog] = field(default_factory=list)  # newest first

    @property
    def attempts(self) -> int:
        return len(self.messages) + len(self.calls)


def worklist_rows(gaps: Sequence[CareGap]) -> list[WorklistRow]:
    """Each gap with its contact attempts since it opened: two queries for a page, whatever its size.

    (`due_at__date` and `called_at__date` are UTC days, as the worklist filter's: a message sent
    late in the evening before the gap opened may count; the gap's own day always does.)"""
    rows = [WorklistRow(gap, RECALLS[gap.recall_key].name) for gap in gaps]
    by_key: dict[tuple[int, str], WorklistRow] = {(r.gap.patient_id, r.gap.recall_key): r for r in rows}
    patient_ids = sorted({r.gap.patient_id for r in rows})
    if not rows:
        return rows
    earliest = _day_start(min(r.gap.opened_on for r in rows)) - timedelta(days=1)
    keys = sorted({r.gap.recall_key for r in rows})
    message_filter = Q()
    for key in keys:
        message_filter |= Q(slot__startswith=f"{key}:")
    messages = (
        recall_messages()
        .filter(message_filter, patient_id__in=patient_ids, due_at__gte=earliest)
        .only("pk", "patient_id", "slot", "status", "channel", "due_at", "sent_at", "sent_by_id")
        .order_by("-due_at", "-pk")
    )
    for message in messages:
        row = by_key.get((message.patient_id, message.slot.partition(":")[0]))
        if row is not None and message.due_at.date() >= row.gap.opened_on:
            row.messages.append(message)
    calls = CallLog.objects.filter(patient_id__in=patient_ids, recall_key__in=keys, called_at__gte=earliest)
    for call in calls.order_by("-called_at", "-pk"):
        row = by_key.get((call.patient_id, call.recall_key))
        if row is not None and call.called_at.date() >= row.gap.opened_on:
            row.calls.append(call)
    return rows


# -- Gap-closure rate (PHI-free aggregate, small cells suppressed) ------------------------------------


@dataclass(frozen=True)
class GapClosure:
    table: CountTable
    within_days: int
    maturing: list[str]  # months with gaps opened less than `within_days` ago: their rate can still rise


def _months(start: date, end: date) -> list[date]:
    months, day = [], start.replace(day=1)
    while day <= end:
        months.append(day)
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return months


CLOSED, NOT_CLOSED = "closed", "not_closed"


def gap_closure(
    *, start: date, end: date, within_days: int = 90, recall_key: str = "", today: date | None = None
) -> GapClosure:
    """By month of opening (start..end, the clinic's days): gaps opened, and of them those closed by
    care (a result, an immunization, a visit) within `within_days` days of opening. Expired and
    no-longer-eligible gaps count as not closed. Grouped in SQL on the fact table's plain columns."""
    gaps = CareGap.objects.filter(opened_on__gte=start, opened_on__lte=end)
    if recall_key:
        gaps = gaps.filter(recall_key=recall_key)
    closed_in_time = Q(closed_by__in=CARE_CLOSURES, closed_on__lte=_plus_days("opened_on", within_days))
    rows = (
        gaps.annotate(month=TruncMonth("opened_on"))
        .values("month")
        .annotate(total=Count("pk"), closed=Count("pk", filter=closed_in_time))
        .values_list("month", "total", "closed")
    )
    counts: dict[tuple[str, str], int] = {}
    for month, total, closed in rows:
        key = month.strftime("%Y-%m")
        counts[(key, CLOSED)] = closed
        counts[(key, NOT_CLOSED)] = total - closed
    months = _months(start, end)
    today = today or timezone.localdate(timezone=require_current_organization().zone)
    cutoff = today - timedelta(days=within_days)
    maturing = [m.strftime("%Y-%m") for m in months if _month_end(m) > cutoff]
    table = CountTable(
        title=f"Care gaps closed within {within_days} days, by month opened",
        row_header="Month opened",
        columns=[
            Column(CLOSED, f"Closed within {within_days} days"),
            Column(NOT_CLOSED, "Not closed in time"),
        ],
        rows=[(m.strftime("%Y-%m"), m.strftime("%b %Y")) for m in months],
        counts=counts,
        rates=[RateColumn("closure", "Closure rate", numerator=CLOSED)],
        total_label="All months",
    )
    return GapClosure(table=table, within_days=within_days, maturing=maturing)


def _month_end(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _plus_days(field_name: str, days: int) -> Any:
    from django.db.models import DateField, ExpressionWrapper, F

    return ExpressionWrapper(F(field_name) + timedelta(days=days), output_field=DateField())


def gap_kinds() -> list[tuple[str, str]]:
    """(key, name) of every gap kind: the recall definitions."""
    return [(key, recall.name) for key, recall in RECALLS.items()]


def patients_of(gaps: Iterable[CareGap]) -> dict[int, Any]:
    """The patients of a page of gaps (decrypted names for the worklist), one query."""
    from patients.models import Patient

    return Patient.objects.in_bulk({g.patient_id for g in gaps})
