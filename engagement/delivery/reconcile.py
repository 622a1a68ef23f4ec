"""Settling a claim whose outcome is unknown (a worker killed between its claim and its result, or
a timeout): the SMS backend is asked whether the message got there before it is sent again, so a
message reaches the provider once even across crashes."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from engagement import selectors
from engagement.delivery.backends import DeliveryError, SmsAccount, sms_backend
from engagement.delivery.send import admins_alert, useful_until
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
        until = useful_until(message)
        account = SmsAccount.of(organization, settings_)
    found_sid = ""
    if message.channel == MessageChannel.SMS and to and body:
        since = claimed_at - timedelta(minutes=5)  # clock skew between us and the provider
        try:
            found_sid = sms_backend().find_sent(account=account, to=to, body=body, since=since)
        except DeliveryError:
            if now < until:
                return "unknown"  # ask again at the next sweep
            # Past its useful life and the provider still cannot be asked: whether it went or not,
            # sending it now would be too late, so it ends (and the admins hear of it).
            reason = "Gave up: the provider could not be asked before the message's moment passed."
            with organization_context(organization):
                mine = OutboundMessage.objects.filter(pk=message_id, status=OutboxStatus.SENDING, claimed_at=claimed_at)
                if mine.update(status=OutboxStatus.FAILED, status_reason=reason, settle_at=None, updated_at=now):
                    admins_alert(organization, message_id, reason)
            return "failed"
    with organization_context(organization):
        mine = OutboundMessage.objects.filter(pk=message_id, status=OutboxStatus.SENDING, claimed_at=claimed_at)
        if found_sid:
            mine.update(
                status=OutboxStatus.SENT,
                provider_sid=found_sid,
                provider_attempts=F("provider_attempts") + 1,
                sent_at=now,
                settle_at=None,
                status_reason="",
                updated_at=now,
            )
            return "sent"
        # The provider never got it: that try does not count towards max_attempts (an outage or a
        # crash must not use them up); it is sent again while it can still help.
        if now >= until:
            reason = f"Gave up: not sent before the message's moment passed ({attempts} tries, outcome unknown)."
            if mine.update(status=OutboxStatus.FAILED, status_reason=reason, settle_at=None, updated_at=now):
                admins_alert(organization, message_id, reason)
            return "failed"
        mine.update(status=OutboxStatus.PENDING, next_attempt_at=now, claimed_at=None, settle_at=None, updated_at=now)
        return "retry"
