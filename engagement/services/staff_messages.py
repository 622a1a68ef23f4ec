"""One-off messages from staff to a patient, sent from the patient record's Messages tab.

An SMS or email with the staff member's own text goes through the outbox like every message: the
patient's consent decides whether it may go at all, quiet hours (the patient's contact window and
zone) when, and the frequency caps how often (a one-off is not urgent); the outbox key with the
form's one-time `key` as its slot makes a repeated submission (a double click, a resent form) one
message.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from engagement import selectors
from engagement.models import MessageChannel, OutboundMessage
from engagement.services.outbox import outbox_enqueue
from engagement.tasks import outbox_send_task

STAFF_MESSAGE = "staff_message"
# A text of up to 1,000 characters is at most 7 segments (GSM-7) once the clinic's name is put before it.
SMS_MAX_LENGTH = 1000
EMAIL_MAX_LENGTH = 5000
# Held back by quiet hours or the caps for longer than this, it is no longer worth sending.
STAFF_MESSAGE_EXPIRY = timedelta(days=3)
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,43}$")

_NO_ADDRESS = {
    MessageChannel.SMS: "This patient has no mobile number.",
    MessageChannel.EMAIL: "This patient has no email address.",
}
_OPTED_OUT = {
    MessageChannel.SMS: "This patient opted out of text messages.",
    MessageChannel.EMAIL: "This patient opted out of email.",
}
_TURNED_OFF = {
    MessageChannel.SMS: "Text messages are turned off in the outreach settings.",
    MessageChannel.EMAIL: "Email is turned off in the outreach settings.",
}


def staff_message_problem(*, patient: Any, channel: str) -> str:
    """Why this patient cannot be messaged on this channel now ('' when they can)."""
    if channel not in MessageChannel.values:
        return "Choose text message or email."
    if not patient.is_active:
        return "This patient record is inactive."
    if not (patient.phone_mobile if channel == MessageChannel.SMS else patient.email):
        return _NO_ADDRESS[MessageChannel(channel)]
    settings_ = selectors.channel_settings_get()
    if not (settings_.sms_enabled if channel == MessageChannel.SMS else settings_.email_enabled):
        return _TURNED_OFF[MessageChannel(channel)]
    if selectors.is_opted_out(patient_id=patient.pk, channel=channel):
        return _OPTED_OUT[MessageChannel(channel)]
    return ""


@transaction.atomic
def staff_message_send(*, patient: Any, channel: str, body: str, key: str, actor: Any) -> OutboundMessage:
    """Queue a staff member's one-off SMS or email to a patient; sent at once unless quiet hours
    (or, at send time, the caps) defer it. Idempotent per `key`: the same key returns the message
    already queued. Raises ValidationError (nothing queued)."""
    body = body.strip()
    if not KEY_PATTERN.match(key or ""):
        raise ValidationError("This form has expired: open the Messages tab again.")
    if not body:
        raise ValidationError({"body": "Write a message."})
    limit = SMS_MAX_LENGTH if channel == MessageChannel.SMS else EMAIL_MAX_LENGTH
    if len(body) > limit:
        raise ValidationError({"body": f"Keep the message to {limit:,} characters (it has {len(body):,})."})
    problem = staff_message_problem(patient=patient, channel=channel)
    if problem:
        raise ValidationError({"channel": problem})
    now = timezone.now()
    message = outbox_enqueue(
        patient=patient,
        subject_type=STAFF_MESSAGE,
        slot=f"staff:{key}",
        due_at=now,
        channel=channel,
        urgent=False,
        expires_at=now + STAFF_MESSAGE_EXPIRY,
        sent_by=actor,
        body=body,
    )
    assert message is not None  # the channel was given: outbox_enqueue only returns None without one
    if message.next_attempt_at <= now:
        organization_id, message_id = message.organization_id, message.pk
        transaction.on_commit(lambda: outbox_send_task.delay(organization_id, message_id))
    return message
