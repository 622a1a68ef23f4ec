from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db.models import Q, QuerySet

from compliance.models import AccessLog


def access_log_list(*, action: str = "", actor_label: str = "", object_id: str = "") -> QuerySet[AccessLog]:
    """The current organization's access log, newest first.

    `object_id` is a record id ("28": any type) or a typed one ("patients.appointment:28"). Rows
    name what they showed in `records`; rows written before that carry only object_type/object_ids.
    """
    entries = AccessLog.objects.all()
    if action:
        entries = entries.filter(action=action)
    if actor_label:
        entries = entries.filter(actor_label__iexact=actor_label.strip())
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
