"""The rows of a patient's access report: reads from the access log, writes from the change log."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from compliance.models import AccessAction, AccessLog
from compliance.selectors import access_log_list
from healthcrm.models import Membership
from healthcrm.roles import Role
from healthcrm.tenancy import require_current_organization
from patients.models import BreakGlassEvent, Patient

_READ_VERBS: dict[str, str] = {
    AccessAction.VIEW: "viewed",
    AccessAction.LIST: "listed",
    AccessAction.SEARCH: "found by a search",
    AccessAction.EXPORT: "exported",
    AccessAction.CHANGE: "changed",
    AccessAction.DENIED: "was refused",
}
_WRITE_VERBS: dict[int, str] = {
    LogEntry.Action.CREATE: "added",
    LogEntry.Action.UPDATE: "changed",
    LogEntry.Action.DELETE: "deleted",
    LogEntry.Action.ACCESS: "accessed",
}


@dataclass(frozen=True)
class AccessReportRow:
    """One access to the patient's record. `reason` is the "why" column: the break-glass reason of a
    read made under a break-glass grant (issue #13 item 1), else empty."""

    when: datetime
    source: str  # "read" (access log) or "write" (change log)
    full_name: str
    username: str
    role: str
    what: str
    page: str
    reason: str


def _kind(label: str) -> str:
    try:
        return str(apps.get_model(label)._meta.verbose_name)
    except (LookupError, ValueError):
        return label.rpartition(".")[2]


def _kinds(entry: AccessLog, patient_key: str) -> str:
    """The kinds of record a row showed, in order, each once; the patient's own record only when it
    was all the row showed (an appointment's page names its patient too)."""
    labels = [key.rpartition(":")[0] for key in entry.records if key != patient_key]
    if not entry.records:
        labels = [entry.object_type] if entry.object_type != Patient._meta.label_lower else []
    kinds = list(dict.fromkeys(_kind(label) for label in labels if label))
    return ", ".join(kinds) or "patient record"


def _patient_lookup(model: type[models.Model]) -> str | None:
    """The filter that finds a model's rows of one patient: the patient itself, a `patient` foreign
    key, or one hop through a foreign key to a model with one (a goal through its care plan)."""
    if model is Patient:
        return "pk"
    for field in model._meta.concrete_fields:
        if not isinstance(field, models.ForeignKey):
            continue
        if field.name == "patient" and field.related_model is Patient:
            return "patient_id"
    for field in model._meta.concrete_fields:
        related = field.related_model if isinstance(field, models.ForeignKey) else None
        if related is None or related is Patient or isinstance(related, str):
            continue
        try:
            hop = related._meta.get_field("patient")
        except FieldDoesNotExist:
            continue
        if isinstance(hop, models.ForeignKey) and hop.related_model is Patient:
            return f"{field.name}__patient_id"
    return None


def _write_entries(patient: Patient, since: datetime | None, until: datetime | None) -> Any:
    """Change-log entries of the patient's record and of the records that belong to it (as they
    exist now: entries of a record deleted outright cannot be tied to the patient any more)."""
    match = models.Q(pk__in=[])
    for model in auditlog.get_models():
        lookup = _patient_lookup(model)
        if lookup is None or not hasattr(model, "organization"):
            continue
        # One subquery per model inside one query (auditlog stores integer pks in object_id too).
        pks = model._base_manager.filter(organization=patient.organization_id, **{lookup: patient.pk}).values("pk")
        match |= models.Q(content_type=ContentType.objects.get_for_model(model), object_id__in=pks)
    entries = LogEntry.objects.filter(match).select_related("content_type")
    if since is not None:
        entries = entries.filter(timestamp__gte=since)
    if until is not None:
        entries = entries.filter(timestamp__lt=until)
    return entries.order_by("-timestamp", "-pk")


def _bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    zone = require_current_organization().zone
    start = datetime.combine(since, time.min, tzinfo=zone) if since and since > date.min else None
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone) if until and until < date.max else None
    return start, end


def _roles_at(organization_id: int, user_ids: set[int]) -> Callable[[int | None, datetime], str]:
    """`role(user_id, when)`: the user's role in the organization at that time, from the change log
    of their membership (memberships are audited); the current role where the log has no change
    of it before then (a membership older than its audit, or never changed). Two queries."""
    memberships = list(Membership.objects.filter(organization=organization_id, user_id__in=user_ids))
    current = {m.user_id: m.role for m in memberships}
    owner = {m.pk: m.user_id for m in memberships}
    changes: dict[int, list[tuple[datetime, str, str]]] = {}
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Membership), object_id__in=list(owner)
    ).order_by("timestamp", "pk")
    for object_id, timestamp, change in entries.values_list("object_id", "timestamp", "changes"):
        pair = change.get("role") if isinstance(change, dict) else None
        if isinstance(pair, list) and len(pair) == 2 and object_id in owner:
            changes.setdefault(owner[object_id], []).append((timestamp, str(pair[0]), str(pair[1])))

    def role(user_id: int | None, when: datetime) -> str:
        if not user_id or user_id not in current:
            return ""
        value = current[user_id]
        history = changes.get(user_id, [])
        before = [new for at, _old, new in history if at <= when]
        if before:
            value = before[-1]
        elif history and history[0][1] in Role.values:
            value = history[0][1]  # the role it had before its first logged change
        return str(Role(value).label) if value in Role.values else ""

    return role


def _break_glass_reasons(patient: Patient, start: datetime | None, end: datetime | None) -> Any:
    """`why(user_id, when)`: "Break-glass: <reason>" for a read made under a break-glass grant of
    that user to this patient, else "" (one query: the patient's grants that overlap the range)."""
    grants = BreakGlassEvent.objects.filter(patient=patient)
    if start is not None:
        grants = grants.filter(expires_at__gte=start)
    if end is not None:
        grants = grants.filter(granted_at__lt=end)
    windows: dict[int, list[tuple[datetime, datetime, str]]] = {}
    for grant in grants.only("user_id", "granted_at", "expires_at", "reason"):
        if grant.user_id is not None:
            windows.setdefault(grant.user_id, []).append(
                (grant.granted_at, grant.expires_at, str(grant.get_reason_display()))
            )

    def why(user_id: int | None, when: datetime) -> str:
        for granted_at, expires_at, label in windows.get(user_id or 0, ()):
            if granted_at <= when <= expires_at:
                return f"Break-glass: {label}"
        return ""

    return why


def patient_access_report(
    *, patient: Patient, since: date | None = None, until: date | None = None
) -> list[AccessReportRow]:
    """Every logged access to one patient's record, newest first: who (name, sign-in name, role in
    this organization at the time), when, what (the action and the kinds of record) and the page.

    `since`/`until` are the organization's local dates, inclusive. Reads are the access-log rows
    that named the patient (`access_log_list(patient_id=...)`); writes are the change-log entries
    of the patient and of its records (appointments, care plans, goals, notes, ...).
    """
    cap = settings.ACCESS_LOG_EXPORT_MAX_ROWS  # per source: a longer history needs a narrower date range
    reads = list(access_log_list(patient_id=patient.pk, since=since, until=until).select_related("actor")[:cap])
    start, end = _bounds(since, until)
    writes = list(_write_entries(patient, start, end).select_related("actor")[:cap])
    users = {e.actor_id for e in reads if e.actor_id} | {e.actor_id for e in writes if e.actor_id}
    role = _roles_at(patient.organization_id, users)
    why = _break_glass_reasons(patient, start, end)

    def name(user: Any) -> str:
        return user.get_full_name() if user is not None else ""

    patient_key = f"{patient._meta.label_lower}:{patient.pk}"

    def read_rows() -> Iterator[AccessReportRow]:
        for entry in reads:
            yield AccessReportRow(
                when=entry.created_at,
                source="read",
                full_name=name(entry.actor),
                username=entry.actor_label,
                role=role(entry.actor_id, entry.created_at),
                what=f"{_READ_VERBS.get(entry.action, entry.action)} {_kinds(entry, patient_key)}",
                page=entry.view_name,
                reason=why(entry.actor_id, entry.created_at),
            )

    def write_rows() -> Iterator[AccessReportRow]:
        user_model = get_user_model()
        for entry in writes:
            actor = entry.actor
            username = actor.get_username() if isinstance(actor, user_model) else (entry.actor_email or "")
            kind = entry.content_type.model_class()
            label = str(kind._meta.verbose_name) if kind is not None else entry.content_type.model
            yield AccessReportRow(
                when=entry.timestamp,
                source="write",
                full_name=name(actor),
                username=username or "system",
                role=role(entry.actor_id, entry.timestamp),
                what=f"{_WRITE_VERBS.get(entry.action, 'changed')} {label}",
                page="",
                reason="",
            )

    return list(heapq.merge(read_rows(), write_rows(), key=lambda row: row.when, reverse=True))
