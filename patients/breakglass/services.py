"""Writes of break-the-glass events: the grant (with its notification) and the compliance review."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from auditlog.context import set_actor
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from healthcrm.models import Membership
from healthcrm.roles import Role
from healthcrm.services import notify
from patients.breakglass.policy import break_glass_settings
from patients.models import BreakGlassEvent, Patient, PatientDocument, PatientNote


def _label(user: Any) -> str:
    return (user.get_full_name() or user.get_username())[:150]


def _compliance_members(organization_id: int) -> list[int]:
    return list(
        Membership.objects.filter(
            organization_id=organization_id, role=Role.COMPLIANCE, is_active=True, user__is_active=True
        ).values_list("user_id", flat=True)
    )


@transaction.atomic
def break_glass_grant(*, user: Any, patient: Patient, reason: str, note: str = "") -> BreakGlassEvent:
    """Grant `user` access to `patient` for the organization's grant time, and tell compliance.

    The notification names the event by id only (no PHI); every compliance officer gets it.
    """
    now = timezone.now()
    minutes = break_glass_settings(patient.organization).grant_minutes
    event = BreakGlassEvent(
        organization_id=patient.organization_id,
        user=user,
        user_label=_label(user),
        patient=patient,
        reason=reason,
        note=note.strip(),
        granted_at=now,
        expires_at=now + timedelta(minutes=minutes),
    )
    event.full_clean()
    event.save()
    notify(
        recipients=_compliance_members(patient.organization_id),
        kind="break_glass",
        message=f"Break-the-glass access #{event.pk} needs review.",
        url=reverse("patients:break_glass_events"),
    )
    return event


@transaction.atomic
def break_glass_review(*, event: BreakGlassEvent, reviewer: Any, outcome: str, note: str = "") -> BreakGlassEvent:
    """Record the compliance review of an event (a later review replaces an earlier one)."""
    review = {
        "reviewed_by": reviewer,
        "reviewed_by_label": _label(reviewer),
        "reviewed_at": timezone.now(),
        "outcome": outcome,
        "review_note": note.strip(),  # an encrypted field: mypy's stubs type it as the field itself
    }
    for field, value in review.items():
        setattr(event, field, value)
    event.full_clean()
    event.save()
    return event


@transaction.atomic
def record_restriction_set(*, record: PatientNote | PatientDocument, restricted: bool, actor: Any = None) -> Any:
    """Restrict a note or document at the patient's request (or lift it). The change is audited
    (the change log records who and when); opening a restricted one then takes break-the-glass."""
    if (record.restricted_at is not None) == restricted:
        return record  # nothing changes: no audit row for a repeated click
    record.restricted_at = timezone.now() if restricted else None
    record.full_clean()
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    with set_actor(user) if user is not None else nullcontext():
        record.save(update_fields=["restricted_at", "updated_at"])
    return record


__all__ = ["break_glass_grant", "break_glass_review", "record_restriction_set"]
