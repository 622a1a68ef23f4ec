"""Delivery statuses reported by the SMS provider, in engagement's own vocabulary (the provider's
backend translates its status names: integrations/twilio/backend.py for Twilio)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from engagement.models import OutboundMessage, OutboxStatus

# Order of delivery states; a report never moves a message backwards, so replays change nothing.
_RANK = {OutboxStatus.SENDING: 0, OutboxStatus.SENT: 1, OutboxStatus.DELIVERED: 2, OutboxStatus.FAILED: 2}
DELIVERY_STATUSES = frozenset({OutboxStatus.SENT, OutboxStatus.DELIVERED, OutboxStatus.FAILED})


def delivery_status_apply(*, sid: str, status: str, error_code: str = "") -> int:
    """Apply a provider's report (`status`: sent, delivered or failed; anything else is ignored) to
    the message with this provider id; returns rows changed (0 on replay)."""
    if not sid or status not in DELIVERY_STATUSES:
        return 0
    lower = [s for s, rank in _RANK.items() if rank < _RANK[OutboxStatus(status)]]
    changes: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if status == OutboxStatus.DELIVERED:
        changes["delivered_at"] = timezone.now()
    if status == OutboxStatus.FAILED:
        changes["error_code"] = str(error_code)[:32]
        changes["status_reason"] = "The carrier could not deliver the message."
    return OutboundMessage.objects.filter(provider_sid=sid, status__in=lower).update(**changes)
