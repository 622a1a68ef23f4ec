"""Consent: a patient's yes or no per channel; an opt-out cancels what is pending on it.

`Consent` holds the current value per channel; each call of `consent_set` also appends a
`ConsentChange` (who, where from, when, an optional note) in the same transaction, so the history
is complete for every path: staff, SMS keywords, patient links, provider opt-outs, intake, imports.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from engagement import selectors
from engagement.models import Consent, ConsentChange, ConsentStatus, OutboxStatus


@transaction.atomic
def consent_set(*, patient: Any, channel: str, status: str, source: str, actor: Any = None, note: str = "") -> Consent:
    """Record the patient's consent for a channel, and the change in its history. An opt-out cancels
    their pending messages on it."""
    now = timezone.now()
    consent = Consent.objects.filter(patient_id=patient.pk, channel=channel).first() or Consent(
        patient=patient, channel=channel
    )
    consent.status = status
    consent.source = source
    consent.changed_at = now
    consent.full_clean()
    consent.save()
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    change = ConsentChange(
        patient=patient,
        channel=channel,
        status=status,
        source=source,
        changed_at=now,
        actor=user,
        actor_label=user.get_username()[:150] if user is not None else "",
        note=note,
    )
    change.full_clean()
    change.save()
    if status == ConsentStatus.OPTED_OUT:
        messages_cancel(patient_id=patient.pk, channel=channel, reason="The patient opted out.")
    return consent


def messages_cancel(*, patient_id: int, reason: str, channel: str | None = None) -> int:
    """Cancel a patient's pending messages (all channels, or one)."""
    return selectors.pending_for_patient(patient_id=patient_id, channel=channel).update(
        status=OutboxStatus.CANCELLED, status_reason=reason[:200], updated_at=timezone.now()
    )
