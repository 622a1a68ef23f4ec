"""FHIR tasks (queue `integrations`): organization id first, then ids; never PHI.

The import and pull tasks are `atomic=False` tenant tasks on purpose: an import commits one unit
(bundle, NDJSON chunk, search page) at a time, so a bad unit writes nothing while the others stay,
and progress is visible while it runs. The services enter organization_context per unit themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import shared_task

from healthcrm.tasks import TenantTask, current_actor, fan_out

if TYPE_CHECKING:
    from healthcrm.models import Organization


@shared_task(
    base=TenantTask,
    atomic=False,
    name="integrations.fhir.tasks.fhir_import_task",
    queue="integrations",
    ignore_result=True,
    acks_late=True,
)
def fhir_import_task(organization: Organization, job_id: int) -> None:
    from integrations.fhir.services import import_job_run

    import_job_run(organization=organization, job_id=job_id, actor=current_actor())


# No task-level retries: the client already retries each request that can succeed later (429,
# 5xx, network) with backoff, and a pull that still fails is recorded on its job and connection;
# the database is the schedule, so the beat scan pulls the connection again at its next interval
# from the unchanged cursors. A Celery retry on top would pull twice and record two jobs.
@shared_task(
    base=TenantTask,
    atomic=False,
    name="integrations.fhir.tasks.fhir_pull_task",
    queue="integrations",
    ignore_result=True,
    acks_late=True,
    max_retries=0,
)
def fhir_pull_task(organization: Organization, connection_id: int) -> None:
    from integrations.fhir.services import fhir_pull_connection

    fhir_pull_connection(organization=organization, connection_id=connection_id, actor=current_actor())


def _connections_due(organization: Organization) -> list[int]:
    from integrations.fhir.services import connections_due

    return connections_due()


@shared_task(name="integrations.fhir.tasks.fhir_pull_due_task", queue="integrations", ignore_result=True)
def fhir_pull_due_task() -> None:
    """Beat (CELERY_BEAT_SCHEDULE, every minute): a pull for every connection whose interval has passed."""
    fan_out(fhir_pull_task, _connections_due)
