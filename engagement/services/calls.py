"""Care-gap contact attempts: logging a phone call, and sending a gap's recall message now.

Both name a gap by its recall key (engagement.recalls.RECALLS). A recall sent from here is an
ordinary outbox row of the organization's preventive_recall rule for that key, with the slot the
rule itself uses this period ("<recall key>:<period key>"): consent, channel choice, quiet hours
and frequency caps apply as to any message, and the rule's next scan does not send it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from engagement import recalls
from engagement.models import CallLog, OutboundMessage, Rule, RuleKind
from engagement.services.outbox import outbox_enqueue, user_or_none
from healthcrm.tenancy import require_current_organization


def _recall(recall_key: str) -> recalls.Recall:
    recall = recalls.RECALLS.get(recall_key)
    if recall is None:
        raise ValidationError({"recall_key": "Unknown care gap."}, code="invalid")
    return recall


def call_log_create(
    *, patient: Any, recall_key: str, outcome: str, note: str = "", actor: Any, at: datetime | None = None
) -> CallLog:
    """Record a call about a care gap (the note is encrypted; it may name clinical details)."""
    _recall(recall_key)
    user = user_or_none(actor)
    call = CallLog(
        organization=require_current_organization(),
        patient=patient,
        recall_key=recall_key,
        outcome=outcome,
        note=note.strip(),
        called_by=user,
        called_by_label=user.get_username() if user else "",
        called_at=at or timezone.now(),
    )
    call.full_clean()
    with transaction.atomic():
        call.save()
    return call


@dataclass(frozen=True)
class RecallSend:
    """What "Send recall" did: queued (a new message), already_sent (this period's exists),
    no_rule (the organization has no active recall rule for the gap) or unreachable (no consent,
    no address, or an inactive patient)."""

    outcome: str
    slot: str
    message: OutboundMessage | None = None


def recall_slot(recall_key: str, now: datetime) -> str:
    """The outbox slot of a recall this period, in the organization's time zone (as the rule's)."""
    recall = _recall(recall_key)
    local = now.astimezone(require_current_organization().zone)
    return f"{recall.key}:{recall.period_key(local.date())}"


def recall_messages(*, recall_key: str | None = None) -> Any:
    """Every outbox row of a preventive_recall rule for this recall key (all periods; None: any key)."""
    messages = OutboundMessage.objects.filter(rule__kind=RuleKind.PREVENTIVE_RECALL)
    return messages if recall_key is None else messages.filter(slot__startswith=f"{recall_key}:")


def recall_send(*, patient: Any, recall_key: str, actor: Any, now: datetime | None = None) -> RecallSend:
    """Enqueue this period's recall message for one patient now; once per period whoever clicks."""
    now = now or timezone.now()
    slot = recall_slot(recall_key, now)
    rule = (
        Rule.objects.filter(kind=RuleKind.PREVENTIVE_RECALL, is_active=True, params__recall=recall_key)
        .order_by("pk")
        .first()
    )
    if rule is None:
        return RecallSend("no_rule", slot)
    with transaction.atomic():
        # Two clicks at once: the second waits here, then finds the first one's row.
        type(patient).objects.select_for_update().filter(pk=patient.pk).first()
        existing = recall_messages(recall_key=recall_key).filter(patient_id=patient.pk, slot=slot).first()
        if existing is not None:
            return RecallSend("already_sent", slot, existing)
        if not patient.is_active:
            return RecallSend("unreachable", slot)
        message = outbox_enqueue(
            patient=patient, rule=rule, subject_type="recall", subject_id=None, slot=slot, due_at=now, sent_by=actor
        )
    return RecallSend("queued" if message is not None else "unreachable", slot, message)
