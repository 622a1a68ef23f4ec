"""Writes on practitioners and appointments: validated (the double-booking check included), atomic,
audited (django-auditlog, same transaction). Other apps book, move and import through these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from healthcrm.models import Location
from patients.models import Appointment, AppointmentKind, AppointmentStatus, ConfirmedVia, Patient, Practitioner
from patients.scheduling.telehealth import telehealth_join_url

DOUBLE_BOOKED = "This practitioner already has an appointment at that time."


def _save(appointment: Appointment) -> Appointment:
    """Validate (the double-booking check included) and save; the database settles races."""
    appointment.full_clean()
    try:
        with transaction.atomic():
            appointment.save()
    except IntegrityError as exc:
        if "appointment_no_double_booking" in str(exc):
            raise ValidationError({"starts_at": DOUBLE_BOOKED}) from None
        raise
    return appointment


@transaction.atomic
def appointment_book(
    *,
    patient: Patient,
    practitioner: Practitioner,
    starts_at: datetime,
    ends_at: datetime,
    kind: str = AppointmentKind.IN_PERSON,
    appointment_type: str = "follow_up",
    location: Location | None = None,
    reason: str = "",
    actor: Any = None,
) -> Appointment:
    """Book an appointment. Raises ValidationError (nothing saved) on bad times or double booking."""
    appointment = Appointment(
        patient=patient,
        practitioner=practitioner,
        location=location,
        kind=kind,
        appointment_type=appointment_type,
        reason=reason.strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        status=AppointmentStatus.BOOKED,
        status_changed_at=timezone.now(),
        status_changed_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    if kind == AppointmentKind.TELEHEALTH:
        appointment.telehealth_url = telehealth_join_url()
    return _save(appointment)


@transaction.atomic
def appointment_reschedule(
    *,
    appointment: Appointment,
    starts_at: datetime,
    ends_at: datetime,
    practitioner: Practitioner | None = None,
    actor: Any = None,
) -> Appointment:
    """Move an appointment (and optionally to another practitioner); it is booked again, unconfirmed."""
    if appointment.is_final:
        raise ValidationError(f"A {appointment.get_status_display().lower()} appointment cannot be rescheduled.")
    appointment.starts_at = starts_at
    appointment.ends_at = ends_at
    if practitioner is not None:
        appointment.practitioner = practitioner
    if appointment.status == AppointmentStatus.CONFIRMED:
        appointment.status = AppointmentStatus.BOOKED
    appointment.status_changed_at = timezone.now()
    appointment.status_changed_by = actor if getattr(actor, "is_authenticated", False) else None
    return _save(appointment)


@transaction.atomic
def appointment_set_status(*, appointment: Appointment, status: str, actor: Any = None) -> Appointment:
    """Move an appointment along its lifecycle; refuses transitions that make no sense."""
    if status == appointment.status:
        return appointment  # idempotent: a replayed confirmation changes nothing
    if not appointment.can_become(status):
        raise ValidationError(
            f"An appointment that is {appointment.get_status_display().lower()} cannot become "
            f"{AppointmentStatus(status).label.lower()}."
        )
    appointment.status = status
    appointment.status_changed_at = timezone.now()
    appointment.status_changed_by = actor if getattr(actor, "is_authenticated", False) else None
    appointment.full_clean()
    appointment.save(update_fields=["status", "status_changed_at", "status_changed_by", "updated_at"])
    return appointment


@transaction.atomic
def appointment_confirm(*, appointment: Appointment, actor: Any = None, via: str = "") -> Appointment:
    """Confirm, and remember when and how the patient did (analytics counts confirmed visits after
    check-in, when the status has moved on). `via` is a ConfirmedVia; staff by default."""
    appointment = appointment_set_status(appointment=appointment, status=AppointmentStatus.CONFIRMED, actor=actor)
    if appointment.confirmed_at is None:
        appointment.confirmed_at = appointment.status_changed_at or timezone.now()
        appointment.confirmed_via = via or ConfirmedVia.STAFF
        appointment.save(update_fields=["confirmed_at", "confirmed_via", "updated_at"])
    return appointment


def appointment_cancel(*, appointment: Appointment, actor: Any = None) -> Appointment:
    return appointment_set_status(appointment=appointment, status=AppointmentStatus.CANCELLED, actor=actor)


# -- Imports (FHIR): upserts keyed by the source system's ids ------------------------------------


@transaction.atomic
def practitioner_import_upsert(
    *, practitioner: Practitioner | None = None, display_name: str, npi: str = "", specialty: str = ""
) -> Practitioner:
    """Create a practitioner known from another system, or update the one given (matched by the caller).

    Validated with `full_clean()` (NPI unique per organization); raises ValidationError, nothing saved.
    """
    practitioner = practitioner if practitioner is not None else Practitioner()
    practitioner.display_name = display_name
    practitioner.npi = npi
    practitioner.specialty = specialty
    practitioner.full_clean()
    practitioner.save()
    return practitioner


@transaction.atomic
def appointment_import_upsert(
    *,
    appointment: Appointment | None = None,
    source_system: str,
    source_id: str,
    patient_id: int,
    practitioner_id: int,
    starts_at: datetime,
    ends_at: datetime,
    status: str,
    kind: str = AppointmentKind.IN_PERSON,
    reason: str = "",
    location_id: int | None = None,
) -> Appointment:
    """Create an appointment another system booked, or update the one given (its earlier import).

    A new one remembers its source (`source_system`, `source_id`) and, for telehealth, gets a join
    link of ours; an update keeps both. The status is the source's, not moved by our lifecycle.
    Validated with `full_clean()` (the double-booking check included); raises ValidationError,
    nothing saved.
    """
    if appointment is None:
        appointment = Appointment(source_system=source_system[:200], source_id=source_id)
        created = True
    else:
        created = False
    appointment.patient_id = patient_id
    appointment.practitioner_id = practitioner_id
    appointment.location_id = location_id
    appointment.starts_at = starts_at
    appointment.ends_at = ends_at
    appointment.status = status
    appointment.kind = kind
    appointment.reason = reason  # type: ignore[assignment]  # encrypted field: the stubs see the field class
    if created and appointment.kind == AppointmentKind.TELEHEALTH:
        appointment.telehealth_url = telehealth_join_url()
    return _save(appointment)
