"""The task base every tenant task uses, and platform housekeeping tasks.

"Treat a task as an API": tenant tasks take `organization_id` first and ids after it (never PHI:
the broker keeps payloads in clear), and run inside that organization's context and transaction.
"""

from __future__ import annotations

from typing import Any

from auditlog.context import set_actor
from celery import Task, shared_task
from django.contrib.auth import get_user_model

from healthcrm.tenancy import organization_context


class TenantTask(Task):
    """Runs the task body with the organization current (ORM filter and RLS) and the audit actor set.

    Call as `some_task.delay(organization_id, object_id, ..., actor_id=user.pk)`; `actor_id` is
    optional and is not passed on to the body.
    """

    abstract = True

    def __call__(self, organization_id: int, *args: Any, actor_id: int | None = None, **kwargs: Any) -> Any:
        from healthcrm.models import Organization

        if organization_id is None:
            raise ValueError(f"{self.name} needs an organization_id: tenant tasks never run unscoped.")
        organization = Organization.objects.filter(pk=organization_id, is_active=True).first()
        if organization is None:
            return None  # the organization is gone or suspended: nothing to do
        actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
        with organization_context(organization), set_actor(actor):
            return super().__call__(organization_id, *args, **kwargs)


@shared_task(ignore_result=True)
def clear_expired_sessions_task() -> None:
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    Session.objects.filter(expire_date__lt=timezone.now()).delete()
