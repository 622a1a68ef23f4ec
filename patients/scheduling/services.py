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
from django.db.models import Q
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
    OfferStatus,
    Patient,
    Practitioner,
    SlotOffer,
    SlotOfferStatus,
    StatusReason,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from patients.scheduling.availability import availability_refusal
from patients.scheduling.options import scheduling_options
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
    freed: dict[str, Any] = {
        "practitioner": appointment.practitioner,
        "location": appointment.location if appointment.location_id is not None else None,
        "starts_at": appointment.starts_at,
        "ends_at": appointment.ends_at,
        "kind": appointment.kind,
        "appointment_type": appointment.appointment_type,
    }
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
    _save(appointment, now=timezone.now())
    if (freed["starts_at"], freed["ends_at"], freed["practitioner"].pk) != (
        appointment.starts_at,
        appointment.ends_at,
        appointment.practitioner_id,
    ):
        waitlist_offers_make(freed_from=appointment, **freed)
    return appointment


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
    if status == AppointmentStatus.CANCELLED:
        waitlist_offers_make(
            practitioner=appointment.practitioner,
            location=appointment.location if appointment.location_id is not None else None,
            starts_at=appointment.starts_at,
            ends_at=appointment.ends_at,
            kind=appointment.kind,
            appointment_type=appointment.appointment_type,
            freed_from=appointment,
        )
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


# -- Waitlist offers: a freed slot offered by message, the first to confirm gets it ----------------


def _offer_candidates(slot: SlotOffer, *, exclude_patient_id: int | None, limit: int) -> list[WaitlistEntry]:
    """The waiting entries that fit the slot, first come first, one per patient: the slot's local day
    inside their window, its practitioner (or anyone) and location (or anywhere), the patient active
    and free at that time."""
    zone = slot.location.zone if slot.location is not None else require_current_organization().zone
    day = slot.starts_at.astimezone(zone).date()
    busy = Appointment.objects.filter(
        status__in=ACTIVE_STATUSES, starts_at__lt=slot.ends_at, ends_at__gt=slot.starts_at
    ).values("patient_id")
    entries = (
        WaitlistEntry.objects.filter(status=WaitlistStatus.WAITING, patient__is_active=True, earliest__lte=day)
        .filter(Q(latest__isnull=True) | Q(latest__gte=day))
        .filter(Q(practitioner__isnull=True) | Q(practitioner_id=slot.practitioner_id))
        .filter(Q(location__isnull=True) | Q(location_id=slot.location_id) if slot.location_id else Q(location=None))
        .exclude(patient_id__in=busy)
        .select_related("patient")
        .order_by("created_at", "id")
    )
    if exclude_patient_id is not None:
        entries = entries.exclude(patient_id=exclude_patient_id)
    chosen: list[WaitlistEntry] = []
    seen: set[int] = set()
    for entry in entries[: limit * 5]:
        if entry.patient_id not in seen:
            seen.add(entry.patient_id)
            chosen.append(entry)
        if len(chosen) == limit:
            break
    return chosen


def waitlist_offers_make(
    *,
    practitioner: Practitioner,
    location: Location | None,
    starts_at: datetime,
    ends_at: datetime,
    kind: str = AppointmentKind.IN_PERSON,
    appointment_type: str = "follow_up",
    freed_from: Appointment | None = None,
) -> list[WaitlistOffer]:
    """Offer a freed time to the waitlist, when the organization offers automatically
    (`scheduling_options`): the first `waitlist_offers_at_once` matching entries each get an offer,
    and outreach (listening to `waitlist_offered`, in this transaction) queues their messages.
    Nothing for a time that has started or that the practitioner is busy at again. Called by the
    services that free a slot (cancel, reschedule); audited."""
    from patients.signals import waitlist_offered

    organization = require_current_organization()
    options = scheduling_options(organization)
    if not options.waitlist_auto_offer or starts_at <= timezone.now():
        return []
    taken = Appointment.objects.filter(
        practitioner=practitioner, status__in=ACTIVE_STATUSES, starts_at__lt=ends_at, ends_at__gt=starts_at
    )
    if taken.exists():
        return []
    slot = SlotOffer(
        practitioner=practitioner,
        location=location,
        kind=kind,
        appointment_type=appointment_type,
        starts_at=starts_at,
        ends_at=ends_at,
        freed_from=freed_from,
    )
    entries = _offer_candidates(
        slot,
        exclude_patient_id=freed_from.patient_id if freed_from is not None else None,
        limit=options.waitlist_offers_at_once,
    )
    if not entries:
        return []
    slot.full_clean()
    slot.save()
    offers = []
    for entry in entries:
        offer = WaitlistOffer(slot=slot, entry=entry)
        offer.save()
        offers.append(offer)
    waitlist_offered.send(
        sender=WaitlistOffer, organization_id=organization.pk, offer_ids=tuple(offer.pk for offer in offers)
    )
    return offers


class _SlotGone(Exception):
    """Another patient's claim took the slot first (the conditional UPDATE touched no row)."""


def _respond(offer: WaitlistOffer, status: str, now: datetime) -> None:
    offer.status = status
    offer.responded_at = now
    offer.save(update_fields=["status", "responded_at", "updated_at"])


@transaction.atomic
def waitlist_offer_claim(*, offer: WaitlistOffer, now: datetime | None = None) -> str:
    """A patient confirms an offer: book the slot for them, unless someone was first.

    The slot moves from open to taken by a conditional UPDATE that touches its row for exactly one
    claimer: a concurrent claim (another patient's, or a double click) blocks on that row until the
    first commits, then finds it taken. The booking goes through `appointment_book` in the same
    savepoint, so a refused booking (the time was given away meanwhile) leaves the slot untaken. No
    other row is locked before the slot's, so claimers cannot deadlock. Returns "taken" (this patient
    has the visit, now or from an earlier click), "missed" (someone else has it), "expired" (it has
    started, or is gone), "closed" (this patient is no longer waiting) or "busy" (this patient has
    another visit then)."""
    now = now or timezone.now()
    offer = WaitlistOffer.objects.select_related(
        "slot", "slot__practitioner", "slot__location", "entry", "entry__patient"
    ).get(pk=offer.pk)
    slot = offer.slot
    if offer.status != OfferStatus.OFFERED:
        return str(offer.status)
    if slot.status == SlotOfferStatus.TAKEN:
        _respond(offer, OfferStatus.MISSED, now)
        return "missed"
    if slot.status == SlotOfferStatus.EXPIRED or slot.starts_at <= now:
        _respond(offer, OfferStatus.EXPIRED, now)
        return "expired"
    if offer.entry.status != WaitlistStatus.WAITING:
        return "closed"
    try:
        with transaction.atomic():
            won = SlotOffer.objects.filter(pk=slot.pk, status=SlotOfferStatus.OPEN, starts_at__gt=now).update(
                status=SlotOfferStatus.TAKEN, taken_at=now, updated_at=now
            )
            if won != 1:
                raise _SlotGone
            appointment = appointment_book(
                patient=offer.entry.patient,
                practitioner=slot.practitioner,
                location=slot.location,
                kind=slot.kind,
                appointment_type=slot.appointment_type,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
            )
    except _SlotGone:
        offer.refresh_from_db(fields=["status", "responded_at"])
        if offer.status == OfferStatus.TAKEN:
            return "taken"  # this patient's own earlier click won
        _respond(offer, OfferStatus.MISSED, now)
        return "missed"
    except ValidationError as exc:
        if PATIENT_BUSY in exc.messages:
            return "busy"  # this patient's problem, not the slot's: it stays open for the others
        # The time was given away or closed meanwhile: nobody can take it through the offer.
        slot.status = SlotOfferStatus.EXPIRED
        slot.save(update_fields=["status", "updated_at"])
        _respond(offer, OfferStatus.EXPIRED, now)
        return "expired"
    slot.status = SlotOfferStatus.TAKEN
    slot.taken_at = now
    slot.appointment = appointment
    slot.save(update_fields=["status", "taken_at", "appointment", "updated_at"])
    _respond(offer, OfferStatus.TAKEN, now)
    for other in WaitlistOffer.objects.filter(slot=slot, status=OfferStatus.OFFERED).exclude(pk=offer.pk):
        _respond(other, OfferStatus.MISSED, now)
    waitlist_close(entry=offer.entry, appointment=appointment)
    return "taken"


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
