"""The per-patient timeline: appointments, results, care plan changes, tasks and notes, newest first.

Other apps add entries by registering a source (engagement will add messages):

    from patients.care.timeline import TimelineEntry, register_timeline_source

    @register_timeline_source("messages", clinical=False)
    def message_entries(patient, limit):
        return [TimelineEntry(at=m.sent_at, kind="message", title="Text message sent", ...) for m in ...[:limit]]

A source returns the patient's newest `limit` entries in ONE query; a page of the timeline asks each
source for (offset + page size + 1) entries and merges them, so the number of queries is the number
of sources, whatever the page size. Sources marked `clinical` are left out for users without the
clinical field group (patients.policies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from heapq import merge
from itertools import islice

from django.db.models import Exists, OuterRef
from django.urls import reverse

from patients.models import Appointment, CarePlanActivity, CareTask, Observation, Patient, PatientNote


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    title: str
    detail: str = ""
    url: str = ""
    actor: str = ""
    obj: object = field(default=None, compare=False, repr=False)


TimelineSource = Callable[[Patient, int], list[TimelineEntry]]


@dataclass(frozen=True)
class _Registered:
    name: str
    source: TimelineSource
    clinical: bool


_SOURCES: dict[str, _Registered] = {}


def register_timeline_source(name: str, *, clinical: bool) -> Callable[[TimelineSource], TimelineSource]:
    def decorator(source: TimelineSource) -> TimelineSource:
        _SOURCES[name] = _Registered(name, source, clinical)
        return source

    return decorator


def timeline_sources(*, clinical: bool) -> list[str]:
    return [name for name, s in _SOURCES.items() if clinical or not s.clinical]


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    number: int
    has_previous: bool
    has_next: bool

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1


def patient_timeline(*, patient: Patient, clinical: bool, page: int = 1, per_page: int = 25) -> TimelinePage:
    """One page of the patient's timeline, newest first (one query per source)."""
    page = max(1, min(page, 10**6))  # views cap it lower (TimelinePageForm); never past bigint here
    offset = (page - 1) * per_page
    wanted = offset + per_page + 1
    streams = [
        sorted(s.source(patient, wanted), key=lambda e: e.at, reverse=True)
        for s in _SOURCES.values()
        if clinical or not s.clinical
    ]
    merged = list(islice(merge(*streams, key=lambda e: e.at, reverse=True), offset, offset + per_page + 1))
    return TimelinePage(entries=merged[:per_page], number=page, has_previous=page > 1, has_next=len(merged) > per_page)


@register_timeline_source("appointments", clinical=False)
def _appointments(patient: Patient, limit: int) -> list[TimelineEntry]:
    rows = Appointment.objects.filter(patient=patient).select_related("practitioner").order_by("-starts_at")[:limit]
    return [
        TimelineEntry(
            at=a.starts_at,
            kind="visit",
            title=f"{a.get_appointment_type_display()} with {a.practitioner.display_name}",
            detail=a.get_status_display(),
            url=reverse("patients:appointment_detail", args=[a.pk]),
        )
        for a in rows
    ]


@register_timeline_source("results", clinical=True)
def _results(patient: Patient, limit: int) -> list[TimelineEntry]:
    rows = Observation.objects.filter(patient=patient).order_by("-effective_at", "-id")[:limit]
    return [
        TimelineEntry(
            at=o.effective_at,
            kind="result",
            title=o.display,
            detail=o.value_display + {"H": " (high)", "L": " (low)"}.get(o.abnormal_flag, ""),
        )
        for o in rows
    ]


@register_timeline_source("care_plan_changes", clinical=True)
def _plan_changes(patient: Patient, limit: int) -> list[TimelineEntry]:
    rows = CarePlanActivity.objects.filter(patient=patient).order_by("-created_at", "-id")[:limit]
    return [
        TimelineEntry(
            at=a.created_at,
            kind="plan",
            title=a.get_change_display(),
            detail=f"Care plan #{a.care_plan_id}" if a.care_plan_id else "",
            actor=a.actor_label,
        )
        for a in rows
    ]


@register_timeline_source("tasks", clinical=True)
def _tasks(patient: Patient, limit: int) -> list[TimelineEntry]:
    rows = CareTask.objects.filter(patient=patient).order_by("-created_at", "-id")[:limit]
    return [
        TimelineEntry(
            at=t.created_at, kind="task", title=t.title, detail=f"{t.get_status_display()} · due {t.due_date:%Y-%m-%d}"
        )
        for t in rows
    ]


@register_timeline_source("notes", clinical=True)
def _notes(patient: Patient, limit: int) -> list[TimelineEntry]:
    amended = Exists(PatientNote.objects.filter(amends=OuterRef("pk")))
    rows = PatientNote.objects.filter(patient=patient).annotate(amended=amended).order_by("-created_at", "-id")[:limit]
    return [
        TimelineEntry(
            at=n.created_at,
            kind="note",
            title=_note_title(n),
            # A restricted note shows nothing of itself here: opening it takes break-the-glass.
            detail=RESTRICTED_DETAIL
            if n.restricted_at
            else (f"Reason: {n.amendment_reason}\n" if n.amends_id else "") + n.body,
            url=reverse("patients:note_detail", args=[n.pk]),
            actor=n.author_label,
        )
        for n in rows
    ]


RESTRICTED_DETAIL = "Restricted at the patient's request: opening it takes break-the-glass."


def _note_title(note: PatientNote) -> str:
    state = "draft" if not note.is_signed else "amendment" if note.amends_id else "signed"
    title = f"{note.get_note_type_display()} ({state})"
    return f"{title}, amended since" if getattr(note, "amended", False) else title
