from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.apps import apps
from django.db.models import Count, F, Q, QuerySet

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
