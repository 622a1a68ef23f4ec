"""Reads for outreach, always in the current organization (tenant managers and RLS)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from engagement.models import (
    ChannelSettings,
    Consent,
    ConsentStatus,
    ConversationMessage,
    Direction,
    MessageTemplate,
    OutboundMessage,
    OutboxStatus,
    Rule,
)
from healthcrm.tenancy import require_current_organization

# Appointment statuses that still deserve a reminder.
REMINDABLE = ("booked", "confirmed")


def channel_settings_get() -> ChannelSettings:
    """The current organization's settings (created with the defaults on first use)."""
    organization = require_current_organization()
    found = ChannelSettings.objects.filter(organization=organization).first()
    if found is None:
        found, _ = ChannelSettings.objects.get_or_create(organization=organization)
    return found


def consents_for(patient_ids: list[int]) -> dict[tuple[int, str], str]:
    rows = Consent.objects.filter(patient_id__in=patient_ids).values_list("patient_id", "channel", "status")
    return {(p, c): s for p, c, s in rows}


def is_opted_out(*, patient_id: int, channel: str) -> bool:
    return Consent.objects.filter(patient_id=patient_id, channel=channel, status=ConsentStatus.OPTED_OUT).exists()


def template_for(*, key: str, channel: str, language: str) -> MessageTemplate | None:
    """The template in the patient's language, else its base language, else English."""
    wanted = [language, language.split("-")[0], "en"]
    found = {
        t.language: t
        for t in MessageTemplate.objects.filter(key=key, channel=channel, is_active=True, language__in=wanted)
    }
    return next((found[lang] for lang in wanted if lang in found), None)


def medications_refill_due(*, start: Any, end: Any) -> QuerySet[Any]:
    """Active medications whose refill is due from `start` to `end` (dates, inclusive). Uses the
    (organization, status, refill_due) index; only plain columns are loaded (no name decrypted)."""
    from patients.models import Medication

    return Medication.objects.filter(status="active", refill_due__gte=start, refill_due__lte=end).only(
        "id", "patient_id", "refill_due"
    )


# -- Appointments (patients.Appointment, read through here only) --------------------------------


def appointments_for_reminders(*, rule: Rule, now: datetime, horizon: timedelta) -> QuerySet[Any]:
    """Booked or confirmed appointments starting after now and before now + horizon, of the
    rule's types (all when none). Uses the (organization, status, starts_at) index."""
    from patients.models import Appointment

    qs = Appointment.objects.filter(status__in=REMINDABLE, starts_at__gt=now, starts_at__lte=now + horizon)
    if rule.appointment_types:
        qs = qs.filter(appointment_type__in=rule.appointment_types)
    return qs.select_related("patient").only(
        "id",
        "starts_at",
        "patient_id",
        "appointment_type",
        "patient__id",
        "patient__phone_mobile",
        "patient__email",
        "patient__preferred_channel",
        "patient__is_active",
        "patient__organization_id",
    )


def appointments_remindable(*, ids: list[int], now: datetime, rule: Rule) -> QuerySet[Any]:
    """These appointments, when still booked or confirmed, starting after now, of the rule's types."""
    from patients.models import Appointment

    qs = Appointment.objects.filter(pk__in=ids, status__in=REMINDABLE, starts_at__gt=now)
    if rule.appointment_types:
        qs = qs.filter(appointment_type__in=rule.appointment_types)
    return qs.only("id", "starts_at", "patient_id", "appointment_type").order_by("starts_at", "id")


def appointments_completed_since(*, since: datetime, rule: Rule) -> QuerySet[Any]:
    from patients.models import Appointment

    qs = Appointment.objects.filter(status="completed", ends_at__gte=since, ends_at__lte=timezone.now())
    if rule.appointment_types:
        qs = qs.filter(appointment_type__in=rule.appointment_types)
    return qs.select_related("patient")


def appointment_get(pk: int | None, *, for_update: bool = False) -> Any:
    """One appointment of the current organization, or None; `for_update` locks its row (not the joined ones)."""
    from patients.models import Appointment

    if not pk:
        return None
    qs = Appointment.objects.select_related("location", "patient").filter(pk=pk)
    return (qs.select_for_update(of=("self",)) if for_update else qs).first()


def next_appointment_for(patient_id: int, *, within: timedelta = timedelta(days=14)) -> Any:
    """The patient's next booked appointment (for a 'C' reply), or None."""
    from patients.models import Appointment

    now = timezone.now()
    return (
        Appointment.objects.filter(
            patient_id=patient_id, status="booked", starts_at__gt=now, starts_at__lte=now + within
        )
        .order_by("starts_at")
        .first()
    )


# -- Screens --------------------------------------------------------------------------------------


def outbox_list() -> QuerySet[OutboundMessage]:
    return OutboundMessage.objects.select_related("rule", "patient").defer("body", "to_address")


def communication_history(*, patient: Any, limit: int = 50) -> list[dict[str, Any]]:
    """Outbox messages and SMS conversation of one patient, newest first (for the patient page)."""
    outbound = OutboundMessage.objects.filter(patient_id=patient.pk).select_related("rule").order_by("-due_at")[:limit]
    inbound = ConversationMessage.objects.filter(patient_id=patient.pk, direction=Direction.INBOUND).order_by(
        "-created_at"
    )[:limit]
    items: list[dict[str, Any]] = [{"at": m.sent_at or m.due_at, "kind": "out", "message": m} for m in outbound] + [
        {"at": m.created_at, "kind": "in", "message": m} for m in inbound
    ]
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:limit]


@dataclass
class Thread:
    patient_id: int | None
    phone_bidx: str
    last_at: datetime
    unread: int
    patient: Any = None


def conversation_threads(*, limit: int = 100) -> list[Thread]:
    """One line per patient (or unknown number) with messages, newest first, with unread counts."""
    rows = (
        ConversationMessage.objects.values("patient_id", "phone_bidx")
        .annotate(
            last_at=Max("created_at"),
            unread=Count("id", filter=Q(direction=Direction.INBOUND, read_at__isnull=True)),
        )
        .order_by("-last_at")[:limit]
    )
    threads = [Thread(r["patient_id"], r["phone_bidx"], r["last_at"], r["unread"]) for r in rows]
    from patients.models import Patient

    patients = Patient.objects.in_bulk([t.patient_id for t in threads if t.patient_id])
    for thread in threads:
        thread.patient = patients.get(thread.patient_id)
    return threads


def conversation_for(*, patient_id: int) -> QuerySet[ConversationMessage]:
    return ConversationMessage.objects.filter(patient_id=patient_id).order_by("created_at", "id")


def pending_for_patient(*, patient_id: int, channel: str | None = None) -> QuerySet[OutboundMessage]:
    qs = OutboundMessage.objects.filter(patient_id=patient_id, status=OutboxStatus.PENDING)
    return qs.filter(channel=channel) if channel else qs
