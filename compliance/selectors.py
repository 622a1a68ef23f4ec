from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.apps import apps
from django.db.models import Case, Count, F, Func, Q, QuerySet, When
from django.db.models.expressions import RawSQL

from compliance.models import AccessLog, AnomalyAlert, AnomalyOutcome, AnomalyRule
from healthcrm.tenancy import require_current_organization


def access_log_list(
    *,
    action: str = "",
    actor_label: str = "",
    object_id: str = "",
    patient_id: int | None = None,
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AccessLog]:
    """The current organization's access log, newest first.

    `actor_label` matches the start of the user's sign-in name ("nurse" finds nurse@north.example).
    `patient_id`: the rows that showed that patient (their records, or a record of theirs: pages
    name whose record they show). `since`/`until` are the organization's local dates, inclusive.
    `object_id` is a record id ("28": any type) or a typed one ("patients.appointment:28"). Rows
    name what they showed in `records`; rows written before that carry only object_type/object_ids.
    """
    entries = AccessLog.objects.all()
    if action:
        entries = entries.filter(action=action)
    if actor_label.strip():
        entries = entries.filter(actor_label__istartswith=actor_label.strip())
    if patient_id is not None:
        key = f"patients.patient:{patient_id}"
        older = Q(records=[], object_type="patients.patient", object_ids__contains=[str(patient_id)])
        entries = entries.filter(Q(records__contains=[key]) | older)
    zone = require_current_organization().zone
    if since and since > date.min:
        entries = entries.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=zone))
    if until and until < date.max:
        entries = entries.filter(created_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone))
    object_id = object_id.strip()
    if object_id:
        label, _, pk = object_id.rpartition(":")
        if label:
            older = Q(records=[], object_type=label, object_ids__contains=[pk])
            entries = entries.filter(Q(records__contains=[object_id]) | older)
        else:
            keys = [f"{model._meta.label_lower}:{pk}" for model in apps.get_models()]
            entries = entries.filter(Q(records__overlap=keys) | Q(records=[], object_ids__contains=[pk]))
    return entries


def security_event_list() -> Any:
    """The current organization's security events (access, roles, settings, passwords, second
    factors, device tokens, Twilio and FHIR credentials), newest first; secrets arrive redacted.

    Row-level security on auditlog's table shows only the current organization's entries.
    """
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    from compliance.audit import SECURITY_MODELS

    types = [ContentType.objects.get_by_natural_key(*label.split(".")) for label in SECURITY_MODELS]
    return (
        LogEntry.objects.filter(content_type__in=types)
        .select_related("content_type", "actor")
        .order_by("-timestamp", "-pk")
    )


def anomaly_alert_list(*, rule: str = "", reviewed: str = "") -> QuerySet[AnomalyAlert]:
    """The current organization's anomaly alerts: unreviewed first, newest day first in each group.
    `reviewed`: "no" or "yes" narrows to one group."""
    alerts = AnomalyAlert.objects.order_by(F("reviewed_at").asc(nulls_first=True), "-day", "-id")
    if rule:
        alerts = alerts.filter(rule=rule)
    if reviewed == "no":
        alerts = alerts.filter(reviewed_at__isnull=True)
    elif reviewed == "yes":
        alerts = alerts.filter(reviewed_at__isnull=False)
    return alerts


def anomaly_weekly_summary(*, week_start: date) -> dict[str, Any]:
    """Counts for the organization's week starting `week_start` (seven local days): per rule, raised
    and awaiting review, and the outcomes of those reviewed. Counts only."""
    week = AnomalyAlert.objects.filter(day__gte=week_start, day__lt=week_start + timedelta(days=7))
    per_rule = {row["rule"]: row for row in week.values("rule").annotate(total=Count("id"), open=_OPEN)}
    outcomes = dict(week.exclude(outcome="").values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n"))
    rows = [
        {
            "rule": rule,
            "label": label,
            "total": per_rule.get(rule, {}).get("total", 0),
            "unreviewed": per_rule.get(rule, {}).get("open", 0),
        }
        for rule, label in AnomalyRule.choices
    ]
    return {
        "week_start": week_start,
        "week_end": week_start + timedelta(days=6),
        "rows": rows,
        "total": sum(row["total"] for row in rows),
        "unreviewed": sum(row["unreviewed"] for row in rows),
        "outcomes": [(label, outcomes.get(value, 0)) for value, label in AnomalyOutcome.choices],
        "users": week.values("subject").distinct().count(),
    }


_OPEN = Count("id", filter=Q(reviewed_at__isnull=True))


# The names of the fields a change-log entry changed (their values, even redacted, are not shown).
_CHANGED_FIELDS = """(SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(
    CASE WHEN jsonb_typeof(auditlog_logentry.changes) = 'object' THEN auditlog_logentry.changes ELSE '{}'::jsonb END
) k)"""
_WRITE_ACTION_CODES = {"create": 0, "update": 1, "delete": 2}
AUDIT_COLUMNS = ("source", "row_id", "at", "who", "act", "what", "detail", "ip")


def audit_event_list(
    *,
    source: str = "",
    action: str = "",
    actor_label: str = "",
    patient_id: int | None = None,
    since: date | None = None,
    until: date | None = None,
    ip: str = "",
) -> Any:
    """Reads (the access log) and writes (the change log) of the current organization as one list,
    newest first: rows of AUDIT_COLUMNS (`what` the page or the record changed, `detail` the records
    shown or the fields changed; ids and field names only, never values).

    `patient_id`: reads that showed the patient, writes to the patient record itself. `actor_label`
    matches the start of the sign-in name; `since`/`until` are the organization's local days."""
    from auditlog.models import LogEntry
    from django.db.models import CharField, Value
    from django.db.models.functions import Cast, Coalesce, Concat

    reads: Any = None
    writes: Any = None
    if source in ("", "access") and action not in _WRITE_ACTION_CODES:
        rows = access_log_list(
            action=action, actor_label=actor_label, patient_id=patient_id, since=since, until=until
        ).order_by()
        if ip:
            rows = rows.filter(ip_address=ip)
        reads = rows.annotate(
            source=Value("access", output_field=CharField()),
            row_id=F("id"),
            at=F("created_at"),
            who=F("actor_label"),
            act=F("action"),
            what=F("view_name"),
            detail=Func(F("records"), Value(", "), function="array_to_string", output_field=CharField()),
            ip=Cast("ip_address", CharField()),
        ).values(*AUDIT_COLUMNS)
    if source in ("", "write") and (not action or action in _WRITE_ACTION_CODES):
        entries = LogEntry.objects.all()  # row-level security: the current organization's entries only
        if action:
            entries = entries.filter(action=_WRITE_ACTION_CODES[action])
        if actor_label.strip():
            entries = entries.filter(
                Q(actor_email__istartswith=actor_label.strip()) | Q(actor__username__istartswith=actor_label.strip())
            )
        if patient_id is not None:
            entries = entries.filter(
                content_type__app_label="patients", content_type__model="patient", object_pk=str(patient_id)
            )
        zone = require_current_organization().zone
        if since and since > date.min:
            entries = entries.filter(timestamp__gte=datetime.combine(since, time.min, tzinfo=zone))
        if until and until < date.max:
            entries = entries.filter(timestamp__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone))
        if ip:
            entries = entries.filter(remote_addr=ip)
        writes = (
            entries.order_by()
            .annotate(
                source=Value("write", output_field=CharField()),
                row_id=F("id"),
                at=F("timestamp"),
                who=Coalesce("actor_email", "actor__username", Value(""), output_field=CharField()),
                act=Case(
                    *[When(action=code, then=Value(name)) for name, code in _WRITE_ACTION_CODES.items()],
                    default=Value("access"),
                    output_field=CharField(),
                ),
                what=Concat(
                    "content_type__app_label",
                    Value("."),
                    "content_type__model",
                    Value(":"),
                    "object_pk",
                    output_field=CharField(),
                ),
                detail=RawSQL(_CHANGED_FIELDS, [], output_field=CharField()),  # noqa: S611 (a constant SQL text, no parameters)  # nosec B611
                ip=Cast("remote_addr", CharField()),
            )
            .values(*AUDIT_COLUMNS)
        )
    if reads is not None and writes is not None:
        return reads.union(writes, all=True).order_by("-at", "-row_id")
    chosen = reads if reads is not None else writes
    if chosen is None:
        return AccessLog.objects.none()
    return chosen.order_by("-at", "-row_id")
