"""Analytics refreshes: beat fans out one task per organization (ids only, never PHI)."""

from __future__ import annotations

from celery import shared_task

from healthcrm.models import Organization
from healthcrm.tasks import TenantTask


@shared_task(base=TenantTask, name="analytics.tasks.refresh_task", ignore_result=True)
def refresh_task(organization: Organization, full: bool = False) -> None:
    from analytics.refresh import refresh_run

    refresh_run(full=full)


@shared_task(name="analytics.tasks.refresh_all_task", ignore_result=True)
def refresh_all_task(full: bool = False) -> int:
    """Beat: one refresh per active organization (incremental; `full=True` nightly)."""
    organizations = Organization.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True)
    count = 0
    for organization_id in organizations:
        refresh_task.delay(organization_id, full=full)
        count += 1
    return count
