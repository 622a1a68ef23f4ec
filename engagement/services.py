"""Writes for outreach: consent, templates, rules, the outbox, inbound SMS and delivery statuses.

Sending itself (claim, send, record) is in engagement/delivery.py.
"""

from __future__ import annotations

import secrets
import zoneinfo
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from engagement import etiquette, selectors, templating
from engagement.models import (
    OPT_IN_KINDS,
    ChannelSettings,
    Consent,
    ConsentSource,
    ConsentStatus,
    ConversationMessage,
    Direction,
    MessageChannel,
    MessageTemplate,
    OutboundMessage,
    OutboxStatus,
    Rule,
    RuleKind,
)
from healthcrm.tenancy import require_current_organization

# How far ahead reminders are materialized beyond the largest offset, and how late a missed
# slot may still be sent (a beat that was down for a while).
REMINDER_LOOKAHEAD = timedelta(hours=1)
LATE_GRACE = timedelta(minutes=30)


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


# -- Consent ------------------------------------------------------------------------------------


@transaction.atomic
def consent_set(*, patient: Any, channel: str, status: str, source: str, actor: Any = None) -> Consent:
    """Record the patient's consent for a channel. An opt-out cancels their pending messages on it."""
    consent = Consent.objects.filter(patient_id=patient.pk, channel=channel).first() or Consent(
        patient=patient, channel=channel
    )
    consent.status = status
    consent.source = source
    consent.changed_at = timezone.now()
    consent.full_clean()
    consent.save()
    if status == ConsentStatus.OPTED_OUT:
        messages_cancel(patient_id=patient.pk, channel=channel, reason="The patient opted out.")
    return consent


def messages_cancel(*, patient_id: int, reason: str, channel: str | None = None) -> int:
    """Cancel a patient's pending messages (all channels, or one)."""
    return selectors.pending_for_patient(patient_id=patient_id, channel=channel).update(
        status=OutboxStatus.CANCELLED, status_reason=reason[:200], updated_at=timezone.now()
    )


# -- Templates and rules --------------------------------------------------------------------------


def template_save(
    *,
    template: MessageTemplate | None = None,
    key: str,
    language: str,
    channel: str,
    body: str,
    subject: str = "",
    is_active: bool = True,
) -> MessageTemplate:
    """Create or update a template; refuses one the lint rejects (sensitive or unknown variables)."""
    problems = templating.lint(body=body, channel=channel, subject=subject)
    if problems:
        raise ValidationError({"body": problems})
    template = template or MessageTemplate()
    template.key, template.language, template.channel = key, language, channel
    template.body, template.subject, template.is_active = body, subject, is_active
    template.full_clean()
    template.save()
    return template


def rule_save(*, rule: Rule | None = None, **fields: Any) -> Rule:
    """Create or update a rule, then materialize its messages (after commit, in the background)."""
    rule = rule or Rule()
    for name, value in fields.items():
        setattr(rule, name, value)
    if rule.kind == RuleKind.APPOINTMENT_REMINDER and not rule.offsets_hours:
        raise ValidationError({"offsets_hours": "Give at least one offset, e.g. 72, 24, 2."})
    if rule.kind == RuleKind.CAMPAIGN and rule.params.get("send_on"):
        try:
            date.fromisoformat(str(rule.params["send_on"]))
        except ValueError:
            raise ValidationError({"params": "send_on must be a date such as 2026-12-01."}) from None
    rule.full_clean()
    rule.save()
    if rule.is_active:
        from engagement.tasks import rule_materialize_task

        organization_id, rule_id = rule.organization_id, rule.pk
        transaction.on_commit(lambda: rule_materialize_task.delay(organization_id, rule_id))
    return rule


# -- The outbox ---------------------------------------------------------------------------------


def sending_window(patient: Any, settings_: ChannelSettings) -> tuple[time, time]:
    """The patient's contact window when they gave one, else the organization's quiet hours."""
    if patient.contact_window_start and patient.contact_window_end:
        return patient.contact_window_start, patient.contact_window_end
    return settings_.quiet_start, settings_.quiet_end


def patient_zone(patient: Any, organization: Any) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(patient.timezone) if patient.timezone else organization.zone


def choose_channel(
    patient: Any, consents: dict[tuple[int, str], str], settings_: ChannelSettings, *, opt_in: bool = False
) -> str | None:
    """The channel to reach the patient by: their preference first, SMS before email; a channel
    they opted out of (or have no address for) falls back to the other; None when neither works."""
    preference = patient.preferred_channel
    if preference == "none":
        return None  # the patient asked for no outreach
    order = ["email", "sms"] if preference == "email" else ["sms", "email"]
    for channel in order:
        status = consents.get((patient.pk, channel))
        if status == ConsentStatus.OPTED_OUT or (opt_in and status != ConsentStatus.OPTED_IN):
            continue
        if channel == "sms" and settings_.sms_enabled and patient.phone_mobile:
            return "sms"
        if channel == "email" and settings_.email_enabled and patient.email:
            return "email"
    return None


def outbox_rows_create(rows: Iterable[OutboundMessage]) -> int:
    """Insert outbox rows; ones that already exist (same uniqueness key) are skipped by the
    database (ON CONFLICT DO NOTHING). Returns how many were offered."""
    rows = list(rows)
    if not rows:
        return 0
    OutboundMessage.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def outbox_enqueue(
    *,
    patient: Any,
    subject_type: str,
    slot: str,
    due_at: datetime,
    rule: Rule | None = None,
    subject_id: int | None = None,
    channel: str | None = None,
    template_key: str = "",
    urgent: bool | None = None,
    expires_at: datetime | None = None,
    sent_by: Any = None,
    body: str = "",
) -> OutboundMessage | None:
    """Schedule one message (idempotent: the same key returns the existing row). The channel is
    chosen from consent and preferences when not given; None when the patient cannot be reached."""
    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    if channel is None:
        opt_in = bool(rule and rule.kind in OPT_IN_KINDS)
        channel = choose_channel(patient, selectors.consents_for([patient.pk]), settings_, opt_in=opt_in)
        if channel is None:
            return None
    urgent = rule.is_urgent if urgent is None and rule is not None else bool(urgent)
    start, end = sending_window(patient, settings_)
    row = OutboundMessage(
        organization=organization,
        patient=patient,
        rule=rule,
        template_key=template_key or (rule.template_key if rule else ""),
        subject_type=subject_type,
        subject_id=subject_id,
        channel=channel,
        slot=slot,
        is_urgent=urgent,
        due_at=due_at,
        next_attempt_at=etiquette.next_allowed(due_at, patient_zone(patient, organization), start, end),
        expires_at=expires_at,
        sent_by=_user(sent_by),
        body=body,
    )
    outbox_rows_create([row])
    return OutboundMessage.objects.filter(
        patient_id=patient.pk, rule=rule, subject_type=subject_type, subject_id=subject_id, channel=channel, slot=slot
    ).first()


def reminder_slot(offset_hours: int, starts_at: datetime) -> str:
    """A reminder's slot names its offset and the start it was computed for: a rescheduled
    appointment gets new reminders, and the old ones are cancelled at send time."""
    return f"{offset_hours}h@{starts_at.astimezone(zoneinfo.ZoneInfo('UTC')):%Y%m%dT%H%M}"


def rule_materialize(*, rule: Rule, now: datetime | None = None) -> int:
    """Create the outbox rows a rule calls for now (idempotent). Returns how many were offered."""
    now = now or timezone.now()
    if not rule.is_active:
        return 0
    if rule.kind == RuleKind.APPOINTMENT_REMINDER:
        return _materialize_reminders(rule, now)
    if rule.kind == RuleKind.POST_VISIT:
        return _materialize_post_visit(rule, now)
    if rule.kind == RuleKind.MEDICATION_REFILL:
        return _materialize_refills(rule, now)
    if rule.kind == RuleKind.PREVENTIVE_RECALL:
        return _materialize_recall(rule, now)
    if rule.kind == RuleKind.CAMPAIGN:
        return _materialize_campaign(rule, now)
    if rule.kind == RuleKind.ADHERENCE:
        return _materialize_adherence(rule, now)
    return 0  # other kinds are enqueued by their services (care plan, results) or not built yet


def _materialize_reminders(rule: Rule, now: datetime) -> int:
    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    horizon = timedelta(hours=max(rule.offsets_hours)) + REMINDER_LOOKAHEAD
    appointments = list(selectors.appointments_for_reminders(rule=rule, now=now, horizon=horizon))
    consents = selectors.consents_for([a.patient_id for a in appointments])
    from patients.models import Patient

    # The patients' sending preferences (plain columns; nothing decrypted but the address check).
    patients = Patient.objects.in_bulk({a.patient_id for a in appointments})
    rows = []
    for appointment in appointments:
        patient = patients[appointment.patient_id]
        if not patient.is_active:
            continue
        channel = choose_channel(patient, consents, settings_)
        if channel is None:
            continue
        zone = patient_zone(patient, organization)
        start, end = sending_window(patient, settings_)
        for offset in sorted(set(rule.offsets_hours), reverse=True):
            due_at = appointment.starts_at - timedelta(hours=offset)
            if due_at > now + REMINDER_LOOKAHEAD or due_at < now - LATE_GRACE:
                continue
            rows.append(
                OutboundMessage(
                    organization=organization,
                    patient_id=patient.pk,
                    rule=rule,
                    template_key=rule.template_key,
                    subject_type="appointment",
                    subject_id=appointment.pk,
                    channel=channel,
                    slot=reminder_slot(offset, appointment.starts_at),
                    # Reminders are time-bound (they expire at the start): frequency caps never hold them.
                    is_urgent=True,
                    due_at=due_at,
                    next_attempt_at=etiquette.next_allowed(due_at, zone, start, end),
                    expires_at=appointment.starts_at,
                )
            )
    return outbox_rows_create(rows)


def _materialize_post_visit(rule: Rule, now: datetime) -> int:
    delay = timedelta(hours=int(rule.params.get("hours_after", 24)))
    created = 0
    for appointment in selectors.appointments_completed_since(since=now - delay - timedelta(days=1), rule=rule):
        due_at = appointment.ends_at + delay
        if due_at > now + REMINDER_LOOKAHEAD:
            continue
        message = outbox_enqueue(
            patient=appointment.patient,
            rule=rule,
            subject_type="appointment",
            subject_id=appointment.pk,
            slot="follow-up",
            due_at=max(due_at, now),
        )
        created += message is not None
    return created


def _patient_row(
    *,
    rule: Rule,
    patient: Any,
    consents: dict[tuple[int, str], str],
    settings_: ChannelSettings,
    subject_type: str,
    subject_id: int | None,
    slot: str,
    due_at: datetime,
    expires_at: datetime | None = None,
) -> OutboundMessage | None:
    """One outbox row for a rule and patient (None when the patient cannot be reached)."""
    organization = require_current_organization()
    if not patient.is_active:
        return None
    channel = choose_channel(patient, consents, settings_, opt_in=rule.kind in OPT_IN_KINDS)
    if channel is None:
        return None
    start, end = sending_window(patient, settings_)
    return OutboundMessage(
        organization=organization,
        patient_id=patient.pk,
        rule=rule,
        template_key=rule.template_key,
        subject_type=subject_type,
        subject_id=subject_id,
        channel=channel,
        slot=slot,
        is_urgent=rule.is_urgent,
        due_at=due_at,
        next_attempt_at=etiquette.next_allowed(due_at, patient_zone(patient, organization), start, end),
        expires_at=expires_at,
    )


def _materialize_refills(rule: Rule, now: datetime) -> int:
    """One message per active medication whose refill is due within `params.days_before` days
    (slot: the refill date, so a new refill date gets a new message). The message never names
    the medication: the templates only know the first name and the clinic."""
    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    today = now.astimezone(organization.zone).date()
    days = int(rule.params.get("days_before", 7))
    medications = list(selectors.medications_refill_due(start=today, end=today + timedelta(days=days)))
    from patients.models import Patient

    patients = Patient.objects.in_bulk({m.patient_id for m in medications})
    consents = selectors.consents_for(list(patients))
    rows = []
    for medication in medications:
        patient = patients[medication.patient_id]
        refill_end = datetime.combine(medication.refill_due + timedelta(days=1), time(0), tzinfo=organization.zone)
        row = _patient_row(
            rule=rule,
            patient=patient,
            consents=consents,
            settings_=settings_,
            subject_type="medication",
            subject_id=medication.pk,
            slot=medication.refill_due.isoformat(),
            due_at=now,
            expires_at=refill_end,
        )
        if row is not None:
            rows.append(row)
    return outbox_rows_create(rows)


def _materialize_recall(rule: Rule, now: datetime) -> int:
    """Preventive-care recall `params.recall` (a key of engagement.recalls.RECALLS): one message
    per due patient per period (slot: the period key, e.g. "2026-Q4")."""
    from engagement import recalls
    from patients.models import Patient

    recall = recalls.RECALLS.get(rule.params.get("recall", ""))
    if recall is None:
        return 0
    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    local_now = now.astimezone(organization.zone)
    if not recall.in_season(local_now.date()):
        return 0
    slot = f"{recall.key}:{recall.period_key(local_now.date())}"
    # Patients already messaged for this period are not loaded (or decrypted) again.
    done = set(OutboundMessage.objects.filter(rule=rule, slot=slot).values_list("patient_id", flat=True))
    ids = sorted(recall.due_patient_ids(local_now) - done)
    created = 0
    for index in range(0, len(ids), 1000):
        patients = Patient.objects.in_bulk(ids[index : index + 1000])
        consents = selectors.consents_for(list(patients))
        rows = []
        for patient in patients.values():
            if not recall.patient_matches(patient, local_now.date()):
                continue
            row = _patient_row(
                rule=rule,
                patient=patient,
                consents=consents,
                settings_=settings_,
                subject_type="recall",
                subject_id=None,
                slot=slot,
                due_at=now,
            )
            if row is not None:
                rows.append(row)
        created += outbox_rows_create(rows)
    return created


ADHERENCE_DEFAULT_TIME = time(9, 0)


def _materialize_adherence(rule: Rule, now: datetime) -> int:
    """The daily medication-adherence reminder, at the patient's chosen time (the start of their
    contact window; 09:00 when they gave none) in their time zone, to patients with an active
    medication who opted in (a daily message needs consent). One per patient and local day (slot:
    the date); today's and tomorrow's are offered so no day is missed between scans; each expires
    12 hours after its time. It names no medication, and it is exempt from the frequency caps like
    other reminders the patient asked for."""
    from patients.models import Patient

    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    ids = sorted(set(Patient.objects.filter(is_active=True, medications__status="active").values_list("pk", flat=True)))
    created = 0
    for index in range(0, len(ids), 1000):
        patients = Patient.objects.in_bulk(ids[index : index + 1000])
        consents = selectors.consents_for(list(patients))
        rows = []
        for patient in patients.values():
            zone = patient_zone(patient, organization)
            at = patient.contact_window_start or ADHERENCE_DEFAULT_TIME
            today = now.astimezone(zone).date()
            for day in (today, today + timedelta(days=1)):
                due = datetime.combine(day, at, tzinfo=zone)
                if due + timedelta(hours=12) <= now:
                    continue  # today's time is long gone
                row = _patient_row(
                    rule=rule,
                    patient=patient,
                    consents=consents,
                    settings_=settings_,
                    subject_type="adherence",
                    subject_id=None,
                    slot=day.isoformat(),
                    due_at=due,
                    expires_at=due + timedelta(hours=12),
                )
                if row is not None:
                    row.is_urgent = True  # asked for by the patient: not counted against the caps
                    rows.append(row)
        created += outbox_rows_create(rows)
    return created


def _materialize_campaign(rule: Rule, now: datetime) -> int:
    """An education or wellness campaign to a cohort, once, on `params.send_on` (the organization's
    local date; at once when absent), to patients who opted in to the channel (campaigns are not
    care messages). Cohort: `params.condition_code` (an active condition), `params.languages`
    (preferred languages), `params.age_min` / `params.age_max` (birth dates are encrypted: decrypted
    only for the patients the other filters select). Slot: "campaign:<send date>", so one message
    per patient per sending."""
    from engagement.recalls import age_on
    from patients.models import Patient

    organization = require_current_organization()
    today = now.astimezone(organization.zone).date()
    send_on = rule.params.get("send_on") or rule.created_at.astimezone(organization.zone).date().isoformat()
    try:
        if date.fromisoformat(str(send_on)) > today:
            return 0
    except ValueError:
        return 0  # rule_save refuses a malformed date; an old row must not break the scan
    slot = f"campaign:{send_on}"
    cohort = Patient.objects.filter(is_active=True)
    if rule.params.get("condition_code"):
        cohort = cohort.filter(
            conditions__code=str(rule.params["condition_code"]),
            conditions__clinical_status__in=("active", "recurrence", "relapse"),
        )
    if rule.params.get("languages"):
        cohort = cohort.filter(preferred_language__in=list(rule.params["languages"]))
    done = OutboundMessage.objects.filter(rule=rule, slot=slot).values_list("patient_id", flat=True)
    ids = sorted(set(cohort.exclude(pk__in=done).values_list("pk", flat=True)))
    age_min, age_max = rule.params.get("age_min"), rule.params.get("age_max")
    settings_ = selectors.channel_settings_get()
    created = 0
    for index in range(0, len(ids), 1000):
        patients = Patient.objects.in_bulk(ids[index : index + 1000])
        consents = selectors.consents_for(list(patients))
        rows = []
        for patient in patients.values():
            if age_min is not None or age_max is not None:
                age = age_on(patient.date_of_birth, today)
                if (age_min is not None and age < int(age_min)) or (age_max is not None and age > int(age_max)):
                    continue
            row = _patient_row(
                rule=rule,
                patient=patient,
                consents=consents,
                settings_=settings_,
                subject_type="campaign",
                subject_id=rule.pk,
                slot=slot,
                due_at=now,
            )
            if row is not None:
                rows.append(row)
        created += outbox_rows_create(rows)
    return created


def notice_enqueue(*, patient: Any, kind: str, subject_type: str, subject_id: int | None, slot: str = "") -> int:
    """Care-plan update or lab-results notices: one message per active rule of `kind` for this
    subject (idempotent per slot). Called by the services that change care plans or record results."""
    created = 0
    for rule in Rule.objects.filter(kind=kind, is_active=True):
        message = outbox_enqueue(
            patient=patient,
            rule=rule,
            subject_type=subject_type,
            subject_id=subject_id,
            slot=slot or "notice",
            due_at=timezone.now(),
        )
        created += message is not None
    return created


# -- Conversations --------------------------------------------------------------------------------


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
        sent_by=_user(actor),
    )
    message.full_clean()
    message.save()
    ConversationMessage.objects.create(
        patient=patient,
        direction=Direction.OUTBOUND,
        phone=patient.phone_mobile,
        body=body,
        outbound=message,
        author=_user(actor),
        read_at=now,
    )
    from engagement.tasks import outbox_send_task

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
    from patients.models import Patient

    organization = require_current_organization()
    if sid and ConversationMessage.objects.filter(provider_sid=sid).exists():
        return ""
    patients = list(Patient.objects.blind_match(phone_mobile=from_number)) if from_number else []
    keyword = etiquette.keyword_of(body)
    # The patient whose number it is (most recently created when a family shares a phone).
    patient = patients[0] if patients else None
    ConversationMessage.objects.create(
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
                channel=MessageChannel.SMS,
                status=ConsentStatus.OPTED_OUT,
                source=ConsentSource.SMS_KEYWORD,
            )
        return _stop_reply(clinic)
    if keyword == "START":
        for each in patients:
            consent_set(
                patient=each,
                channel=MessageChannel.SMS,
                status=ConsentStatus.OPTED_IN,
                source=ConsentSource.SMS_KEYWORD,
            )
        return f"{clinic}: you are subscribed to texts again. Reply STOP to unsubscribe, HELP for help."
    if keyword == "HELP":
        phone = settings_.contact_phone or organization.phone
        contact = f" Call us at {phone}." if phone else ""
        return f"{clinic}: appointment and care messages.{contact} Reply STOP to unsubscribe."
    if patient is None:
        return ""
    if keyword == "CONFIRM":
        appointment = selectors.next_appointment_for(patient.pk)
        if appointment is None:
            return f"{clinic}: we found no upcoming appointment to confirm. Please call us."
        from patients.services import appointment_confirm

        appointment_confirm(appointment=appointment)
        return f"{clinic}: thank you, your appointment is confirmed."
    if keyword == "RESCHEDULE":
        reschedule_task_create(patient=patient)
        return f"{clinic}: thank you, our front desk will contact you to find a new time."
    return ""


def reschedule_task_create(*, patient: Any) -> Any:
    """A front-desk task: the patient asked (by SMS) to reschedule. No PHI in the title."""
    from patients.care.services import task_assign

    return task_assign(
        patient=patient,
        title="Patient asked by text message to reschedule their appointment",
        due_date=timezone.localdate(),
        assignee_role="frontdesk",
        priority="routine",
    )


# -- Delivery statuses (Twilio status callbacks) ------------------------------------------------

# Order of delivery states; a callback never moves a message backwards, so replays change nothing.
_RANK = {"sending": 0, "sent": 1, "delivered": 2, "failed": 2}
_TWILIO_STATUS = {
    "queued": "sent",
    "accepted": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
}


def delivery_status_apply(*, sid: str, provider_status: str, error_code: str = "") -> int:
    """Apply a provider status to the message with this sid; returns rows changed (0 on replay)."""
    status = _TWILIO_STATUS.get(provider_status.lower())
    if not sid or status is None:
        return 0
    lower = [s for s, rank in _RANK.items() if rank < _RANK[status]]
    changes: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if status == "delivered":
        changes["delivered_at"] = timezone.now()
    if status == "failed":
        changes["error_code"] = str(error_code)[:32]
        changes["status_reason"] = "The carrier could not deliver the message."
    return OutboundMessage.objects.filter(provider_sid=sid, status__in=lower).update(**changes)
