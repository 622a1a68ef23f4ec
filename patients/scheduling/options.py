"""An organization's scheduling options, in `Organization.settings["scheduling"]` (edited in the
admin with the other per-organization options):

    {"slot_minutes": 15, "waitlist_auto_offer": true, "waitlist_offers_at_once": 3}

- `slot_minutes`: the day grid's rows, the unit of an open slot, and a booking's default length
  (one of SLOT_LENGTHS; anything else falls back to 15).
- `waitlist_auto_offer`: when a booked visit is cancelled or moved, offer its time to the matching
  waitlist entries by message (first to confirm gets it). On by default.
- `waitlist_offers_at_once`: how many waiting patients one freed slot is offered to (first come
  first; 1 to 10, default 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SLOT_LENGTHS = (10, 15, 20, 30)
DEFAULT_SLOT_MINUTES = 15
MAX_OFFERS_AT_ONCE = 10


@dataclass(frozen=True)
class SchedulingOptions:
    slot_minutes: int = DEFAULT_SLOT_MINUTES
    waitlist_auto_offer: bool = True
    waitlist_offers_at_once: int = 3


def scheduling_options(organization: Any) -> SchedulingOptions:
    """The organization's options, defaults filled in and values out of range replaced."""
    raw = (organization.settings or {}).get("scheduling") if organization is not None else None
    if not isinstance(raw, dict):
        return SchedulingOptions()
    slot = raw.get("slot_minutes")
    at_once = raw.get("waitlist_offers_at_once")
    return SchedulingOptions(
        slot_minutes=slot if isinstance(slot, int) and slot in SLOT_LENGTHS else DEFAULT_SLOT_MINUTES,
        waitlist_auto_offer=raw.get("waitlist_auto_offer") is not False,
        waitlist_offers_at_once=(
            min(max(at_once, 1), MAX_OFFERS_AT_ONCE)
            if isinstance(at_once, int) and not isinstance(at_once, bool)
            else 3
        ),
    )
