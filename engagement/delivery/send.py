"""Sending: check one message (still wanted? consent? quiet hours? caps?), claim it with a
conditional UPDATE pending -> sending that must touch exactly one row, commit the claim *before*
the network call, wait for the organization's rate limiter, send through the channel's backend,
record the result. messages_send does the same for a chunk of ids, the sends on a thread pool.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time as time_module
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.html import escape, linebreaks

from engagement import etiquette, selectors, templating
from engagement.delivery.backends import DeliveryError, SmsAccount, sms_backend
from engagement.delivery.ratelimit import rate_reserve
from engagement.delivery.render import render_message
from engagement.models import (
    ChannelSettings,
    MessageChannel,
    OutboundMessage,
    OutboxStatus,
    Rule,
)
from engagement.services import consent_set, reminder_slot_matches
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    message_id: int
    claimed_at: datetime
    attempts: int
    provider_attempts: int
    max_attempts: int
    useful_until: datetime
    channel: str
    to: str
    subject: str
    body: str
    rate: int
    email_from: str
    sms_account: SmsAccount | None


def _defer(message: OutboundMessage, until: datetime, reason: str) -> None:
    OutboundMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(
        next_attempt_at=until, status_reason=reason[:200], updated_at=timezone.now()
    )


def _cancel(message: OutboundMessage, reason: str) -> None:
    OutboundMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(
        status=OutboxStatus.CANCELLED, status_reason=reason[:200], updated_at=timezone.now()
    )


HELD_NOT_CONFIGURED = "Held: the clinic's SMS account is incomplete (Outreach settings)."


def useful_until(message: OutboundMessage) -> datetime:
    """Until when trying again can still help: the message's own end (a reminder: the visit), else
    ENGAGEMENT_GIVE_UP_AFTER after it was due."""
    return message.expires_at or message.due_at + timedelta(seconds=float(settings.ENGAGEMENT_GIVE_UP_AFTER))


def _hold_not_configured(
    organization: Organization, message: OutboundMessage, now: datetime, batch: _Batch | None
) -> None:
    """An organization with a provider but no complete account: hold its SMS (pending, looked at
    again every ENGAGEMENT_HOLD_RECHECK) and tell its administrators once a day, instead of failing
    every message for good without a word."""
    if now >= useful_until(message):
        _cancel(message, "Held until too late: the clinic's SMS account was never completed.")
        return
    _defer(message, now + timedelta(seconds=float(settings.ENGAGEMENT_HOLD_RECHECK)), HELD_NOT_CONFIGURED)
    if batch is not None and batch.held_alerted:
        return
    if batch is not None:
        batch.held_alerted = True
    from healthcrm.models import Notification

    if Notification.objects.filter(kind="outreach.not_configured", created_at__gte=now - timedelta(days=1)).exists():
        return
    admins_notify(
        organization,
        kind="outreach.not_configured",
        message="Text messages are held: the SMS account in Outreach settings is incomplete.",
        url="/engagement/settings/",
    )


def _subject_problem(message: OutboundMessage, now: datetime) -> str:
    """Why a message is no longer wanted ('' when it still is)."""
    if message.expires_at and now >= message.expires_at:
        return "Too late: the moment it was for has passed."
    if (
        message.subject_type == "appointment"
        and message.rule is not None
        and message.rule.kind == "appointment_reminder"
    ):
        appointment = selectors.appointment_get(message.subject_id)
        if appointment is None or appointment.status not in selectors.REMINDABLE:
            return "The appointment is no longer booked."
        if not reminder_slot_matches(message.slot, appointment.starts_at):
            return "The appointment was rescheduled."
    if message.subject_type == selectors.WAITLIST_OFFER_SUBJECT:
        # Held back by quiet hours or the caps while someone else took the slot: not worth sending.
        offer = selectors.waitlist_offer_get(message.subject_id)
        if offer is None or offer.status != "offered" or offer.slot.status != "open":
            return "The slot offered was taken or is gone."
    if not message.patient.is_active:
        return "The patient record is inactive."
    return ""


_PATIENT_FIELDS = (
    "id",
    "organization_id",
    "is_active",
    "timezone",
    "contact_window_start",
    "contact_window_end",
    "preferred_language",
    "preferred_name",
    "given_name",
    "phone_mobile",
    "email",
)


def _pending_messages(ids: Iterable[int]) -> Any:
    fields = [f.attname for f in OutboundMessage._meta.concrete_fields]
    fields += [f"rule__{f.attname}" for f in Rule._meta.concrete_fields]
    fields += [f"patient__{name}" for name in _PATIENT_FIELDS]
    return (
        OutboundMessage.objects.select_related("patient", "rule")
        .only(*fields)
        .filter(pk__in=list(ids), status=OutboxStatus.PENDING)
    )


@dataclass
class _Batch:
    """What the messages of one batch share: read once (settings, templates, opt-outs)."""

    settings: ChannelSettings
    messages: dict[int, OutboundMessage]
    consents: dict[tuple[int, str], str]  # in force now: an expired consent is absent
    templates: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    held_alerted: bool = False

    @classmethod
    def load(cls, ids: list[int]) -> _Batch:
        messages = {m.pk: m for m in _pending_messages(ids)}
        consents = selectors.consents_for(list({m.patient_id for m in messages.values()}))
        return cls(selectors.channel_settings_get(), messages, consents)


def _prepare(
    organization: Organization, message_id: int, now: datetime, batch: _Batch | None = None
) -> Prepared | None:
    """Checks, then the claim and the rendered text, in one transaction (committed by the caller)."""
    if batch is None:
        message = _pending_messages([message_id]).first()
        settings_ = selectors.channel_settings_get() if message is not None else None
    else:
        message, settings_ = batch.messages.get(message_id), batch.settings
    if message is None or settings_ is None:
        return None  # sent, cancelled, or claimed by another worker already
    problem = _subject_problem(message, now)
    if problem:
        _cancel(message, problem)
        return None
    consents = batch.consents if batch is not None else selectors.consents_for([message.patient_id], now=now)
    refused = etiquette.consent_problem(message, consents)
    if refused:
        _cancel(message, refused)
        return None
    patient = message.patient
    if message.subject_type != "conversation":
        start, end = etiquette.sending_window(patient, settings_)
        allowed = etiquette.next_allowed(now, etiquette.patient_zone(patient, organization), start, end)
        if allowed > now:
            _defer(message, allowed, "Quiet hours: deferred to the patient's morning.")
            return None
    if not message.is_urgent:
        free_at = etiquette.cap_free_at(message, settings_, now)
        if free_at is not None:
            _defer(message, free_at, "Frequency cap: deferred.")
            return None
    to = patient.phone_mobile if message.channel == MessageChannel.SMS else patient.email
    if not to:
        _cancel(message, "No address for this channel.")
        return None
    sms_account = SmsAccount.of(organization, settings_) if message.channel == MessageChannel.SMS else None
    if sms_account is not None and sms_backend().needs_account and not sms_account.is_complete:
        _hold_not_configured(organization, message, now, batch)
        return None
    try:
        subject, body = render_message(
            message, organization, settings_, templates=batch.templates if batch is not None else None
        )
    except DeliveryError as exc:
        OutboundMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(
            status=OutboxStatus.FAILED, status_reason=str(exc)[:200], error_code=exc.code, updated_at=now
        )
        return None
    segments = templating.count_segments(body).segments if message.channel == MessageChannel.SMS else None
    # The claim: pending -> sending, exactly one row, or someone else has it (with the text sent).
    claimed = OutboundMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(
        status=OutboxStatus.SENDING,
        claimed_at=now,
        attempts=F("attempts") + 1,
        settle_at=None,
        updated_at=now,
        to_address=to,
        body=body,
        segments=segments,
    )
    if claimed != 1:
        return None
    return Prepared(
        message_id=message.pk,
        claimed_at=now,
        attempts=message.attempts + 1,
        provider_attempts=message.provider_attempts,
        max_attempts=settings_.max_attempts,
        useful_until=useful_until(message),
        channel=message.channel,
        to=to,
        subject=subject,
        body=body,
        rate=settings_.send_rate_per_second,
        email_from=settings_.email_from or settings.DEFAULT_FROM_EMAIL,
        sms_account=sms_account,
    )


def _deliver(prepared: Prepared) -> tuple[str, int | None]:
    """Send through the channel's backend: (provider id, segments). Raises DeliveryError."""
    if prepared.channel == MessageChannel.EMAIL:
        email = EmailMultiAlternatives(
            prepared.subject or "Message from your clinic", prepared.body, prepared.email_from, [prepared.to]
        )
        email.attach_alternative(linebreaks(escape(prepared.body)), "text/html")
        try:
            email.send()
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("The mail server refused the address.", permanent=True, code="smtp_refused") from None
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"Mail server error: {type(exc).__name__}.", permanent=False, code="smtp") from None
        except OSError as exc:  # no answer: connection refused, reset, timed out
            raise DeliveryError(
                f"Mail server unreachable: {type(exc).__name__}.", permanent=False, code="smtp_network", reached=False
            ) from None
        return "", None
    if prepared.sms_account is None:
        raise DeliveryError("No SMS account for this message.", permanent=True, code="not_configured")
    sent = sms_backend().send(
        account=prepared.sms_account, to=prepared.to, body=prepared.body, message_id=prepared.message_id
    )
    return sent.provider_id, sent.segments


def admins_notify(organization: Organization, *, kind: str, message: str, url: str) -> None:
    """Notify the organization's active administrators (the text holds ids only, no PHI)."""
    from healthcrm.models import Membership
    from healthcrm.services import notify

    admins = Membership.objects.filter(organization=organization, role="admin", is_active=True).values_list(
        "user_id", flat=True
    )
    notify(recipients=list(admins), kind=kind, message=message[:255], url=url)


def admins_alert(organization: Organization, message_id: int, reason: str) -> None:
    """Tell the organization's administrators a message failed for good (ids only, no PHI)."""
    admins_notify(
        organization,
        kind="outreach.failed",
        message=f"Message #{message_id} could not be sent: {reason}",
        url="/engagement/outbox/?status=failed",
    )
    log.warning("outbox message %s failed: %s", message_id, reason)


def _record_failure(organization: Organization, prepared: Prepared, exc: DeliveryError, now: datetime) -> None:
    mine = OutboundMessage.objects.filter(
        pk=prepared.message_id, status=OutboxStatus.SENDING, claimed_at=prepared.claimed_at
    )
    if exc.unknown:
        # Leave it claimed: the sweep asks the provider before anything is sent again, from
        # ENGAGEMENT_SETTLE_UNKNOWN_AFTER on (the send is over: no need to wait for the stale time).
        mine.update(
            status_reason="Outcome unknown (timeout): settles by asking the provider.",
            error_code=exc.code,
            settle_at=now + timedelta(seconds=float(settings.ENGAGEMENT_SETTLE_UNKNOWN_AFTER)),
        )
        return
    provider_attempts = prepared.provider_attempts + (1 if exc.reached else 0)
    retry_at = now + etiquette.backoff(
        prepared.attempts,
        base=float(settings.ENGAGEMENT_RETRY_BASE),
        cap=float(settings.ENGAGEMENT_RETRY_CAP),
    )
    if exc.permanent:
        reason = str(exc)
    elif provider_attempts >= prepared.max_attempts:
        reason = f"Gave up after {provider_attempts} attempts the provider answered: {exc}"
    elif retry_at >= prepared.useful_until:
        reason = f"Gave up: not sent before the message's moment passed ({prepared.attempts} tries): {exc}"
    else:
        mine.update(
            status=OutboxStatus.PENDING,
            next_attempt_at=retry_at,
            provider_attempts=provider_attempts,
            status_reason=str(exc)[:200],
            error_code=exc.code,
            updated_at=now,
        )
        return
    if mine.update(
        status=OutboxStatus.FAILED,
        provider_attempts=provider_attempts,
        status_reason=reason[:200],
        error_code=exc.code,
        updated_at=now,
    ):
        if exc.opted_out:
            message = OutboundMessage.objects.select_related("patient").get(pk=prepared.message_id)
            consent_set(patient=message.patient, channel=MessageChannel.SMS, status="opted_out", source="sms_keyword")
        elif not exc.permanent:
            admins_alert(organization, prepared.message_id, reason)


def _transmit(organization_id: int, prepared: Prepared) -> tuple[str, Any]:
    """The network part of a send (no database): wait for the rate limiter, then deliver.
    Returns ("sent", (sid, segments)), ("failed", DeliveryError) or ("rate_limited", -seconds)."""
    wait = rate_reserve(organization_id, prepared.rate)
    if wait < 0:
        return "rate_limited", wait
    if wait > 0:
        time_module.sleep(wait)
    try:
        return "sent", _deliver(prepared)
    except DeliveryError as exc:
        return "failed", exc


def _settle(organization: Organization, prepared: Prepared, outcome: tuple[str, Any], now: datetime) -> str:
    """Record what _transmit found (inside organization_context); only touches our own claim."""
    kind, value = outcome
    message_id = prepared.message_id
    if kind == "rate_limited":
        # The limiter is booked further ahead than we should hold a worker: put it back.
        OutboundMessage.objects.filter(
            pk=message_id, status=OutboxStatus.SENDING, claimed_at=prepared.claimed_at
        ).update(
            status=OutboxStatus.PENDING,
            attempts=F("attempts") - 1,
            next_attempt_at=now + timedelta(seconds=-value),
            claimed_at=None,
            updated_at=now,
        )
        return "rate_limited"
    if kind == "failed":
        _record_failure(organization, prepared, value, timezone.now())
        return "failed"
    sid, segments = value
    changes: dict[str, Any] = {
        "status": OutboxStatus.SENT,
        "provider_attempts": prepared.provider_attempts + 1,
        "provider_sid": sid,
        "sent_at": timezone.now(),
        "status_reason": "",
        "error_code": "",
        "updated_at": timezone.now(),
    }
    if segments:
        changes["segments"] = segments
    OutboundMessage.objects.filter(pk=message_id, status=OutboxStatus.SENDING, claimed_at=prepared.claimed_at).update(
        **changes
    )
    return "sent"


def message_send(organization: Organization, message_id: int) -> str:
    """Send one outbox message if it is still due; returns what happened (for logs and tests)."""
    now = timezone.now()
    with organization_context(organization):
        prepared = _prepare(organization, message_id, now)
    if prepared is None:
        return "skipped"
    outcome = _transmit(organization.pk, prepared)
    with organization_context(organization):
        return _settle(organization, prepared, outcome, now)


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _send_pool() -> ThreadPoolExecutor:
    """The process's sender threads (no database: they only wait for the limiter and the provider)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            threads = int(settings.ENGAGEMENT_SEND_THREADS)
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="outbox-send")
        return _pool


def messages_send(organization: Organization, message_ids: list[int]) -> dict[int, str]:
    """Send a batch of one organization's messages; returns what happened to each.

    Same guarantees as message_send, fewer round trips: the checks and the claims (each message
    still claimed by its own conditional UPDATE) run in one transaction committed *before* any
    network call; the sends run on the sender threads; the results are recorded in a second
    transaction. A message whose preparation or recording fails is isolated by a savepoint: it
    stays pending (the scan finds it again) or `sending` (the stale sweep settles it).
    """
    now = timezone.now()
    results = dict.fromkeys(message_ids, "skipped")
    prepared: list[Prepared] = []
    with organization_context(organization):
        batch = _Batch.load(message_ids)
        for message_id in message_ids:
            try:
                with transaction.atomic():
                    one = _prepare(organization, message_id, now, batch)
            except Exception:
                log.exception("outbox message %s: could not prepare", message_id)
                continue
            if one is not None:
                prepared.append(one)
    if not prepared:
        return results
    pool = _send_pool()
    futures: list[Future[tuple[str, Any]]] = [pool.submit(_transmit, organization.pk, one) for one in prepared]
    outcomes: list[tuple[Prepared, tuple[str, Any]]] = []
    for one, future in zip(prepared, futures, strict=True):
        try:
            outcomes.append((one, future.result()))
        except Exception:
            # Unknown whether it reached the provider: left `sending` for the stale sweep.
            log.exception("outbox message %s: send raised", one.message_id)
            results[one.message_id] = "unknown"
    with organization_context(organization):
        for one, outcome in outcomes:
            try:
                with transaction.atomic():
                    results[one.message_id] = _settle(organization, one, outcome, now)
            except Exception:
                log.exception("outbox message %s: could not record the result", one.message_id)
                results[one.message_id] = "unknown"
    return results
