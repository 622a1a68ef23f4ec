"""Consent: a patient's yes or no per kind (a channel, treatment, campaigns, research, data sharing
with a named party); a channel opt-out cancels what is pending on it.

`Consent` holds the current value per kind (and party); each call of `consent_set` also appends a
`ConsentChange` (who, where from, when, until when, the evidence, an optional note) in the same
transaction, so the history is complete for every path: staff, SMS keywords, patient links,
provider opt-outs, intake, imports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from engagement import selectors
from engagement.models import CHANNEL_KINDS, Consent, ConsentChange, ConsentStatus, Direction, OutboxStatus


def _check_evidence(patient: Any, document: Any, message: Any) -> None:
    """Evidence must be the patient's own: a document on their record, a message they sent."""
    if document is not None and (document.patient_id != patient.pk or document.deleted_at is not None):
        raise ValidationError({"evidence_document": "Choose one of this patient's documents."})
    if message is not None and (message.patient_id != patient.pk or message.direction != Direction.INBOUND):
        raise ValidationError({"evidence_message": "Choose a message this patient sent."})


@transaction.atomic
def consent_set(
    *,
    patient: Any,
    status: str,
    source: str,
    kind: str = "",
    channel: str = "",
    party: str = "",
    expires_at: datetime | None = None,
    evidence_document: Any = None,
    evidence_message: Any = None,
    actor: Any = None,
    note: str = "",
) -> Consent:
    """Record the patient's consent of a kind (`channel` is the older name of a channel kind), and
    the change in its history. A channel opt-out cancels their pending messages on it."""
    kind = kind or channel
    _check_evidence(patient, evidence_document, evidence_message)
    now = timezone.now()
    consent = Consent.objects.filter(patient_id=patient.pk, kind=kind, party=party).first() or Consent(
        patient=patient, kind=kind, party=party
    )
    values = {
        "status": status,
        "source": source,
        "changed_at": now,
        "expires_at": expires_at,
        "evidence_document": evidence_document,
        "evidence_message": evidence_message,
    }
    for field, value in values.items():
        setattr(consent, field, value)
    consent.full_clean()
    consent.save()
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    change = ConsentChange(
        patient=patient,
        kind=kind,
        party=party,
        actor=user,
        actor_label=user.get_username()[:150] if user is not None else "",
        note=note,
        **values,
    )
    change.full_clean()
    change.save()
    if status == ConsentStatus.OPTED_OUT and kind in CHANNEL_KINDS:
        messages_cancel(patient_id=patient.pk, channel=kind, reason="The patient opted out.")
    return consent


def messages_cancel(*, patient_id: int, reason: str, channel: str | None = None) -> int:
    """Cancel a patient's pending messages (all channels, or one)."""
    return selectors.pending_for_patient(patient_id=patient_id, channel=channel).update(
        status=OutboxStatus.CANCELLED, status_reason=reason[:200], updated_at=timezone.now()
    )
