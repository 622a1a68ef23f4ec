"""The outbox: one row per message to send, created idempotently (a uniqueness key per rule,
subject, channel and slot), its first attempt placed inside the patient's sending window."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.utils import timezone

from engagement import etiquette, selectors
from engagement.models import (
    MARKETING_RULE_KINDS,
    OPT_IN_KINDS,
    ChannelSettings,
    ConsentKind,
    ConsentStatus,
    OutboundMessage,
    Rule,
)
from healthcrm.tenancy import require_current_organization


def user_or_none(actor: Any) -> Any:
    """The actor when it is a signed-in user (stored as the author), else None."""
    return actor if getattr(actor, "is_authenticated", False) else None


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
        channel = etiquette.choose_channel(patient, selectors.consents_for([patient.pk]), settings_, opt_in=opt_in)
        if channel is None:
            return None
    urgent = rule.is_urgent if urgent is None and rule is not None else bool(urgent)
    start, end = etiquette.sending_window(patient, settings_)
    zone = etiquette.patient_zone(patient, organization)
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
        next_attempt_at=etiquette.next_allowed(due_at, zone, start, end),
        expires_at=expires_at,
        sent_by=user_or_none(sent_by),
        body=body,
    )
    outbox_rows_create([row])
    return OutboundMessage.objects.filter(
        patient_id=patient.pk, rule=rule, subject_type=subject_type, subject_id=subject_id, channel=channel, slot=slot
    ).first()


def outbox_row_for(
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
    """One unsaved outbox row for a rule and patient (None when the patient cannot be reached)."""
    organization = require_current_organization()
    if not patient.is_active:
        return None
    if (
        rule.kind in MARKETING_RULE_KINDS
        and consents.get((patient.pk, ConsentKind.MARKETING)) != ConsentStatus.OPTED_IN
    ):
        return None  # campaigns need the marketing and education consent too (checked again at send)
    channel = etiquette.choose_channel(patient, consents, settings_, opt_in=rule.kind in OPT_IN_KINDS)
    if channel is None:
        return None
    start, end = etiquette.sending_window(patient, settings_)
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
        next_attempt_at=etiquette.next_allowed(due_at, etiquette.patient_zone(patient, organization), start, end),
        expires_at=expires_at,
    )


def reminder_slot(offset_hours: int, starts_at: datetime) -> str:
    """A reminder's slot names its offset and the start it was computed for: a rescheduled
    appointment gets new reminders, and the old ones are cancelled at send time."""
    return f"{offset_hours}h@{starts_at.astimezone(zoneinfo.ZoneInfo('UTC')):%Y%m%dT%H%M}"


RISK_SLOT_PREFIX = "risk"


def risk_reminder_slot(offset_hours: int, starts_at: datetime) -> str:
    """The extra reminder for a visit at high no-show risk: "risk48h@<start>", distinct from the
    rule's own 48h reminder, and tied to the start like every reminder slot."""
    return RISK_SLOT_PREFIX + reminder_slot(offset_hours, starts_at)


def reminder_slot_matches(slot: str, starts_at: datetime) -> bool:
    """Whether a reminder's slot (its own or a risk extra) was computed for this start: False once
    the visit has been rescheduled (the send then cancels it), or for a slot that is no reminder's."""
    offset, separator, _ = slot.removeprefix(RISK_SLOT_PREFIX).partition("h@")
    if not separator or not offset.isdigit():
        return False
    expected = reminder_slot(int(offset), starts_at)
    return slot in (expected, RISK_SLOT_PREFIX + expected)


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
