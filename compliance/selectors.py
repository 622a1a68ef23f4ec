from __future__ import annotations

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
