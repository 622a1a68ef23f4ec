"""Writes on practitioners and appointments: validated, atomic, audited (django-auditlog, same
transaction). Other apps book, move and import through these.

What booking and moving refuse (ValidationError, nothing saved; the form shows the message):
a practitioner or a patient with another visit at that time, a start that has passed, a time outside
the location's opening hours. Imports refuse only the double bookings: history is imported as it was.
Status changes refuse a no-show before the visit starts and a check-in (or completion) before its day;
a cancellation or no-show keeps a coded reason (StatusReason).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from healthcrm.models import Location
from healthcrm.tenancy import require_current_organization
from patients.models import (
    ACTIVE_STATUSES,
    CANCEL_REASONS,
    NO_SHOW_REASONS,
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    ConfirmedVia,
    Patient,
    Practitioner,
    StatusReason,
)
from patients.scheduling.telehealth import telehealth_join_url

DOUBLE_BOOKED = "This practitioner already has an appointment at that time."
PATIENT_BUSY = "This patient already has an appointment at that time."
# The exclusion constraints' names, and what to say when the database refuses a race.
_RACES = {"appointment_no_double_booking": DOUBLE_BOOKED, "appointment_patient_no_overlap": PATIENT_BUSY}
REASONS_FOR: dict[str, frozenset[str]] = {
    AppointmentStatus.CANCELLED: CANCEL_REASONS,
    AppointmentStatus.NO_SHOW: NO_SHOW_REASONS,
}


def _zone_of(appointment: Appointment) -> ZoneInfo:
    """Where the visit happens: its location's zone, else the organization's (the clinic's)."""
    if appointment.location_id is not None and appointment.location is not None:
        return appointment.location.zone
    return require_current_organization().zone


def _when(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"


def _schedule_errors(appointment: Appointment, *, now: datetime | None) -> dict[str, list[str]]:
    """The rules a booking or a move must pass, as field errors. `now` None: imports (history) skip
    the past and opening-hours rules; the practitioner's and the patient's other visits are checked
    always."""
    errors: dict[str, list[str]] = {}
    starts, ends = appointment.starts_at, appointment.ends_at
    if starts is None or ends is None or ends <= starts:
        return errors  # full_clean says what is wrong with the times themselves
    if now is not None:
        if starts < now:
            zone = require_current_organization().zone
            errors.setdefault("starts_at", []).append(
                f"That time has passed: it is now {_when(now, zone)} ({zone.key}). Choose a later time."
            )
        elif appointment.location_id is not None and appointment.location is not None:
            closed = appointment.location.closed_reason(starts, ends)
            if closed:
                errors.setdefault("starts_at", []).append(closed)
    if appointment.status in ACTIVE_STATUSES:
        # Both double bookings at once, so the form says everything in one go (the exclusion
        # constraints check the same, and settle races).
        overlapping = Appointment.objects.filter(
            status__in=ACTIVE_STATUSES, starts_at__lt=ends, ends_at__gt=starts
        ).exclude(pk=appointment.pk)
        for field, message in (("practitioner_id", DOUBLE_BOOKED), ("patient_id", PATIENT_BUSY)):
            value = getattr(appointment, field)
            if value is not None and overlapping.filter(**{field: value}).exists():
                errors.setdefault("starts_at", []).append(message)
    return errors


def _save(appointment: Appointment, *, now: datetime | None) -> Appointment:
    """Check the scheduling rules, validate (`full_clean()`) and save; the database settles races."""
    errors = _schedule_errors(appointment, now=now)
    if errors:
        raise ValidationError(errors)
    appointment.full_clean()
    try:
        with transaction.atomic():
            appointment.save()
    except IntegrityError as exc:
        for constraint, message in _RACES.items():
            if constraint in str(exc):
                raise ValidationError({"starts_at": message}) from None
        raise
    return appointment


def appointment_status_refusal(appointment: Appointment, status: str, *, now: datetime | None = None) -> str | None:
    """Why `appointment` cannot become `status` now (a sentence), or None when it can.

    The lifecycle (STATUS_TRANSITIONS) and time: a no-show only once the visit has started, a
    check-in or completion only from the visit's day on (in the zone where it happens)."""
    now = now or timezone.now()
    if not appointment.can_become(status):
        return (
            f"An appointment that is {appointment.get_status_display().lower()} cannot become "
            f"{AppointmentStatus(status).label.lower()}."
        )
    zone = _zone_of(appointment)
    if status == AppointmentStatus.NO_SHOW and now < appointment.starts_at:
        return f"It is too early for a no-show: the visit starts {_when(appointment.starts_at, zone)} ({zone.key})."
    early = appointment.starts_at.astimezone(zone).date() > now.astimezone(zone).date()
    if status in (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED) and early:
        label = AppointmentStatus(status).label.lower()
        return f"A visit can be {label} from its day on: this one is on {_when(appointment.starts_at, zone)}."
    return None


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
    """Book an appointment. Raises ValidationError (nothing saved) on bad times, a double booking of
    the practitioner or the patient, a start that has passed, or a time the location is closed."""
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
    return _save(appointment, now=timezone.now())


@transaction.atomic
def appointment_reschedule(
    *,
    appointment: Appointment,
    starts_at: datetime,
    ends_at: datetime,
    practitioner: Practitioner | None = None,
    actor: Any = None,
) -> Appointment:
    """Move an appointment (and optionally to another practitioner); it is booked again, unconfirmed.
    The same rules as booking: the new time must be free for both, still to come, and open."""
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
    return _save(appointment, now=timezone.now())


@transaction.atomic
def appointment_set_status(
    *, appointment: Appointment, status: str, actor: Any = None, reason: str = ""
) -> Appointment:
    """Move an appointment along its lifecycle; refuses transitions that make no sense (see
    `appointment_status_refusal`). A cancellation or no-show stores `reason`, a StatusReason that
    fits it (CANCEL_REASONS, NO_SHOW_REASONS), "unknown" when none is given; other statuses take none."""
    if status == appointment.status:
        return appointment  # idempotent: a replayed confirmation changes nothing
    now = timezone.now()
    refusal = appointment_status_refusal(appointment, status, now=now)
    if refusal:
        raise ValidationError(refusal)
    allowed = REASONS_FOR.get(status)
    if allowed is None:
        if reason:
            raise ValidationError({"status_reason": "A reason is kept only for a cancellation or a no-show."})
    else:
        reason = reason or StatusReason.UNKNOWN
        if reason not in allowed:
            what = "cancellation" if status == AppointmentStatus.CANCELLED else "no-show"
            raise ValidationError({"status_reason": f"Choose a reason for the {what} from the list."})
    appointment.status = status
    appointment.status_reason = reason
    appointment.status_changed_at = now
    appointment.status_changed_by = actor if getattr(actor, "is_authenticated", False) else None
    appointment.full_clean()
    appointment.save(update_fields=["status", "status_reason", "status_changed_at", "status_changed_by", "updated_at"])
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


def appointment_cancel(*, appointment: Appointment, actor: Any = None, reason: str) -> Appointment:
    """Cancel, saying why (one of CANCEL_REASONS; a patient's own link says "patient_request")."""
    if not reason:
        raise ValidationError({"status_reason": "Choose why the visit is cancelled."})
    return appointment_set_status(
        appointment=appointment, status=AppointmentStatus.CANCELLED, actor=actor, reason=reason
    )


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
    History is imported as it was: a past visit, or one outside today's opening hours, is not
    refused; a double booking (of the practitioner or the patient) is. Validated with `full_clean()`;
    raises ValidationError, nothing saved.
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
    if appointment.status_reason not in REASONS_FOR.get(status, frozenset()):
        appointment.status_reason = ""  # the source moved it on (e.g. un-cancelled): our reason no longer fits
    appointment.kind = kind
    appointment.reason = reason  # type: ignore[assignment]  # encrypted field: the stubs see the field class
    if created and appointment.kind == AppointmentKind.TELEHEALTH:
        appointment.telehealth_url = telehealth_join_url()
    return _save(appointment, now=None)
