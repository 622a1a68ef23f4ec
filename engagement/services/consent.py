"""Consent: a patient's yes or no per channel; an opt-out cancels what is pending on it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from engagement import selectors
from engagement.models import Consent, ConsentStatus, OutboxStatus


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
