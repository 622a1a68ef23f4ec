"""Compliance's beat scans: anomaly alerts per organization, the weekly summary, the SIEM export.

Arguments are the organization's id (TenantTask resolves it) and dates as ISO strings: never PHI.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from healthcrm.models import Organization
from healthcrm.tasks import TenantTask, fan_out

logger = logging.getLogger(__name__)


@shared_task(base=TenantTask, name="compliance.tasks.anomaly_scan_task", ignore_result=True)
def anomaly_scan_task(organization: Organization, day: str | None = None) -> int:
    """Scan one local day (ISO date), or the organization's today and yesterday (a scan just after
    midnight still sees the end of the day before). Returns how many alerts were new."""
    from compliance.services import anomaly_scan

    today = timezone.localdate(timezone=organization.zone)
    days = [date.fromisoformat(day)] if day else [today - timedelta(days=1), today]
    return sum(len(anomaly_scan(organization=organization, day=d)) for d in days)


@shared_task(name="compliance.tasks.anomaly_scan_all_task", ignore_result=True)
def anomaly_scan_all_task() -> int:
    return fan_out(anomaly_scan_task)


@shared_task(base=TenantTask, name="compliance.tasks.anomaly_weekly_summary_task", ignore_result=True)
def anomaly_weekly_summary_task(organization: Organization) -> None:
    """The week before this one (Monday to Sunday, the organization's days) to compliance officers."""
    from compliance.services import anomaly_weekly_summary_send

    today = timezone.localdate(timezone=organization.zone)
    anomaly_weekly_summary_send(organization=organization, week_start=today - timedelta(days=today.weekday() + 7))


@shared_task(name="compliance.tasks.anomaly_weekly_summary_all_task", ignore_result=True)
def anomaly_weekly_summary_all_task() -> int:
    return fan_out(anomaly_weekly_summary_task)


@shared_task(base=TenantTask, atomic=False, name="compliance.tasks.siem_ship_task", ignore_result=True)
def siem_ship_task(organization: Organization) -> int:
    """Ship the organization's new audit events to the configured collector. A collector that is
    down is not retried here: the next beat run resumes at the checkpoint."""
    from compliance.siem import SinkError, siem_ship, sink_from_settings

    sink = sink_from_settings()
    try:
        return siem_ship(organization=organization, sink=sink, batch_size=settings.SIEM_BATCH_SIZE)
    except SinkError as error:
        logger.warning("SIEM export of organization %s stopped: %s", organization.pk, error)
        return 0
    finally:
        sink.close()


@shared_task(name="compliance.tasks.siem_ship_all_task", ignore_result=True)
def siem_ship_all_task() -> int:
    if not settings.SIEM_ENABLED:
        return 0
    return fan_out(siem_ship_task)
