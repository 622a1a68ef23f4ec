"""Writes on practitioners and appointments: validated, atomic, audited (django-auditlog, same
transaction). Other apps book, move and import through these.

What booking and moving refuse (ValidationError, nothing saved; the form shows the message):
a practitioner or a patient with another visit at that time, a start that has passed, a time outside
the location's opening hours, a time outside the practitioner's availability (patients/scheduling/
availability.py) unless the user overrides it on purpose and says why (kept on the appointment:
`availability_override`, `availability_override_reason`, both in its audit entry).
Imports refuse only the double bookings: history is imported as it was.
Status changes refuse a no-show before the visit starts and a check-in (or completion) before its day;
a cancellation or no-show keeps a coded reason (StatusReason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
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
    Availability,
    AvailabilityException,
    ConfirmedVia,
    ExceptionKind,
    Patient,
    Practitioner,
    StatusReason,
    WaitlistEntry,
    WaitlistStatus,
)
from patients.scheduling.availability import availability_refusal
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
        if starts >= now:
            _availability_errors(appointment, errors)
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


OVERRIDE_NEEDS_REASON = "Say why this visit is booked outside the practitioner's availability."


def _availability_errors(appointment: Appointment, errors: dict[str, list[str]]) -> None:
    """Outside availability: refused, unless overridden with a reason. An override that is not needed
    is dropped, so the flag marks only the visits that really are outside the hours."""
    refusal = availability_refusal(
        practitioner=appointment.practitioner,
        location=appointment.location if appointment.location_id is not None else None,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
    )
    reason = (appointment.availability_override_reason or "").strip()
    if refusal is None:
        appointment.availability_override = False
        appointment.availability_override_reason = ""  # type: ignore[assignment]  # encrypted field
    elif not appointment.availability_override:
        errors.setdefault("starts_at", []).append(refusal)
    elif not reason:
        errors.setdefault("availability_override_reason", []).append(OVERRIDE_NEEDS_REASON)
    else:
        appointment.availability_override_reason = reason  # type: ignore[assignment]  # encrypted field


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
    availability_override: bool = False,
    override_reason: str = "",
) -> Appointment:
    """Book an appointment. Raises ValidationError (nothing saved) on bad times, a double booking of
    the practitioner or the patient, a start that has passed, a time the location is closed, or a time
    outside the practitioner's availability without `availability_override` and an `override_reason`."""
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
        availability_override=availability_override,
        availability_override_reason=override_reason,
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
    availability_override: bool = False,
    override_reason: str = "",
) -> Appointment:
    """Move an appointment (and optionally to another practitioner); it is booked again, unconfirmed.
    The same rules as booking: the new time must be free for both, still to come, open, and inside
    the practitioner's availability (or overridden with a reason)."""
    if appointment.is_final:
        raise ValidationError(f"A {appointment.get_status_display().lower()} appointment cannot be rescheduled.")
    appointment.starts_at = starts_at
    appointment.ends_at = ends_at
    if practitioner is not None:
        appointment.practitioner = practitioner
    appointment.availability_override = availability_override
    appointment.availability_override_reason = override_reason  # type: ignore[assignment]  # encrypted field
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


# -- Series: one form books every N weeks -------------------------------------------------------


@dataclass
class SeriesResult:
    """What a series booking did: the visits booked, and each refused occurrence with why."""

    booked: list[Appointment] = field(default_factory=list)
    refused: list[tuple[datetime, list[str]]] = field(default_factory=list)


MAX_SERIES = 52


def series_starts(*, starts_at: datetime, every_weeks: int, count: int | None, until: date | None) -> list[datetime]:
    """The occurrences' starts: the same local wall time (organization zone) every N weeks, so a
    series keeps 09:00 across a DST change; at most `count` (and MAX_SERIES), none after `until`."""
    zone = require_current_organization().zone
    local = starts_at.astimezone(zone)
    limit = min(count or MAX_SERIES, MAX_SERIES)
    starts: list[datetime] = []
    for n in range(limit):
        day = local.date() + timedelta(weeks=every_weeks * n)
        if until is not None and day > until:
            break
        starts.append(datetime.combine(day, local.time().replace(fold=0), tzinfo=zone))
    return starts


def appointment_series_book(
    *,
    patient: Patient,
    practitioner: Practitioner,
    starts_at: datetime,
    ends_at: datetime,
    every_weeks: int,
    count: int | None = None,
    until: date | None = None,
    **booking: Any,
) -> SeriesResult:
    """Book a series. Each occurrence goes through `appointment_book` (every check, in its own
    savepoint): those refused (double booking, closed, outside availability, ...) are listed with the
    service's messages and not booked; the others are. Nothing is booked past a year or 52 visits."""
    if every_weeks < 1:
        raise ValidationError({"repeat": "Choose how often the visit repeats."})
    length = ends_at - starts_at
    result = SeriesResult()
    for start in series_starts(starts_at=starts_at, every_weeks=every_weeks, count=count, until=until):
        try:
            result.booked.append(
                appointment_book(
                    patient=patient, practitioner=practitioner, starts_at=start, ends_at=start + length, **booking
                )
            )
        except ValidationError as exc:
            result.refused.append((start, list(exc.messages)))
    return result


# -- Availability: weekly windows and a date's exceptions ----------------------------------------


def _lock_practitioner(practitioner: Practitioner) -> None:
    """Serialize availability writes of one practitioner, so two overlapping windows cannot both pass
    the overlap check (`Availability.clean`)."""
    Practitioner.objects.select_for_update().filter(pk=practitioner.pk).exists()


@transaction.atomic
def availability_add(
    *, practitioner: Practitioner, location: Location, weekday: int, start: time, end: time
) -> Availability:
    """A weekly window. Raises ValidationError (nothing saved) when it ends before it starts or
    overlaps another window of the practitioner that weekday (at any location)."""
    _lock_practitioner(practitioner)
    window = Availability(practitioner=practitioner, location=location, weekday=weekday, start=start, end=end)
    window.full_clean()
    window.save()
    return window


@transaction.atomic
def availability_remove(*, availability: Availability) -> None:
    availability.delete()


@transaction.atomic
def availability_exception_add(
    *,
    practitioner: Practitioner,
    date: date,
    kind: str = ExceptionKind.OFF,
    location: Location | None = None,
    start: time | None = None,
    end: time | None = None,
    note: str = "",
) -> AvailabilityException:
    """Time off (whole day, or start to end; at a location or everywhere) or extra hours at a location."""
    _lock_practitioner(practitioner)
    exception = AvailabilityException(
        practitioner=practitioner, date=date, kind=kind, location=location, start=start, end=end, note=note.strip()
    )
    exception.full_clean()
    exception.save()
    return exception


@transaction.atomic
def availability_exception_remove(*, exception: AvailabilityException) -> None:
    exception.delete()


# -- Waitlist ------------------------------------------------------------------------------------


@transaction.atomic
def waitlist_add(
    *,
    patient: Patient,
    earliest: date,
    latest: date | None = None,
    practitioner: Practitioner | None = None,
    location: Location | None = None,
    note: str = "",
) -> WaitlistEntry:
    """Put a patient on the waitlist (validated, audited)."""
    entry = WaitlistEntry(
        patient=patient,
        earliest=earliest,
        latest=latest,
        practitioner=practitioner,
        location=location,
        note=note.strip(),
    )
    entry.full_clean()
    entry.save()
    return entry


@transaction.atomic
def waitlist_close(*, entry: WaitlistEntry, appointment: Appointment | None = None) -> WaitlistEntry:
    """Take a waiting entry off the list: booked (with its visit, which must be the patient's) or removed."""
    if entry.status != WaitlistStatus.WAITING:
        raise ValidationError("This patient is no longer waiting.")
    if appointment is not None and appointment.patient_id != entry.patient_id:
        raise ValidationError("The visit is another patient's.")
    entry.status = WaitlistStatus.BOOKED if appointment is not None else WaitlistStatus.REMOVED
    entry.appointment = appointment
    entry.save(update_fields=["status", "appointment", "updated_at"])
    return entry


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
    appointment_type: str | None = None,
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
    if appointment_type:  # None: the source did not say (a new one keeps the model's default)
        appointment.appointment_type = appointment_type
    appointment.reason = reason  # type: ignore[assignment]  # encrypted field: the stubs see the field class
    if created and appointment.kind == AppointmentKind.TELEHEALTH:
        appointment.telehealth_url = telehealth_join_url()
    return _save(appointment, now=None)
