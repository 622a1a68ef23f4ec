"""Analytics refreshes: beat fans out one task per organization (ids only, never PHI)."""

from __future__ import annotations

from celery import shared_task

from healthcrm.models import Organization
from healthcrm.tasks import TenantTask, fan_out


@shared_task(base=TenantTask, name="analytics.tasks.refresh_task", ignore_result=True)
def refresh_task(organization: Organization, full: bool = False) -> None:
    from analytics.refresh import refresh_run

    refresh_run(full=full)


@shared_task(name="analytics.tasks.refresh_all_task", ignore_result=True)
def refresh_all_task(full: bool = False) -> int:
    """Beat: one refresh per active organization (incremental; `full=True` nightly)."""
    return fan_out(refresh_task, full=full)


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


@shared_task(name="analytics.tasks.risk_train_all_task", ignore_result=True)
def risk_train_all_task() -> int:
    """Beat, weekly: one training (then scoring) per active organization."""
    return fan_out(risk_train_task)


@shared_task(name="analytics.tasks.risk_score_all_task", ignore_result=True)
def risk_score_all_task() -> int:
    """Beat, daily: one scoring per active organization."""
    return fan_out(risk_score_task)
