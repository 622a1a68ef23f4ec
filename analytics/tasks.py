"""Analytics refreshes: beat fans out one task per organization (ids only, never PHI)."""

from __future__ import annotations

from typing import Any

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


@shared_task(base=TenantTask, name="analytics.tasks.risk_train_task", ignore_result=True)
def risk_train_task(organization: Organization) -> None:
    """Retrain the organization's no-show model, then score its upcoming visits with it."""
    from analytics.risk import risk_score, risk_train

    risk_train()
    risk_score()


@shared_task(base=TenantTask, name="analytics.tasks.risk_score_task", ignore_result=True)
def risk_score_task(organization: Organization) -> None:
    """Score the organization's visits of the next 14 days (and enqueue extra reminders)."""
    from analytics.risk import risk_score

    risk_score()


def _each_organization(task: Any) -> int:
    organizations = Organization.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True)
    count = 0
    for organization_id in organizations:
        task.delay(organization_id)
        count += 1
    return count


@shared_task(name="analytics.tasks.risk_train_all_task", ignore_result=True)
def risk_train_all_task() -> int:
    """Beat, weekly: one training (then scoring) per active organization."""
    return _each_organization(risk_train_task)


@shared_task(name="analytics.tasks.risk_score_all_task", ignore_result=True)
def risk_score_all_task() -> int:
    """Beat, daily: one scoring per active organization."""
    return _each_organization(risk_score_task)
