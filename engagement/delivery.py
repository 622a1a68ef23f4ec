"""The delivery engine: scan what is due, claim one message, send it, record what happened.

    beat ── dispatch_due() ── per organization, a bounded index scan of pending rows whose
                              next_attempt_at has come; enqueues their ids (and pushes
                              next_attempt_at a little ahead, so the next scan skips them)
    worker ─ message_send() ─ checks (still wanted? consent? quiet hours? caps?), then claims the
                              row with a conditional UPDATE pending -> sending that must touch
                              exactly one row, and commits the claim *before* the network call;
                              waits for the organization's rate limiter; sends; records the result.
    worker ─ messages_send() ─ the same for a chunk of ids (ENGAGEMENT_SEND_BATCH > 1): one
                              transaction of checks and per-message claims, committed; the sends
                              on a pool of sender threads; one transaction recording the results.

The database is the schedule: a transient failure puts the row back to pending with
next_attempt_at = now + backoff (with jitter); no Celery countdowns or ETAs. A worker killed
between its claim and its result leaves the row in `sending`: after ENGAGEMENT_SENDING_STALE_AFTER
the scan hands it to message_reconcile(), which asks the provider whether the message got there
(recent messages to that number with that text) before sending it again, so a message reaches the
provider once even across crashes and timeouts whose outcome is unknown.
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
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import F, Min
from django.utils import dateformat, timezone, translation
from django.utils.html import escape, linebreaks

from engagement import etiquette, links, selectors, services, templating
from engagement.models import ChannelSettings, MessageChannel, OutboundMessage, OutboxStatus
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.twilio import client as twilio

log = logging.getLogger(__name__)


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def sms_backend() -> str:
    """`twilio` (the real client, to TWILIO_API_URL) or `outbox_sink` (marks sent with a fake sid)."""
    return _setting("ENGAGEMENT_SMS_BACKEND", "twilio" if _setting("TWILIO_ENABLED", False) else "outbox_sink")


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool, code: str = "", unknown: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        # The request may have reached the provider (a timeout): settle by asking it, not by resending.
        self.unknown = unknown


# -- Rate limit: a GCRA in Redis, shared by every worker process and machine ----------------------

_RESERVE = """
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > max_wait then return -wait end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.floor((tat + interval - now) / 1000) + 1000)
return wait
"""


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def rate_reserve(organization_id: int, per_second: int) -> float:
    """Reserve the organization's next send slot: seconds to wait before sending (>= 0), or a
    negative number of seconds when the next free slot is further than ENGAGEMENT_RATE_MAX_WAIT.

    Slots are 1/rate apart (plus 2% margin for network jitter), so no second ever holds more than
    `per_second` sends, across every worker.
    """
    interval_us = int(1_000_000 * 1.02 / max(per_second, 1))
    max_wait_us = int(1_000_000 * float(_setting("ENGAGEMENT_RATE_MAX_WAIT", 2.0)))
    script = _redis().register_script(_RESERVE)
    wait_us = int(script(keys=[f"engagement:rate:{organization_id}"], args=[interval_us, max_wait_us]))
    return wait_us / 1_000_000


# -- The scan ---------------------------------------------------------------------------------------

_DUE_SQL = """
WITH due AS MATERIALIZED (
    SELECT id FROM engagement_outboundmessage
    WHERE organization_id = %(org)s AND status = 'pending' AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE engagement_outboundmessage AS m SET next_attempt_at = %(requeue)s, enqueued_at = %(now)s
FROM due WHERE m.id = due.id
RETURNING m.id
"""

_STALE_SQL = """
WITH stale AS MATERIALIZED (
    SELECT id FROM engagement_outboundmessage
    WHERE organization_id = %(org)s AND status = 'sending' AND claimed_at <= %(stale_before)s
      AND (enqueued_at IS NULL OR enqueued_at <= %(requeue_before)s)
    ORDER BY claimed_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE engagement_outboundmessage AS m SET enqueued_at = %(now)s
FROM stale WHERE m.id = stale.id
RETURNING m.id
"""


def due_ids(organization: Organization, *, now: datetime, limit: int) -> tuple[list[int], list[int]]:
    """Take up to `limit` due message ids (and stale claims) of the current organization.

    Taking a row pushes its next_attempt_at ENGAGEMENT_REQUEUE_AFTER ahead: the next scan skips it
    while its task waits in the queue, and finds it again if the task was lost.
    """
    requeue = float(_setting("ENGAGEMENT_REQUEUE_AFTER", 60))
    stale = float(_setting("ENGAGEMENT_SENDING_STALE_AFTER", 300))
    params = {"org": organization.pk, "now": now, "limit": limit, "requeue": now + timedelta(seconds=requeue)}
    with connection.cursor() as cursor:
        cursor.execute(_DUE_SQL, params)
        due = [row[0] for row in cursor.fetchall()]
        stale_params = {
            "org": organization.pk,
            "now": now,
            "limit": max(1, limit // 10),
            "stale_before": now - timedelta(seconds=stale),
            "requeue_before": now - timedelta(seconds=requeue),
        }
        cursor.execute(_STALE_SQL, stale_params)
        stale_ids = [row[0] for row in cursor.fetchall()]
    return due, stale_ids


def dispatch_due(*, now: datetime | None = None) -> int:
    """The beat's scan over every active organization; returns how many ids were enqueued."""
    from engagement.tasks import outbox_reconcile_task, outbox_send_batch_task, outbox_send_task

    batch = int(_setting("ENGAGEMENT_SCAN_BATCH", 500))
    window = float(_setting("ENGAGEMENT_SCAN_WINDOW", 5.0))
    total = 0
    # Organizations are platform rows (no RLS); every outbox query below runs inside one of them.
    for organization in Organization.objects.filter(is_active=True).order_by("pk"):
        with organization_context(organization):
            rate = ChannelSettings.objects.values_list("send_rate_per_second", flat=True).first() or 10
            # No point taking more than the organization may send before the next scans.
            limit = max(1, min(batch, int(rate * window)))
            due, stale = due_ids(organization, now=now or timezone.now(), limit=limit)
        # ENGAGEMENT_SEND_BATCH > 1: one task per chunk of at most that many ids (and at most a
        # second's worth of sends), sent concurrently by messages_send; 1: one task per message.
        size = max(1, min(int(_setting("ENGAGEMENT_SEND_BATCH", 1)), rate))
        for start in range(0, len(due), size):
            chunk = due[start : start + size]
            if len(chunk) == 1:
                outbox_send_task.delay(organization.pk, chunk[0])
            else:
                outbox_send_batch_task.delay(organization.pk, chunk)
        for message_id in stale:
            outbox_reconcile_task.delay(organization.pk, message_id)
        total += len(due) + len(stale)
    return total


# -- Sending one message ----------------------------------------------------------------------------


@dataclass
class Prepared:
    message_id: int
    claimed_at: datetime
    attempts: int
    max_attempts: int
    channel: str
    to: str
    subject: str
    body: str
    rate: int
    twilio_sid: str
    twilio_token: str
    from_number: str
    messaging_service_sid: str
    email_from: str
    status_callback: str


def _defer(message: OutboundMessage, until: datetime, reason: str) -> None:
    OutboundMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(
        next_attempt_at=until, status_reason=reason[:200], updated_at=timezone.now()
    )


def _cancel(message: OutboundMessage, reason: str) -> None:
    OutboundMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(
        status=OutboxStatus.CANCELLED, status_reason=reason[:200], updated_at=timezone.now()
    )


def _cap_free_at(message: OutboundMessage, settings_: ChannelSettings, now: datetime) -> datetime | None:
    """When a non-urgent message may go under the frequency caps (None: now)."""
    counted = OutboundMessage.objects.filter(
        patient_id=message.patient_id,
        is_urgent=False,
        status__in=(OutboxStatus.SENDING, OutboxStatus.SENT, OutboxStatus.DELIVERED),
    ).exclude(pk=message.pk)
    for window, cap in ((timedelta(days=1), settings_.cap_per_day), (timedelta(days=7), settings_.cap_per_week)):
        recent = counted.filter(claimed_at__gt=now - window)
        if cap and recent.count() >= cap:
            # The oldest message in the window leaves it first... if the cap is 1; in general the
            # (count - cap + 1)-th oldest. Ordering by claimed_at gives that one.
            oldest = recent.order_by("claimed_at").values_list("claimed_at", flat=True)[recent.count() - cap]
            return oldest + window + timedelta(seconds=1)
    return None


def _subject_problem(message: OutboundMessage, now: datetime) -> str:
    """Why a message is no longer wanted ('' when it still is)."""
    if message.expires_at and now >= message.expires_at:
        return "Too late: the moment it was for has passed."
    if message.subject_type == "appointment" and message.rule_id and message.rule.kind == "appointment_reminder":
        appointment = selectors.appointment_get(message.subject_id)
        if appointment is None or appointment.status not in selectors.REMINDABLE:
            return "The appointment is no longer booked."
        if services.reminder_slot(int(message.slot.split("h@")[0]), appointment.starts_at) != message.slot:
            return "The appointment was rescheduled."
    if not message.patient.is_active:
        return "The patient record is inactive."
    return ""


def render_message(
    message: OutboundMessage,
    organization: Organization,
    settings_: ChannelSettings,
    *,
    templates: dict[tuple[str, str, str], Any] | None = None,
) -> tuple[str, str]:
    """(subject, body) of a message from its template; staff replies carry their own body.
    `templates` caches the template lookups of a batch."""
    if message.subject_type == "conversation":
        return "", message.body
    patient = message.patient
    key = (message.template_key, message.channel, patient.preferred_language)
    if templates is not None and key in templates:
        template = templates[key]
    else:
        template = selectors.template_for(
            key=message.template_key, channel=message.channel, language=patient.preferred_language
        )
        if templates is not None:
            templates[key] = template
    if template is None:
        raise DeliveryError(
            f"No active template '{message.template_key}' for {message.channel}.", permanent=True, code="no_template"
        )
    zone = services.patient_zone(patient, organization)
    context = {
        "first_name": patient.preferred_name or patient.given_name,
        "clinic_name": organization.name,
        "clinic_phone": settings_.contact_phone or organization.phone,
        "unsubscribe_link": links.link_for(
            organization_id=organization.pk, message_id=message.pk, action="unsubscribe"
        ),
    }
    if message.subject_type == "appointment":
        appointment = selectors.appointment_get(message.subject_id)
        if appointment is not None:
            local = appointment.starts_at.astimezone(zone)
            with translation.override(template.language.split("-")[0]):
                fmt = "D j M, H:i" if not template.language.startswith("en") else "D M j, g:i A"
                context["appointment_time"] = dateformat.format(local, fmt)
                context["appointment_date"] = dateformat.format(local, "D M j" if fmt.startswith("D M") else "D j M")
            context["location"] = appointment.location.name if appointment.location else ""
            context["telehealth_link"] = appointment.telehealth_url
            for action in ("confirm", "cancel"):
                context[f"{action}_link"] = links.link_for(
                    organization_id=organization.pk, message_id=message.pk, action=action
                )
    body = templating.render(template.body, context)
    # Collapse blank lines left by empty optional variables (no telehealth link, no location).
    body = "\n".join(line for line in body.splitlines() if line.strip() or not line).strip()
    return templating.render(template.subject, context), body


# The patient columns a send reads: the others (address, date of birth, ...) are never decrypted.
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
    from engagement.models import Rule

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
    opted_out: set[tuple[int, str]]
    templates: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    @classmethod
    def load(cls, ids: list[int]) -> _Batch:
        from engagement.models import Consent, ConsentStatus

        messages = {m.pk: m for m in _pending_messages(ids)}
        opted_out = set(
            Consent.objects.filter(
                patient_id__in={m.patient_id for m in messages.values()}, status=ConsentStatus.OPTED_OUT
            ).values_list("patient_id", "channel")
        )
        return cls(selectors.channel_settings_get(), messages, opted_out)


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
    if (
        (message.patient_id, message.channel) in batch.opted_out
        if batch is not None
        else selectors.is_opted_out(patient_id=message.patient_id, channel=message.channel)
    ):
        _cancel(message, "The patient opted out of this channel.")
        return None
    patient = message.patient
    if message.subject_type != "conversation":
        start, end = services.sending_window(patient, settings_)
        allowed = etiquette.next_allowed(now, services.patient_zone(patient, organization), start, end)
        if allowed > now:
            _defer(message, allowed, "Quiet hours: deferred to the patient's morning.")
            return None
    if not message.is_urgent:
        free_at = _cap_free_at(message, settings_, now)
        if free_at is not None:
            _defer(message, free_at, "Frequency cap: deferred.")
            return None
    to = patient.phone_mobile if message.channel == MessageChannel.SMS else patient.email
    if not to:
        _cancel(message, "No address for this channel.")
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
        updated_at=now,
        to_address=to,
        body=body,
        segments=segments,
    )
    if claimed != 1:
        return None
    base = _setting("PUBLIC_BASE_URL", "")
    callback = f"{base.rstrip('/')}/integrations/twilio/{organization.slug}/status/" if base else ""
    return Prepared(
        message_id=message.pk,
        claimed_at=now,
        attempts=message.attempts + 1,
        max_attempts=settings_.max_attempts,
        channel=message.channel,
        to=to,
        subject=subject,
        body=body,
        rate=settings_.send_rate_per_second,
        twilio_sid=settings_.twilio_account_sid,
        twilio_token=settings_.twilio_auth_token,
        from_number=settings_.sms_from_number,
        messaging_service_sid=settings_.messaging_service_sid,
        email_from=settings_.email_from or settings.DEFAULT_FROM_EMAIL,
        status_callback=callback,
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
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"Mail server error: {type(exc).__name__}.", permanent=False, code="smtp") from None
        return "", None
    if sms_backend() == "outbox_sink":
        return f"SINK{prepared.message_id:012d}", None
    try:
        sent = twilio.send_sms(
            account_sid=prepared.twilio_sid,
            auth_token=prepared.twilio_token,
            to=prepared.to,
            body=prepared.body,
            from_number=prepared.from_number,
            messaging_service_sid=prepared.messaging_service_sid,
            status_callback=prepared.status_callback,
        )
    except twilio.SmsError as exc:
        raise DeliveryError(str(exc), permanent=exc.permanent, code=exc.code, unknown=exc.code == "network") from None
    return sent.sid, sent.segments


def _alert_admins(organization: Organization, message_id: int, reason: str) -> None:
    """Tell the organization's administrators a message failed for good (ids only, no PHI)."""
    try:
        from healthcrm.models import Membership
        from healthcrm.services import notify
    except ImportError:  # pragma: no cover - notifications not installed
        log.warning("outbox message %s failed: %s", message_id, reason)
        return
    admins = Membership.objects.filter(organization=organization, role="admin", is_active=True).values_list(
        "user_id", flat=True
    )
    notify(
        recipients=list(admins),
        kind="outreach.failed",
        message=f"Message #{message_id} could not be sent: {reason}"[:255],
        url="/engagement/outbox/?status=failed",
    )
    log.warning("outbox message %s failed: %s", message_id, reason)


def _record_failure(organization: Organization, prepared: Prepared, exc: DeliveryError, now: datetime) -> None:
    mine = OutboundMessage.objects.filter(
        pk=prepared.message_id, status=OutboxStatus.SENDING, claimed_at=prepared.claimed_at
    )
    if exc.unknown:
        # Leave it claimed: the stale sweep asks the provider before anything is sent again.
        mine.update(status_reason="Outcome unknown (timeout): settles by asking the provider.", error_code=exc.code)
        return
    if exc.permanent or prepared.attempts >= prepared.max_attempts:
        reason = str(exc) if exc.permanent else f"Gave up after {prepared.attempts} attempts: {exc}"
        if mine.update(status=OutboxStatus.FAILED, status_reason=reason[:200], error_code=exc.code, updated_at=now):
            if exc.code == str(twilio.OPTED_OUT_CODE):
                message = OutboundMessage.objects.select_related("patient").get(pk=prepared.message_id)
                services.consent_set(
                    patient=message.patient, channel=MessageChannel.SMS, status="opted_out", source="sms_keyword"
                )
            elif not exc.permanent:
                _alert_admins(organization, prepared.message_id, reason)
        return
    delay = etiquette.backoff(
        prepared.attempts,
        base=float(_setting("ENGAGEMENT_RETRY_BASE", 30.0)),
        cap=float(_setting("ENGAGEMENT_RETRY_CAP", 3600.0)),
    )
    mine.update(
        status=OutboxStatus.PENDING,
        next_attempt_at=now + delay,
        status_reason=str(exc)[:200],
        error_code=exc.code,
        updated_at=now,
    )


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
            threads = int(_setting("ENGAGEMENT_SEND_THREADS", 16))
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
    found_sid = ""
    if message.channel == MessageChannel.SMS and sms_backend() == "twilio" and to and body:
        since = claimed_at - timedelta(minutes=5)  # clock skew between us and the provider
        try:
            recent = twilio.recent_messages(
                account_sid=settings_.twilio_account_sid, auth_token=settings_.twilio_auth_token, to=to, since=since
            )
        except twilio.SmsError:
            return "unknown"  # ask again at the next sweep
        match = [m for m in recent if m.body == body and (m.date_created is None or m.date_created >= since)]
        found_sid = match[0].sid if match else ""
    with organization_context(organization):
        mine = OutboundMessage.objects.filter(pk=message_id, status=OutboxStatus.SENDING, claimed_at=claimed_at)
        if found_sid:
            mine.update(status=OutboxStatus.SENT, provider_sid=found_sid, sent_at=now, status_reason="", updated_at=now)
            return "sent"
        if attempts >= settings_.max_attempts:
            if mine.update(status=OutboxStatus.FAILED, status_reason="Gave up: outcome unknown.", updated_at=now):
                _alert_admins(organization, message_id, "gave up after repeated unknown outcomes")
            return "failed"
        mine.update(status=OutboxStatus.PENDING, next_attempt_at=now, claimed_at=None, updated_at=now)
        return "retry"


def first_due_at() -> datetime | None:
    """When the current organization's next pending message is due (for the outbox page)."""
    return OutboundMessage.objects.filter(status=OutboxStatus.PENDING).aggregate(first=Min("next_attempt_at"))["first"]
