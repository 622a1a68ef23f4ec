"""What a patient link does when opened (GET: ask) and when used (POST: act once).

States: "ask" (the question page), "done" (acted now), "used" (this link acted before),
"unavailable" (the appointment is final, gone, or has started), "expired" (older than
ENGAGEMENT_LINK_MAX_AGE). Confirm/cancel links act once; unsubscribe links act every time (opting
out again is harmless) but are recorded once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from engagement import links, selectors
from engagement.models import ConsentSource, ConsentStatus, LinkUse, OutboundMessage
from engagement.services.consent import consent_set


def _appointment_state(message: OutboundMessage, claims: links.LinkClaims, *, now: datetime, appointment: Any) -> str:
    if appointment is None:
        return "unavailable"
    if LinkUse.objects.filter(message=message, action=claims.action).exists():
        return "used"
    if now >= links.link_expires_at(claims, starts_at=appointment.starts_at) or appointment.is_final:
        return "unavailable"
    return "ask"


def _appointment_of(message: OutboundMessage, *, for_update: bool = False) -> Any:
    if message.subject_type != "appointment":
        return None
    return selectors.appointment_get(message.subject_id, for_update=for_update)


def link_state(*, message: OutboundMessage, claims: links.LinkClaims, now: datetime) -> str:
    """What opening the link shows, without using it (link previewers fetch GETs)."""
    if claims.action not in links.APPOINTMENT_ACTIONS:
        return "ask"
    return _appointment_state(message, claims, now=now, appointment=_appointment_of(message))


def link_use(*, message: OutboundMessage, claims: links.LinkClaims, now: datetime) -> str:
    """Use the link: act (at most once for confirm/cancel), record the use, and say what happened."""
    from patients.services import appointment_cancel, appointment_confirm

    with transaction.atomic():
        if claims.action not in links.APPOINTMENT_ACTIONS:
            _record(message, claims.action, now)
            consent_set(
                patient=message.patient,
                channel=message.channel,
                status=ConsentStatus.OPTED_OUT,
                source=ConsentSource.LINK,
            )
            return "done"
        # Lock the appointment first: a confirm and a cancel clicked together see each other's result.
        appointment = _appointment_of(message, for_update=True)
        state = _appointment_state(message, claims, now=now, appointment=appointment)
        if state != "ask":
            return state
        try:
            with transaction.atomic():
                if not _record(message, claims.action, now):
                    return "used"
                if claims.action == "confirm":
                    appointment_confirm(appointment=appointment, via="link")
                else:
                    # The patient cancelled it themselves: that is the reason analytics counts.
                    appointment_cancel(appointment=appointment, reason="patient_request")
        except ValidationError:
            return "unavailable"  # the transition is not allowed: nothing recorded, nothing changed
        return "done"


def _record(message: OutboundMessage, action: str, now: datetime) -> bool:
    """Insert the use; False when this (message, action) was used already (by a concurrent request too)."""
    try:
        with transaction.atomic():
            LinkUse.objects.create(message=message, action=action, used_at=now)
    except IntegrityError:
        return False
    return True
