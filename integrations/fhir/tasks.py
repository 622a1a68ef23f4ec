"""FHIR tasks (queue `integrations`): organization id first, then ids; never PHI.

These do not use TenantTask's single transaction on purpose: an import commits one unit (bundle,
NDJSON chunk, search page) at a time, so a bad unit writes nothing while the others stay, and
progress is visible while it runs. They enter organization_context per unit themselves.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.contrib.auth import get_user_model


def _organization(organization_id: int) -> Any:
    from healthcrm.models import Organization

    if organization_id is None:
        raise ValueError("FHIR tasks need an organization_id: tenant tasks never run unscoped.")
    return Organization.objects.filter(pk=organization_id, is_active=True).first()


def _actor(actor_id: int | None) -> Any:
    return get_user_model().objects.filter(pk=actor_id).first() if actor_id else None


@shared_task(queue="integrations", ignore_result=True, acks_late=True)
def fhir_import_task(organization_id: int, job_id: int, actor_id: int | None = None) -> None:
    from integrations.fhir.services import import_job_run

    organization = _organization(organization_id)
    if organization is not None:
        import_job_run(organization=organization, job_id=job_id, actor=_actor(actor_id))


@shared_task(
    queue="integrations",
    ignore_result=True,
    acks_late=True,
    bind=True,
    max_retries=3,
)
def fhir_pull_task(self: Any, organization_id: int, connection_id: int, actor_id: int | None = None) -> None:
    from integrations.fhir.services import fhir_pull_connection

    organization = _organization(organization_id)
    if organization is not None:
        fhir_pull_connection(organization=organization, connection_id=connection_id, actor=_actor(actor_id))


@shared_task(queue="integrations", ignore_result=True)
def fhir_pull_due_task() -> None:
    """Beat: enqueue a pull for every connection whose interval has passed (the database is the schedule).

    Add to CELERY_BEAT_SCHEDULE: {"task": "integrations.fhir.tasks.fhir_pull_due_task", "schedule": crontab()}.
    """
    from healthcrm.models import Organization
    from healthcrm.tenancy import organization_context
    from integrations.fhir.services import connections_due

    for organization in Organization.objects.filter(is_active=True):
        with organization_context(organization):
            due = connections_due()
        for connection_id in due:
            fhir_pull_task.delay(organization.pk, connection_id)
