"""Settling a claim whose outcome is unknown (a worker killed between its claim and its result, or
a timeout): the SMS backend is asked whether the message got there before it is sent again, so a
message reaches the provider once even across crashes."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from engagement import selectors
from engagement.delivery.backends import DeliveryError, SmsAccount, sms_backend
from engagement.delivery.send import admins_alert
from engagement.models import MessageChannel, OutboundMessage, OutboxStatus
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context


def message_reconcile(organization: Organization, message_id: int) -> str:
    """Settle a message left in `sending` (worker killed, or a timeout): did the provider get it?"""
    now = timezone.now()
    with organization_context(organization):
        message = OutboundMessage.objects.filter(pk=message_id, status=OutboxStatus.SENDING).first()
        if message is None or message.claimed_at is None:
            return "skipped"
        settings_ = selectors.channel_settings_get()
        claimed_at = message.claimed_at
        to, body, attempts = message.to_address, message.body, message.attempts
        account = SmsAccount.of(organization, settings_)
    found_sid = ""
    if message.channel == MessageChannel.SMS and to and body:
        since = claimed_at - timedelta(minutes=5)  # clock skew between us and the provider
        try:
            found_sid = sms_backend().find_sent(account=account, to=to, body=body, since=since)
        except DeliveryError:
            return "unknown"  # ask again at the next sweep
    with organization_context(organization):
        mine = OutboundMessage.objects.filter(pk=message_id, status=OutboxStatus.SENDING, claimed_at=claimed_at)
        if found_sid:
            mine.update(status=OutboxStatus.SENT, provider_sid=found_sid, sent_at=now, status_reason="", updated_at=now)
            return "sent"
        if attempts >= settings_.max_attempts:
            if mine.update(status=OutboxStatus.FAILED, status_reason="Gave up: outcome unknown.", updated_at=now):
                admins_alert(organization, message_id, "gave up after repeated unknown outcomes")
            return "failed"
        mine.update(status=OutboxStatus.PENDING, next_attempt_at=now, claimed_at=None, updated_at=now)
        return "retry"
