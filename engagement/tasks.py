"""Outreach tasks: ids in (organization first), never PHI; the database is the schedule.

The send and reconcile tasks are `atomic=False` tenant tasks: their claim must be committed before
the network call (so a crash leaves a visible `sending` row, not a rolled-back one), and the result
is recorded in a second transaction. The delivery functions enter organization_context themselves,
around each database step.
"""

from __future__ import annotations

from celery import shared_task

from healthcrm.models import Organization
from healthcrm.tasks import TenantTask, fan_out


@shared_task(
    base=TenantTask, atomic=False, name="engagement.tasks.outbox_send_task", ignore_result=True, acks_late=True
)
def outbox_send_task(organization: Organization, message_id: int) -> None:
    from engagement.delivery import message_send

    message_send(organization, message_id)


@shared_task(
    base=TenantTask, atomic=False, name="engagement.tasks.outbox_send_batch_task", ignore_result=True, acks_late=True
)
def outbox_send_batch_task(organization: Organization, message_ids: list[int]) -> None:
    """Up to ENGAGEMENT_SEND_BATCH due ids of one organization (each still claimed on its own)."""
    from engagement.delivery import messages_send

    messages_send(organization, [int(pk) for pk in message_ids])


@shared_task(
    base=TenantTask, atomic=False, name="engagement.tasks.outbox_reconcile_task", ignore_result=True, acks_late=True
)
def outbox_reconcile_task(organization: Organization, message_id: int) -> None:
    from engagement.delivery import message_reconcile

    message_reconcile(organization, message_id)


@shared_task(name="engagement.tasks.outbox_dispatch_task", ignore_result=True)
def outbox_dispatch_task() -> None:
    """Beat, every few seconds: enqueue what is due in every organization (bounded batches)."""
    from engagement.delivery import dispatch_due

    dispatch_due()


@shared_task(base=TenantTask, name="engagement.tasks.rule_materialize_task", ignore_result=True)
def rule_materialize_task(organization: Organization, rule_id: int) -> None:
    from engagement.models import Rule
    from engagement.services import rule_materialize

    rule = Rule.objects.filter(pk=rule_id).first()
    if rule is not None:
        rule_materialize(rule=rule)


def _active_rule_ids(organization: Organization) -> list[int]:
    from engagement.models import Rule

    return list(Rule.objects.filter(is_active=True).values_list("pk", flat=True))


@shared_task(name="engagement.tasks.rules_materialize_all_task", ignore_result=True)
def rules_materialize_all_task() -> None:
    """Beat, every few minutes: one materialize task per active rule of every organization."""
    fan_out(rule_materialize_task, _active_rule_ids)
