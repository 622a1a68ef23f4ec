"""HL7 v2 tasks (queue `integrations`): organization id first; never PHI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import shared_task

from healthcrm.tasks import TenantTask, fan_out

if TYPE_CHECKING:
    from healthcrm.models import Organization


@shared_task(
    base=TenantTask,
    name="integrations.hl7v2.tasks.hl7_housekeeping_task",
    queue="integrations",
    ignore_result=True,
    acks_late=True,
    max_retries=0,
)
def hl7_housekeeping_task(organization: Organization) -> None:
    """One organization: expire held messages, clear raw copies past retention (idempotent)."""
    from integrations.hl7v2.processing import held_messages_expire, raw_messages_purge

    held_messages_expire()
    raw_messages_purge()


@shared_task(name="integrations.hl7v2.tasks.hl7_housekeeping_due_task", queue="integrations", ignore_result=True)
def hl7_housekeeping_due_task() -> None:
    """Beat (every minute): housekeeping for every organization with an HL7 sender."""
    fan_out(hl7_housekeeping_task, None)
