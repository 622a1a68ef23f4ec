"""The retention job: daily, one task per organization (ids only)."""

from __future__ import annotations

from celery import shared_task

from healthcrm.models import Organization
from healthcrm.tasks import TenantTask, fan_out


@shared_task(base=TenantTask, name="patients.erasure.tasks.retention_run_task", ignore_result=True, max_retries=0)
def retention_run_task(organization: Organization) -> None:
    """Apply one organization's retention periods (patients.erasure.services.retention_run)."""
    from patients.erasure.services import retention_run

    retention_run(organization=organization)


@shared_task(name="patients.erasure.tasks.retention_all_task", ignore_result=True)
def retention_all_task() -> None:
    """The beat's daily scan: one retention run per active organization."""
    fan_out(retention_run_task)
