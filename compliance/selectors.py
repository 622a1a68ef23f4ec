from __future__ import annotations

from django.db.models import QuerySet

from compliance.models import AccessLog


def access_log_list(*, action: str = "", actor_label: str = "", object_id: str = "") -> QuerySet[AccessLog]:
    """The current organization's access log, newest first."""
    entries = AccessLog.objects.all()
    if action:
        entries = entries.filter(action=action)
    if actor_label:
        entries = entries.filter(actor_label__iexact=actor_label.strip())
    if object_id:
        entries = entries.filter(object_ids__contains=[object_id.strip()])
    return entries
