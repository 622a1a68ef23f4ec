"""Two-way SMS: staff replies from the conversation page, and inbound messages with their keywords
(STOP, START, HELP, C to confirm, R to reschedule) and survey scores (a bare 0-10)."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from engagement import etiquette, selectors
from engagement.models import (
    ConsentSource,
    ConsentStatus,
    ConversationMessage,
    Direction,
    MessageChannel,
    OutboundMessage,
)
from engagement.services.consent import consent_set
from engagement.services.outbox import user_or_none
from engagement.services.surveys import survey_reply_receive, survey_score_of
from engagement.tasks import outbox_send_task
from healthcrm.tenancy import require_current_organization
from patients.care.services import task_assign
from patients.models import Patient
from patients.services import appointment_confirm


@transaction.atomic
def staff_reply(*, patient: Any, body: str, actor: Any) -> OutboundMessage:
    """A staff member's SMS to a patient from the conversation: sent now (urgent: no caps)."""
    body = body.strip()
    if not body:
        raise ValidationError({"body": "Write a message."})
    if not patient.phone_mobile:
        raise ValidationError({"body": "This patient has no mobile number."})
    if selectors.is_opted_out(patient_id=patient.pk, channel=MessageChannel.SMS):
        raise ValidationError({"body": "This patient opted out of text messages."})
    now = timezone.now()
    message = OutboundMessage(
        patient=patient,
        subject_type="conversation",
        channel=MessageChannel.SMS,
        slot=secrets.token_hex(8),
        is_urgent=True,
        due_at=now,
        next_attempt_at=now,
        body=body,
        sent_by=user_or_none(actor),
    )
    message.full_clean()
    message.save()
    ConversationMessage.objects.create(
        patient=patient,
        direction=Direction.OUTBOUND,
        phone=patient.phone_mobile,
        body=body,
        outbound=message,
        author=user_or_none(actor),
        read_at=now,
    )
    organization_id, message_id = message.organization_id, message.pk
    transaction.on_commit(lambda: outbox_send_task.delay(organization_id, message_id))
    return message


def conversation_mark_read(*, patient_id: int) -> int:
    return ConversationMessage.objects.filter(
        patient_id=patient_id, direction=Direction.INBOUND, read_at__isnull=True
    ).update(read_at=timezone.now())


def _stop_reply(clinic: str) -> str:
    return f"{clinic}: you are unsubscribed and will receive no more texts. Reply START to resubscribe."


@transaction.atomic
def inbound_receive(*, from_number: str, body: str, sid: str) -> str:
    """Handle one inbound SMS: store it, act on its keyword, and return the reply text ('' for none).

    Idempotent: a replayed webhook (same MessageSid) stores and changes nothing.
    """
    organization = require_current_organization()
    if sid and ConversationMessage.objects.filter(provider_sid=sid).exists():
        return ""
    patients = list(Patient.objects.blind_match(phone_mobile=from_number)) if from_number else []
    keyword = etiquette.keyword_of(body)
    # The patient whose number it is (most recently created when a family shares a phone).
    patient = patients[0] if patients else None
    received = ConversationMessage.objects.create(
        patient=patient,
        direction=Direction.INBOUND,
        phone=from_number,
        body=body[:1600],
        provider_sid=sid,
        keyword=keyword,
        # Keywords are handled automatically: they do not wait for staff.
        read_at=timezone.now() if keyword in ("STOP", "START", "HELP") else None,
    )
    settings_ = selectors.channel_settings_get()
    clinic = organization.name
    if keyword == "STOP":
        for each in patients:  # every patient at this number
            consent_set(
                patient=each,
                kind=MessageChannel.SMS,
                status=ConsentStatus.OPTED_OUT,
                source=ConsentSource.SMS_KEYWORD,
                # The keyword is the evidence, filed under the patient the message was stored for.
                evidence_message=received if each.pk == received.patient_id else None,
            )
        return _stop_reply(clinic)
    if keyword == "START":
        for each in patients:
            consent_set(
                patient=each,
                kind=MessageChannel.SMS,
                status=ConsentStatus.OPTED_IN,
                source=ConsentSource.SMS_KEYWORD,
                # The keyword is the evidence, filed under the patient the message was stored for.
                evidence_message=received if each.pk == received.patient_id else None,
            )
        return f"{clinic}: you are subscribed to texts again. Reply STOP to unsubscribe, HELP for help."
    if keyword == "HELP":
        phone = settings_.contact_phone or organization.phone
        contact = f" Call us at {phone}." if phone else ""
        return f"{clinic}: appointment and care messages.{contact} Reply STOP to unsubscribe."
    if patient is None:
        return ""
    score = survey_score_of(body) if not keyword else None
    if score is not None:
        response = survey_reply_receive(patients=patients, score=score, now=timezone.now())
        if response is None:
            return ""  # no open survey: an ordinary text, left unread for staff
        # Handled automatically, on the thread of the patient the survey was for.
        ConversationMessage.objects.filter(pk=received.pk).update(
            patient_id=response.patient_id, keyword="NPS", read_at=timezone.now()
        )
        return f"{clinic}: thank you for your feedback."
    if keyword == "CONFIRM":
        appointment = selectors.next_appointment_for(patient.pk)
        if appointment is None:
            return f"{clinic}: we found no upcoming appointment to confirm. Please call us."
        appointment_confirm(appointment=appointment, via="sms_reply")
        return f"{clinic}: thank you, your appointment is confirmed."
    if keyword == "RESCHEDULE":
        reschedule_task_create(patient=patient)
        return f"{clinic}: thank you, our front desk will contact you to find a new time."
    return ""


def reschedule_task_create(*, patient: Any) -> Any:
    """A front-desk task: the patient asked (by SMS) to reschedule. No PHI in the title."""
    return task_assign(
        patient=patient,
        title="Patient asked by text message to reschedule their appointment",
        due_date=timezone.localdate(),
        assignee_role="frontdesk",
        priority="routine",
        kind="reschedule",
        # The visit the reminder was about; none (booking form) when nothing is coming up.
        appointment=selectors.next_appointment_for(patient.pk, statuses=("booked", "confirmed")),
    )
