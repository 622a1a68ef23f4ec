"""Twilio as engagement's SMS backend (ENGAGEMENT_SMS_BACKEND = "integrations.twilio.backend.TwilioBackend"):
sends through client.py with the organization's status-callback URL, settles unknown outcomes by
asking Twilio, and translates Twilio's error codes and status names into engagement's vocabulary."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.urls import reverse

from engagement.delivery import DeliveryError, SmsAccount, SmsBackend, SmsSent
from engagement.models import OutboxStatus
from integrations.twilio import client

# Twilio's message statuses (https://www.twilio.com/docs/messaging/api/message-resource) in
# engagement's delivery vocabulary; others (e.g. "scheduled", "canceled") change nothing.
STATUSES = {
    "queued": OutboxStatus.SENT,
    "accepted": OutboxStatus.SENT,
    "sending": OutboxStatus.SENT,
    "sent": OutboxStatus.SENT,
    "delivered": OutboxStatus.DELIVERED,
    "read": OutboxStatus.DELIVERED,
    "undelivered": OutboxStatus.FAILED,
    "failed": OutboxStatus.FAILED,
}


def delivery_status(twilio_status: str) -> str:
    """Engagement's status for a Twilio status name ('' when it changes nothing)."""
    return STATUSES.get(twilio_status.lower(), "")


def status_callback_url(organization_slug: str) -> str:
    """Where Twilio reports delivery statuses for this organization ('' without PUBLIC_BASE_URL:
    Twilio then reports nothing, and the message stays `sent`)."""
    base = settings.PUBLIC_BASE_URL
    if not base:
        return ""
    return base.rstrip("/") + reverse("twilio:status", kwargs={"org_slug": organization_slug})


def _error(exc: client.SmsError) -> DeliveryError:
    return DeliveryError(
        str(exc),
        permanent=exc.permanent,
        code=exc.code,
        unknown=exc.code == "network",
        opted_out=exc.code == str(client.OPTED_OUT_CODE),
        reached=exc.code not in ("network", "client"),
    )


class TwilioBackend(SmsBackend):
    needs_account = True

    def send(self, *, account: SmsAccount, to: str, body: str, message_id: int) -> SmsSent:
        try:
            sent = client.send_sms(
                account_sid=account.account_sid,
                auth_token=account.auth_token,
                to=to,
                body=body,
                from_number=account.from_number,
                messaging_service_sid=account.messaging_service_sid,
                status_callback=status_callback_url(account.organization_slug),
            )
        except client.SmsError as exc:
            raise _error(exc) from None
        return SmsSent(provider_id=sent.sid, segments=sent.segments)

    def find_sent(self, *, account: SmsAccount, to: str, body: str, since: datetime) -> str:
        try:
            recent = client.recent_messages(
                account_sid=account.account_sid, auth_token=account.auth_token, to=to, since=since
            )
        except client.SmsError as exc:
            raise _error(exc) from None
        match = [m for m in recent if m.body == body and (m.date_created is None or m.date_created >= since)]
        return match[0].sid if match else ""
