"""Writes of the patient-requested access report: the request (and its link, through the outbox),
the one-time code (sent at once, never stored: only its keyed hash), its check, and the patient's
view of the report (an access-log row of its own).

Limits (per request): a code lives CODE_VALID_FOR; MAX_CODE_ATTEMPTS wrong tries void it; at most
MAX_CODES_PER_HOUR codes an hour and one per CODE_RESEND_AFTER; MAX_FAILED_ATTEMPTS wrong tries in
all lock the request (staff send a new link). A wrong code writes only the two counters, by a
conditional UPDATE (no change-log entry, no race between two tries of one code).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F

from compliance.models import AccessAction, AccessLog
from engagement import selectors
from engagement.access_reports import tokens
from engagement.delivery.backends import DeliveryError, SmsAccount, sms_backend
from engagement.models import AccessReportRequest, MessageChannel
from engagement.services.outbox import outbox_enqueue, user_or_none
from engagement.services.staff_messages import staff_message_problem
from engagement.tasks import outbox_send_task
from healthcrm.tenancy import require_current_organization

SUBJECT_TYPE = "access_report"
CODE_DIGITS = 6
CODE_VALID_FOR = timedelta(minutes=10)
CODE_RESEND_AFTER = timedelta(seconds=60)
MAX_CODES_PER_HOUR = 3
MAX_CODE_ATTEMPTS = 5
MAX_FAILED_ATTEMPTS = 10
# After the code, the report opens in that browser for this long.
VERIFIED_FOR = timedelta(minutes=30)
PATIENT_LABEL = "patient (verified access-report link)"


def channels_on_file(patient: Any) -> list[str]:
    """The channels the patient can be reached on: a mobile number, an email address."""
    found = []
    if patient.phone_mobile:
        found.append(MessageChannel.SMS.value)
    if patient.email:
        found.append(MessageChannel.EMAIL.value)
    return found


def default_channel(patient: Any) -> str | None:
    """The first channel the patient can be messaged on now (their preferred one first)."""
    order = [patient.preferred_channel, MessageChannel.SMS.value, MessageChannel.EMAIL.value]
    for channel in dict.fromkeys(c for c in order if c in MessageChannel.values):
        if not staff_message_problem(patient=patient, channel=channel):
            return channel
    return None


@transaction.atomic
def access_report_request_create(
    *, patient: Any, now: datetime, channel: str | None = None, actor: Any = None, source: str = "staff"
) -> AccessReportRequest:
    """Record the request and queue the link (SMS or email to the contact on file: urgent, so the
    caps never hold it; quiet hours and consent still apply). Raises ValidationError when the
    patient cannot be reached on that channel (the staff report can then be printed for them)."""
    channel = channel or default_channel(patient)
    if channel is None:
        raise ValidationError({"channel": "This patient has no mobile number or email they can be reached on."})
    problem = staff_message_problem(patient=patient, channel=channel)
    if problem:
        raise ValidationError({"channel": problem})
    user = user_or_none(actor)
    request = AccessReportRequest(
        patient=patient,
        source=source,
        channel=channel,
        requested_by=user,
        requested_by_label=user.get_username()[:150] if user else "",
        link_expires_at=now + tokens.LINK_VALID_FOR,
    )
    request.full_clean()
    request.save()
    link = tokens.link_for(organization_id=request.organization_id, request_id=request.pk, now=now)
    body = (
        f"You asked who viewed your health record. Open {link} to see the report "
        f"(the link works for {tokens.LINK_VALID_FOR.days} days and asks for a code we send you)."
    )
    message = outbox_enqueue(
        patient=patient,
        subject_type=SUBJECT_TYPE,
        subject_id=request.pk,
        slot=f"access-report:{request.pk}",
        due_at=now,
        channel=channel,
        urgent=True,
        expires_at=request.link_expires_at,
        sent_by=user,
        body=body,
    )
    assert message is not None  # the channel was given
    AccessReportRequest.objects.filter(pk=request.pk).update(message=message)
    request.message = message
    if message.next_attempt_at <= now:
        organization_id, message_id = message.organization_id, message.pk
        transaction.on_commit(lambda: outbox_send_task.delay(organization_id, message_id))
    return request


def request_for_token(claims: tokens.ReportClaims) -> AccessReportRequest | None:
    """The request a valid token names (in the current organization), None when gone or not yet
    sent (a link still in the outbox cannot have been received)."""
    return (
        AccessReportRequest.objects.select_related("patient")
        .filter(pk=claims.request_id, organization_id=claims.organization_id, patient__is_active=True)
        .first()
    )


def _digest(request: AccessReportRequest, code: str) -> str:
    key = f"{settings.SECRET_KEY}\x1daccess-report-code".encode()
    return hmac.new(key, f"{request.organization_id}:{request.pk}:{code}".encode(), hashlib.sha256).hexdigest()


def is_locked(request: AccessReportRequest) -> bool:
    return request.failed_attempts >= MAX_FAILED_ATTEMPTS


def link_open(request: AccessReportRequest, now: datetime) -> bool:
    return now < request.link_expires_at and not is_locked(request)


def code_active(request: AccessReportRequest, now: datetime) -> bool:
    return bool(
        request.code_hash
        and request.code_expires_at is not None
        and now < request.code_expires_at
        and request.code_attempts < MAX_CODE_ATTEMPTS
    )


def _send_code(request: AccessReportRequest, channel: str, code: str) -> None:
    """Send the code at once (it is never stored, so it cannot wait in the outbox). Raises DeliveryError."""
    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    text = (
        f"{organization.name}: your access report code is {code}. It works for {CODE_VALID_FOR.seconds // 60} minutes."
    )
    patient = request.patient
    if channel == MessageChannel.SMS:
        sms_backend().send(
            account=SmsAccount.of(organization, settings_), to=patient.phone_mobile, body=text, message_id=request.pk
        )
        return
    try:
        send_mail(
            f"Your access report code from {organization.name}",
            text,
            settings_.email_from or settings.DEFAULT_FROM_EMAIL,
            [patient.email],
        )
    except OSError:
        raise DeliveryError("The mail server did not take the message.", permanent=False, code="smtp") from None


def code_send(*, request: AccessReportRequest, channel: str, now: datetime) -> None:
    """Make a new code (voiding the last), keep its hash and send it to the contact on file.
    Raises ValidationError (polite, nothing changed) for a locked or expired link, a channel with
    no contact on file, or a rate limit."""
    if not link_open(request, now):
        raise ValidationError("This link can no longer be used.")
    if channel not in channels_on_file(request.patient):
        raise ValidationError("Choose the mobile phone or email we have on file.")
    with transaction.atomic():
        # Lock the request: two clicks send one code, and the hourly limit counts both.
        locked = AccessReportRequest.objects.select_for_update().get(pk=request.pk)
        last = locked.last_code_sent_at
        if last is not None and now - last < CODE_RESEND_AFTER:
            raise ValidationError("We sent a code a moment ago: wait a minute before asking for another.")
        window_start = now - timedelta(hours=1)
        sent_this_hour = locked.codes_sent if last is not None and last > window_start else 0
        if sent_this_hour >= MAX_CODES_PER_HOUR:
            raise ValidationError("Too many codes were asked for: try again in an hour.")
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        locked.code_hash = _digest(locked, code)
        locked.code_channel = channel
        locked.code_expires_at = now + CODE_VALID_FOR
        locked.code_attempts = 0
        locked.codes_sent = sent_this_hour + 1
        locked.last_code_sent_at = now
        locked.save(
            update_fields=[
                "code_hash",
                "code_channel",
                "code_expires_at",
                "code_attempts",
                "codes_sent",
                "last_code_sent_at",
                "updated_at",
            ]
        )
        try:
            _send_code(locked, channel, code)
        except DeliveryError:
            transaction.set_rollback(True)
            raise ValidationError("We could not send the code just now: try again in a few minutes.") from None
    request.refresh_from_db()


@dataclass(frozen=True)
class CodeCheck:
    ok: bool
    message: str = ""


def code_verify(*, request: AccessReportRequest, code: str, now: datetime) -> CodeCheck:
    """Check a code in constant time. Right: the request is verified (audited). Wrong, expired or
    absent: only the attempt counters move (a conditional UPDATE), and the answer says what to do."""
    if not link_open(request, now):
        return CodeCheck(False, "This link can no longer be used.")
    candidate = "".join(ch for ch in str(code) if ch.isdigit())[: CODE_DIGITS + 1]
    with transaction.atomic():
        # Count the try first, only while the code can still be tried: concurrent guesses each use one.
        counted = AccessReportRequest.objects.filter(
            pk=request.pk,
            code_attempts__lt=MAX_CODE_ATTEMPTS,
            failed_attempts__lt=MAX_FAILED_ATTEMPTS,
        ).update(code_attempts=F("code_attempts") + 1)
        request.refresh_from_db()
        active = bool(request.code_hash) and request.code_expires_at is not None and now < request.code_expires_at
        right = (
            counted == 1
            and active
            and len(candidate) == CODE_DIGITS
            and hmac.compare_digest(request.code_hash, _digest(request, candidate))
        )
        if right:
            request.code_hash = ""
            request.code_expires_at = None
            request.code_attempts = 0
            request.verified_at = now
            request.save(update_fields=["code_hash", "code_expires_at", "code_attempts", "verified_at", "updated_at"])
            return CodeCheck(True)
        if counted:
            AccessReportRequest.objects.filter(pk=request.pk).update(failed_attempts=F("failed_attempts") + 1)
            request.refresh_from_db()
    if is_locked(request):
        return CodeCheck(False, "Too many wrong codes: this link is locked. Ask the clinic for a new one.")
    if not active:
        return CodeCheck(False, "This code has expired or was replaced: ask for a new one.")
    left = MAX_CODE_ATTEMPTS - request.code_attempts
    if left <= 0:
        return CodeCheck(False, "Too many wrong tries for this code: ask for a new one.")
    return CodeCheck(False, f"That code is not right. {left} tr{'y' if left == 1 else 'ies'} left for this code.")


@transaction.atomic
def patient_report_viewed(*, request: AccessReportRequest, now: datetime, ip_address: str | None) -> None:
    """The patient opened their report: an access-log row naming the patient (so it is in the
    report too) and the time on the request (its change-log entry)."""
    patient = request.patient
    AccessLog.objects.create(
        actor=None,
        actor_label=PATIENT_LABEL,
        action=AccessAction.VIEW,
        view_name="engagement:access_report_patient",
        object_type=patient._meta.label_lower,
        object_ids=[str(patient.pk)],
        records=[f"{patient._meta.label_lower}:{patient.pk}"],
        ip_address=ip_address,
    )
    request.last_viewed_at = now
    request.save(update_fields=["last_viewed_at", "updated_at"])


PATIENT_REQUESTS_PER_DAY = 3


def patient_request_submit(*, date_of_birth: Any, contact: str, now: datetime) -> bool:
    """The public request form: when exactly one active patient of the current organization has
    this birth date and this mobile number or email (blind indexes: nothing decrypted), send the
    link to that contact (the one on file). Returns whether a link was queued; the page says the
    same either way, so the form cannot tell whether someone is a patient. At most
    PATIENT_REQUESTS_PER_DAY such requests per patient a day (no text-bombing through the form)."""
    from patients.models import Patient

    contact = contact.strip()
    by_email = "@" in contact
    try:
        lookup = {"email": contact} if by_email else {"phone_mobile": contact}
        matches = list(Patient.objects.blind_match(date_of_birth=date_of_birth, **lookup).filter(is_active=True)[:2])
    except (ValueError, ValidationError):
        return False  # a contact that does not normalize matches no one
    if len(matches) != 1:
        return False
    patient = matches[0]
    recent = AccessReportRequest.objects.filter(
        patient=patient, source="patient", created_at__gte=now - timedelta(days=1)
    ).count()
    if recent >= PATIENT_REQUESTS_PER_DAY:
        return False
    try:
        with transaction.atomic():
            access_report_request_create(
                patient=patient, channel="email" if by_email else "sms", source="patient", now=now
            )
    except ValidationError:
        return False  # opted out of that channel, or the channel is turned off
    return True
