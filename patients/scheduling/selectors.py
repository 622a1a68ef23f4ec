"""Reads on practitioners and appointments, always within the current organization."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest

from compliance.guards import get_object_for_user
from healthcrm.models import Location
from patients.models import (
    ACTIVE_STATUSES,
    Appointment,
    Patient,
    Practitioner,
    SlotOffer,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from patients.scheduling.availability import AvailabilityBook
from patients.scheduling.options import DEFAULT_SLOT_MINUTES

# The default slot length: the day view's rows, and the unit of an empty slot one can book. Each
# organization chooses its own (`scheduling_options(organization).slot_minutes`: 10, 15, 20 or 30).
SLOT_MINUTES = DEFAULT_SLOT_MINUTES
# Rows always shown (local time) even when nothing is open or booked: a working day.
DAY_SHOWN = (time(8, 0), time(18, 0))


def practitioner_get_by_npi(*, npi: str) -> Practitioner | None:
    """The organization's practitioner with this NPI (unique per organization), or None."""
    if not npi:
        return None
    return Practitioner.objects.filter(npi=npi).first()


def appointment_calendar(
    *, start: datetime, end: datetime, practitioner: Practitioner | None = None, location: Location | None = None
) -> list[Appointment]:
    """Appointments starting in [start, end), with what the calendar shows, in two queries at most."""
    appointments = Appointment.objects.filter(starts_at__gte=start, starts_at__lt=end).select_related(
        "patient", "practitioner", "location"
    )
    if practitioner is not None:
        appointments = appointments.filter(practitioner=practitioner)
    if location is not None:
        appointments = appointments.filter(location=location)
    return list(appointments.order_by("starts_at", "id"))


def appointment_list_for_patient(*, patient: Patient, limit: int | None = None) -> QuerySet[Appointment]:
    """The patient's appointments, newest first (a queryset: paginate it, or give a limit)."""
    appointments = (
        Appointment.objects.filter(patient=patient).select_related("practitioner", "location").order_by("-starts_at")
    )
    return appointments[:limit] if limit else appointments


def get_appointment_for_user(request: HttpRequest, pk: object, perm: str = "patients.view_appointment") -> Appointment:
    """The guarded fetch for appointments: 404 across organizations, 403 without `perm`."""
    queryset = Appointment.objects.select_related("patient", "practitioner", "location", "status_changed_by")
    return get_object_for_user(request, queryset, pk, perm)


def get_practitioner_for_user(
    request: HttpRequest, pk: object, perm: str = "patients.view_practitioner"
) -> Practitioner:
    """The guarded fetch for practitioners: 404 across organizations, 403 without `perm`."""
    return get_object_for_user(request, Practitioner.objects.all(), pk, perm)


def get_location_for_user(request: HttpRequest, pk: object, perm: str = "healthcrm.view_location") -> Location:
    """The guarded fetch for locations: 404 across organizations, 403 without `perm`."""
    return get_object_for_user(request, Location.objects.all(), pk, perm)


# -- Day view: a time grid of practitioners' visits and bookable empty slots ----------------------


@dataclass
class Cell:
    """One practitioner's slot: "visit" (its appointments, spanning `rowspan` rows), "covered" (a
    row under a visit: no cell), "open" (bookable now) or "closed"."""

    state: str
    practitioner: Practitioner
    starts_at: datetime
    appointments: list[Appointment] = field(default_factory=list)
    rowspan: int = 1


@dataclass
class Row:
    starts_at: datetime  # in the organization's zone
    label: str
    cells: list[Cell]


@dataclass
class DayGrid:
    columns: list[Practitioner]
    rows: list[Row]
    appointments: list[Appointment]


def day_columns(*, day: date, location: Location | None, practitioner: Practitioner | None) -> list[Practitioner]:
    """The day view's columns: one practitioner, or the active ones who work at the location (no
    hours set: everywhere), or all active ones."""
    if practitioner is not None:
        return [practitioner]
    everyone = list(Practitioner.objects.filter(is_active=True).order_by("display_name", "id"))
    if location is None:
        return everyone
    book = AvailabilityBook([p.pk for p in everyone], day, day)
    return [p for p in everyone if book.works_at(p.pk, location.pk)]


def day_grid(
    *,
    day: date,
    zone: ZoneInfo,
    columns: list[Practitioner],
    location: Location | None,
    now: datetime,
    slot_minutes: int = SLOT_MINUTES,
) -> DayGrid:
    """The local day `day` in `zone` cut into slots of `slot_minutes` (the organization's slot
    length; DST-correct: a 23- or 25-hour day has 92 or 100 quarter hours), each practitioner's
    active visits placed in them, and each empty slot marked open when the booking service
    would accept a visit of one slot there: still to come, the location open, the practitioner
    available at the location and free. Four queries whatever the size."""
    step = timedelta(minutes=slot_minutes)
    first = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    last = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    slots: list[datetime] = []
    moment = first
    while moment < last:
        slots.append(moment)
        moment += step
    ids = [p.pk for p in columns]
    appointments = list(
        Appointment.objects.filter(
            practitioner_id__in=ids, status__in=ACTIVE_STATUSES, starts_at__lt=last, ends_at__gt=first
        )
        .select_related("patient", "practitioner", "location")
        .order_by("starts_at", "id")
    )
    busy: dict[tuple[int, int], list[Appointment]] = {}
    for appointment in appointments:
        for index, start in enumerate(slots):
            if start < appointment.ends_at and appointment.starts_at < start + step:
                busy.setdefault((appointment.practitioner_id, index), []).append(appointment)
    book = AvailabilityBook(ids, day, day)
    bookable: set[tuple[int, int]] = set()
    for index, start in enumerate(slots):
        if start < now or (location is not None and location.closed_reason(start, start + step)):
            continue
        for practitioner in columns:
            if (practitioner.pk, index) in busy:
                continue
            if book.refusal(practitioner, location, start, start + step) is None:
                bookable.add((practitioner.pk, index))
    # Rows: the working day, widened to every visit and to the open slots that some hours decide (the
    # practitioner's or the location's): with neither set, every hour is open, and midnight is not news.
    hours_set = {p for p in ids if p in book.restricted} if not (location and location.opening_hours) else set(ids)
    shown = [
        i
        for i, start in enumerate(slots)
        if DAY_SHOWN[0] <= start.astimezone(zone).time() < DAY_SHOWN[1]
        or any((p, i) in busy or (p in hours_set and (p, i) in bookable) for p in ids)
    ]
    rows: list[Row] = []
    if not shown:
        return DayGrid(columns, rows, appointments)
    lo, hi = shown[0], shown[-1]
    folds = len({s.astimezone(zone).utcoffset() for s in slots}) > 1  # a DST change today: say the offset
    placed: dict[tuple[int, int], Cell] = {}
    for index in range(lo, hi + 1):
        local = slots[index].astimezone(zone)
        label = f"{local:%H:%M}" + (f" {local:%Z}" if folds else "")
        cells: list[Cell] = []
        for practitioner in columns:
            key = (practitioner.pk, index)
            here = busy.get(key)
            if here:
                above = placed.get((practitioner.pk, index - 1))
                if above is not None and index > lo and any(a in above.appointments for a in here):
                    # Continues the visit above: that cell grows, this row has none for the practitioner.
                    for appointment in here:
                        if appointment not in above.appointments:
                            above.appointments.append(appointment)
                    above.rowspan += 1
                    placed[key] = above
                    cells.append(Cell("covered", practitioner, local))
                    continue
                cell = Cell("visit", practitioner, local, appointments=list(here))
                placed[key] = cell
                cells.append(cell)
            else:
                cells.append(Cell("open" if key in bookable else "closed", practitioner, local))
        rows.append(Row(local, label, cells))
    return DayGrid(columns, rows, appointments)


# -- Month view: visits per local day -------------------------------------------------------------


@dataclass
class MonthDay:
    day: date
    count: int
    in_month: bool


def month_grid(
    *, month: date, zone: ZoneInfo, practitioner: Practitioner | None = None, location: Location | None = None
) -> list[list[MonthDay]]:
    """Weeks (Monday first) covering `month`'s month, each day with its number of active visits
    (counted by local day in `zone`), in one query."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    start = first - timedelta(days=first.weekday())
    end = following + timedelta(days=(7 - following.weekday()) % 7)
    visits = Appointment.objects.filter(
        status__in=ACTIVE_STATUSES,
        starts_at__gte=datetime.combine(start, time.min, tzinfo=zone),
        starts_at__lt=datetime.combine(end, time.min, tzinfo=zone),
    )
    if practitioner is not None:
        visits = visits.filter(practitioner=practitioner)
    if location is not None:
        visits = visits.filter(location=location)
    counts = dict(
        visits.annotate(day=TruncDate("starts_at", tzinfo=zone))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    weeks: list[list[MonthDay]] = []
    day = start
    while day < end:
        weeks.append(
            [MonthDay(d, counts.get(d, 0), d.month == first.month) for d in (day + timedelta(days=n) for n in range(7))]
        )
        day += timedelta(days=7)
    return weeks


# -- Waitlist -------------------------------------------------------------------------------------


def waitlist_for_day(
    *, day: date | None = None, practitioner: Practitioner | None = None, location: Location | None = None
) -> QuerySet[WaitlistEntry]:
    """Patients waiting (first come first), for a day when given (its date inside their window) and
    a practitioner or a location when given (entries for anyone or anywhere match too)."""
    entries = WaitlistEntry.objects.filter(status=WaitlistStatus.WAITING).select_related(
        "patient", "practitioner", "location"
    )
    if day is not None:
        entries = entries.filter(earliest__lte=day).filter(Q(latest__isnull=True) | Q(latest__gte=day))
    if practitioner is not None:
        entries = entries.filter(Q(practitioner__isnull=True) | Q(practitioner=practitioner))
    if location is not None:
        entries = entries.filter(Q(location__isnull=True) | Q(location=location))
    return entries.order_by("created_at", "id")


def get_waitlist_entry_for_user(
    request: HttpRequest, pk: object, perm: str = "patients.view_appointment"
) -> WaitlistEntry:
    """The guarded fetch for waitlist entries (scheduling's permission): 404 across organizations."""
    return get_object_for_user(request, WaitlistEntry.objects.select_related("patient"), pk, perm)


def waitlist_offer_get(pk: object) -> WaitlistOffer | None:
    """One offer with its slot (for the patient's link page), or None."""
    return (
        WaitlistOffer.objects.filter(pk=pk)
        .select_related("slot", "slot__location", "slot__practitioner", "entry")
        .first()
    )


def waitlist_latest_offers(entries: list[WaitlistEntry]) -> dict[int, WaitlistOffer]:
    """Each entry's newest offer (with its slot), in one query: what the waitlist page shows."""
    latest: dict[int, WaitlistOffer] = {}
    offers = (
        WaitlistOffer.objects.filter(entry_id__in=[e.pk for e in entries])
        .select_related("slot")
        .order_by("entry_id", "-created_at", "-id")
    )
    for offer in offers:
        latest.setdefault(offer.entry_id, offer)
    return latest


def slot_offers_recent(*, since: datetime, limit: int = 50) -> list[SlotOffer]:
    """Freed slots offered to the waitlist that start from `since` on (soonest first), each with its
    offers and their patients (prefetched: three queries)."""
    return list(
        SlotOffer.objects.filter(starts_at__gte=since)
        .select_related("practitioner", "location")
        .prefetch_related("offers__entry__patient")
        .order_by("starts_at", "id")[:limit]
    )
