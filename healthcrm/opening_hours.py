"""A location's opening hours: the stored shape, its validation, and whether a visit fits in them.

Stored as JSON on `Location.opening_hours`, in the location's local time:

    {"mon": [["08:00", "12:00"], ["13:00", "18:00"]], "tue": [["08:00", "18:00"]], "sat": []}

An empty value means no restriction (every location before opening hours existed). Otherwise a day
that is missing or has no intervals is closed. Times are "HH:MM" on a 24-hour clock; "24:00" may
close a day. An interval never crosses midnight: a visit must fit inside one interval of its day.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
DAY_NAMES = {
    day: f"{name}s"
    for day, name in zip(
        DAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True
    )
}
END_OF_DAY = 24 * 60

Intervals = list[tuple[int, int]]  # minutes since local midnight, [open, close)


def _minutes(value: Any, *, closing: bool) -> int:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise ValueError
    hours, minutes = int(value[:2]), int(value[3:])
    if closing and (hours, minutes) == (24, 0):
        return END_OF_DAY
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValueError
    return hours * 60 + minutes


def parse_opening_hours(value: Any) -> dict[str, Intervals]:
    """The hours as minutes per day, sorted; raises ValidationError naming what is wrong."""
    if value in (None, "", {}):
        return {}
    if not isinstance(value, dict):
        raise ValidationError('Opening hours are an object of days, e.g. {"mon": [["08:00", "18:00"]]}.')
    unknown = sorted(str(key) for key in value if key not in DAYS)
    if unknown:
        raise ValidationError(
            "Unknown day %(days)s: use mon, tue, wed, thu, fri, sat, sun.", params={"days": ", ".join(unknown)}
        )
    parsed: dict[str, Intervals] = {}
    for day in DAYS:
        intervals = value.get(day) or []
        if not isinstance(intervals, list):
            raise ValidationError("%(day)s: give a list of [open, close] pairs.", params={"day": day})
        spans: Intervals = []
        for pair in intervals:
            try:
                if not isinstance(pair, list | tuple) or len(pair) != 2:
                    raise ValueError
                start, end = _minutes(pair[0], closing=False), _minutes(pair[1], closing=True)
            except ValueError:
                raise ValidationError(
                    '%(day)s: each interval is ["HH:MM", "HH:MM"] on a 24-hour clock, e.g. ["08:00", "18:00"].',
                    params={"day": day},
                ) from None
            if start >= end:
                raise ValidationError(
                    "%(day)s: %(open)s–%(close)s closes before it opens (an interval cannot cross midnight).",
                    params={"day": day, "open": pair[0], "close": pair[1]},
                )
            spans.append((start, end))
        spans.sort()
        for (_, first_end), (second_start, _) in zip(spans, spans[1:], strict=False):
            if second_start < first_end:
                raise ValidationError("%(day)s: intervals overlap.", params={"day": day})
        parsed[day] = spans
    return parsed


def validate_opening_hours(value: Any) -> None:
    """Model field validator (the admin's form shows its message)."""
    parse_opening_hours(value)


def _clock(minutes: int) -> str:
    return "24:00" if minutes == END_OF_DAY else time(minutes // 60, minutes % 60).strftime("%H:%M")


def describe_day(intervals: Intervals) -> str:
    return ", ".join(f"{_clock(start)}–{_clock(end)}" for start, end in intervals)


def closed_reason(value: Any, *, starts_at: datetime, ends_at: datetime, zone: ZoneInfo, name: str) -> str | None:
    """None when [starts_at, ends_at) lies inside one interval of the day it starts on (local time in
    `zone`), or no hours are set; otherwise a sentence for the person booking."""
    hours = parse_opening_hours(value)
    if not hours:
        return None
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    day = DAYS[start.weekday()]
    intervals = hours[day]
    if not intervals:
        return f"{name} is closed on {DAY_NAMES[day]}."
    first = start.hour * 60 + start.minute
    # A visit ending exactly at midnight ends at minute 1440 of its day.
    last = END_OF_DAY if end.date() > start.date() and end.time() == time.min else end.hour * 60 + end.minute
    if end.date() > start.date() and last != END_OF_DAY:
        last = END_OF_DAY + 1  # runs past midnight: never inside a day's interval
    if any(open_ <= first and last <= close for open_, close in intervals):
        return None
    opened = describe_day(intervals)
    return f"{name} is open {opened} on {DAY_NAMES[day]} ({zone.key}): choose a time inside those hours."
