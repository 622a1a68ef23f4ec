"""When practitioners can be booked: their weekly windows and a date's exceptions, loaded once and
asked many times without further queries (the booking service asks once, the day view per slot).

Rules (the same for the service and the grid, so a slot shown bookable is one the service accepts):
- Time off (an "off" exception on the visit's date, everywhere or at the visit's location, the whole
  day or overlapping the visit) always refuses.
- A practitioner with no weekly window and no extra hours is not restricted otherwise (as before
  availability existed).
- Otherwise the visit must lie inside one window of its local day: a weekly window of that weekday
  or extra hours of that date, at the visit's location (any location for a visit without one).
Local times are the location's zone (the organization's without a location), as opening hours.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from healthcrm.models import Location
from healthcrm.tenancy import require_current_organization
from patients.models import Availability, AvailabilityException, ExceptionKind, Practitioner, Weekday

END_OF_DAY = 24 * 60
OVERRIDE_HINT = "tick “Book outside availability” and say why"


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _clock(minutes: int) -> str:
    return "24:00" if minutes >= END_OF_DAY else f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Window:
    location_id: int | None
    start: int  # minutes since local midnight
    end: int
    note: str = ""

    def holds(self, first: int, last: int) -> bool:
        return self.start <= first and last <= self.end

    def overlaps(self, first: int, last: int) -> bool:
        return self.start < last and first < self.end

    @property
    def span(self) -> str:
        return f"{_clock(self.start)}–{_clock(self.end)}"


class AvailabilityBook:
    """The windows of some practitioners over some dates, in two queries."""

    def __init__(self, practitioner_ids: Iterable[int] | None, first: date, last: date) -> None:
        weekly = Availability.objects.all()
        exceptions = AvailabilityException.objects.filter(
            date__gte=first - timedelta(days=1), date__lte=last + timedelta(days=1)
        )
        if practitioner_ids is not None:
            ids = list(practitioner_ids)
            weekly = weekly.filter(practitioner_id__in=ids)
            exceptions = exceptions.filter(practitioner_id__in=ids)
        self.weekly: dict[tuple[int, int], list[Window]] = defaultdict(list)
        self.locations_of: dict[int, set[int]] = defaultdict(set)
        for row in weekly:
            window = Window(row.location_id, _minutes(row.start), _minutes(row.end))
            self.weekly[(row.practitioner_id, row.weekday)].append(window)
            self.locations_of[row.practitioner_id].add(row.location_id)
        self.extra: dict[tuple[int, date], list[Window]] = defaultdict(list)
        self.off: dict[tuple[int, date], list[Window]] = defaultdict(list)
        for exc in exceptions:
            start = _minutes(exc.start) if exc.start is not None else 0
            end = _minutes(exc.end) if exc.end is not None else END_OF_DAY
            window = Window(exc.location_id, start, end, exc.note)
            if exc.kind == ExceptionKind.EXTRA:
                self.extra[(exc.practitioner_id, exc.date)].append(window)
                if exc.location_id is not None:
                    self.locations_of[exc.practitioner_id].add(exc.location_id)
            else:
                self.off[(exc.practitioner_id, exc.date)].append(window)
        # Restricted: some weekly window or extra hours (queried, not only in the loaded dates).
        restricted = Availability.objects.all()
        extra = AvailabilityException.objects.filter(kind=ExceptionKind.EXTRA)
        if practitioner_ids is not None:
            restricted = restricted.filter(practitioner_id__in=ids)
            extra = extra.filter(practitioner_id__in=ids)
        self.restricted: set[int] = set(restricted.values_list("practitioner_id", flat=True)) | set(
            extra.values_list("practitioner_id", flat=True)
        )

    def works_at(self, practitioner_id: int, location_id: int) -> bool:
        """Whether a practitioner belongs in a location's column: unrestricted, or has hours there."""
        return practitioner_id not in self.restricted or location_id in self.locations_of[practitioner_id]

    def windows(self, practitioner_id: int, day: date, location_id: int | None) -> list[Window]:
        """The bookable windows of a local day at a location (any location for None), sorted."""
        found = self.weekly.get((practitioner_id, day.weekday()), []) + self.extra.get((practitioner_id, day), [])
        return sorted((w for w in found if location_id is None or w.location_id == location_id), key=lambda w: w.start)

    def refusal(
        self, practitioner: Practitioner, location: Location | None, starts_at: datetime, ends_at: datetime
    ) -> str | None:
        """None when the visit fits the practitioner's availability, else a sentence for the form."""
        zone: ZoneInfo = location.zone if location is not None else require_current_organization().zone
        start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
        day = start.date()
        first = _minutes(start.time())
        last = (end.date() - day).days * END_OF_DAY + _minutes(end.time())
        location_id = location.pk if location is not None else None
        when = f"{start:%a} {day.day} {start:%b %Y}"
        for off in self.off.get((practitioner.pk, day), []):
            if (off.location_id is None or off.location_id == location_id) and off.overlaps(first, last):
                hours = "" if (off.start, off.end) == (0, END_OF_DAY) else f" {off.span}"
                note = f" ({off.note})" if off.note else ""
                return (
                    f"{practitioner.display_name} is off{hours} on {when}{note}: choose another time, "
                    f"or {OVERRIDE_HINT}."
                )
        if practitioner.pk not in self.restricted:
            return None
        windows = self.windows(practitioner.pk, day, location_id)
        if any(w.holds(first, last) for w in windows):
            return None
        where = f" at {location.name}" if location is not None else ""
        if not windows:
            return (
                f"{practitioner.display_name} does not see patients{where} on {when} ({zone.key}): "
                f"choose another day, or {OVERRIDE_HINT}."
            )
        hours = ", ".join(w.span for w in windows)
        return (
            f"{practitioner.display_name} sees patients{where} {hours} on {Weekday(day.weekday()).label}s "
            f"({zone.key}): choose a time inside those hours, or {OVERRIDE_HINT}."
        )


def availability_refusal(
    *, practitioner: Practitioner, location: Location | None, starts_at: datetime, ends_at: datetime
) -> str | None:
    """Why the visit is outside the practitioner's availability (a sentence), or None."""
    zone = location.zone if location is not None else require_current_organization().zone
    day = starts_at.astimezone(zone).date()
    book = AvailabilityBook([practitioner.pk], day, day)
    return book.refusal(practitioner, location, starts_at, ends_at)
