"""Outreach tasks: ids in (organization first), never PHI; the database is the schedule.

The send and reconcile tasks do not use TenantTask's single transaction: their claim must be
committed before the network call (so a crash leaves a visible `sending` row, not a rolled-back
one), and the result is recorded in a second transaction. They enter organization_context
themselves, around each database step.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from healthcrm.models import Organization
from healthcrm.tasks import TenantTask


class OutreachTask(Task):
    """Resolves the organization (refusing None) and hands it to the body; no outer transaction."""

    abstract = True

    def __call__(self, organization_id: int, *args: Any, **kwargs: Any) -> Any:
        if organization_id is None:
            raise ValueError(f"{self.name} needs an organization_id: tenant tasks never run unscoped.")
        organization = Organization.objects.filter(pk=organization_id, is_active=True).first()
        if organization is None:
            return None
        return self.run(organization, *args, **kwargs)


@shared_task(base=OutreachTask, name="engagement.tasks.outbox_send_task", ignore_result=True, acks_late=True)
def outbox_send_task(organization: Organization, message_id: int) -> None:
    from engagement.delivery import message_send

    message_send(organization, message_id)


@shared_task(base=OutreachTask, name="engagement.tasks.outbox_send_batch_task", ignore_result=True, acks_late=True)
def outbox_send_batch_task(organization: Organization, message_ids: list[int]) -> None:
    """Up to ENGAGEMENT_SEND_BATCH due ids of one organization (each still claimed on its own)."""
    from engagement.delivery import messages_send

    messages_send(organization, [int(pk) for pk in message_ids])


@shared_task(base=OutreachTask, name="engagement.tasks.outbox_reconcile_task", ignore_result=True, acks_late=True)
def outbox_reconcile_task(organization: Organization, message_id: int) -> None:
    from engagement.delivery import message_reconcile

    message_reconcile(organization, message_id)


@shared_task(name="engagement.tasks.outbox_dispatch_task", ignore_result=True)
def outbox_dispatch_task() -> None:
    """Beat, every few seconds: enqueue what is due in every organization (bounded batches)."""
    from engagement.delivery import dispatch_due

    dispatch_due()


@shared_task(base=TenantTask, name="engagement.tasks.rule_materialize_task", ignore_result=True)
def rule_materialize_task(organization_id: int, rule_id: int) -> None:
    from engagement.models import Rule
    from engagement.services import rule_materialize

    rule = Rule.objects.filter(pk=rule_id).first()
    if rule is not None:
        rule_materialize(rule=rule)


@shared_task(name="engagement.tasks.rules_materialize_all_task", ignore_result=True)
def rules_materialize_all_task() -> None:
    """Beat, every few minutes: one materialize task per active rule of every organization."""
    from engagement.models import Rule
    from healthcrm.tenancy import organization_context

    for organization in Organization.objects.filter(is_active=True).order_by("pk"):
        with organization_context(organization):
            rule_ids = list(Rule.objects.filter(is_active=True).values_list("pk", flat=True))
        for rule_id in rule_ids:
            rule_materialize_task.delay(organization.pk, rule_id)
