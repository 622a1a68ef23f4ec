"""Etiquette: quiet hours (DST-safe), SMS keywords, and retry backoff.

Pure functions: the delivery engine and the webhook call them.
"""

from __future__ import annotations

import random
import zoneinfo
from datetime import UTC, datetime, time, timedelta

# Carrier / CTIA keywords, matched on the whole message, any case, surrounding spaces ignored.
STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_KEYWORDS = frozenset({"START", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP"})
CONFIRM_KEYWORDS = frozenset({"C", "YES"})
RESCHEDULE_KEYWORDS = frozenset({"R"})


def keyword_of(body: str) -> str:
    """'stop' -> 'STOP'; the category of the message's single keyword, or '' for free text."""
    word = (body or "").strip().upper()
    if word in STOP_KEYWORDS:
        return "STOP"
    if word in START_KEYWORDS:
        return "START"
    if word in HELP_KEYWORDS:
        return "HELP"
    if word in CONFIRM_KEYWORDS:
        return "CONFIRM"
    if word in RESCHEDULE_KEYWORDS:
        return "RESCHEDULE"
    return ""


def _local(day: datetime, at: time, zone: zoneinfo.ZoneInfo) -> datetime:
    """The instant `at` o'clock on `day`'s date in `zone` (PEP 495, fold=0): a wall time skipped by
    a spring-forward (02:30) lands after the gap (03:30 new time); a repeated one (fall-back) takes
    its first occurrence."""
    return datetime.combine(day.date(), at).replace(tzinfo=zone, fold=0)


def next_allowed(when: datetime, zone: zoneinfo.ZoneInfo, start: time, end: time) -> datetime:
    """`when` if it falls inside the daily sending window [start, end) local time, else the next
    window's start (UTC). Windows that wrap midnight (start > end) are supported."""
    local = when.astimezone(zone)
    t = local.timetz().replace(tzinfo=None)
    if start == end:
        return when  # no quiet hours
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if inside:
        return when
    if start < end and t < start:
        candidate = _local(local, start, zone)
    elif start < end:
        candidate = _local(local + timedelta(days=1), start, zone)
    else:  # wrapping window, we are in [end, start)
        candidate = _local(local, start, zone)
    return candidate.astimezone(UTC)


def backoff(attempt: int, *, base: float = 30.0, cap: float = 3600.0, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with "equal jitter": uniform(c/2, c), c = min(cap, base * 2**(attempt-1))."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))
