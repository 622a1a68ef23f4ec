"""The wall clocks the suite runs under, and which tests run under which (see tests/conftest.py).

No test in this process sees the real date or hour: a test runs under every clock in WALL_CLOCKS when
its outcome can depend on the hour, day or zone (engagement: quiet hours, caps, reminders, recalls;
scheduling; care-task due dates), and under DEFAULT_CLOCK otherwise. Tests that run code in another
process (a real Celery worker, Chromium against the live server) cannot be frozen there: they are
left on the real clock and must be written so that the hour does not matter (tests/test_clock_guard.py
checks that every clock read they make says why with a `# real-clock:` comment).

Every clock ticks (time_machine.travel(..., tick=True)): time starts at the destination and goes on,
so timeouts, retries and "now + 1 s" behave as in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from zoneinfo import ZoneInfo

CHICAGO = ZoneInfo("America/Chicago")

# Instants in UTC (a ZoneInfo destination would also move the process's own zone, which stays UTC as
# in production); named by their local time in organization A's zone, America/Chicago.
WALL_CLOCKS: dict[str, datetime] = {
    # Night in Chicago (08:00 UTC the same day): inside most quiet hours.
    "chicago-0200": datetime(2026, 6, 16, 2, 0, tzinfo=CHICAGO).astimezone(UTC),
    # Late evening in Chicago, already tomorrow in UTC (04:30 UTC): "today" differs by zone.
    "chicago-2330": datetime(2026, 6, 16, 23, 30, tzinfo=CHICAGO).astimezone(UTC),
    # Half an hour before the spring-forward jump (02:00 CST -> 03:00 CDT on 2026-03-08): the local
    # day has 23 hours and 02:30 does not exist.
    "chicago-dst": datetime(2026, 3, 8, 1, 30, tzinfo=CHICAGO).astimezone(UTC),
}
DEFAULT_CLOCK = "chicago-2330"

TESTS = Path(__file__).resolve().parent

# Test modules (paths relative to tests/) run under every clock in WALL_CLOCKS.
EVERY_CLOCK = (
    "engagement/*.py",  # fnmatch's * crosses folders: sub-packages too
    "patients/test_scheduling*.py",
    "patients/scheduling/*.py",
    "patients/test_care*.py",
)

# Markers of tests whose code under test runs in another process, on the real clock.
REAL_CLOCK_MARKERS = frozenset({"browser", "worker"})


def clocks_for(path: Path | str, markers: set[str] | frozenset[str]) -> tuple[str, ...]:
    """The clock names a test in `path` with `markers` runs under; () for the real clock."""
    if markers & REAL_CLOCK_MARKERS:
        return ()
    relative = Path(path).resolve().relative_to(TESTS).as_posix()
    if any(fnmatch(relative, pattern) for pattern in EVERY_CLOCK):
        return tuple(WALL_CLOCKS)
    return (DEFAULT_CLOCK,)
