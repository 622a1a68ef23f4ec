"""What patients do with what they were sent: engagement events (opened, answered), once per
message and kind; later occurrences counted.

Any content a message carries records here (education pages now; questionnaires answer with
kind "answered"), and engagement.selectors.engagement_events lists them generically.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F

from engagement.models import EngagementEvent, OutboundMessage


def engagement_event_record(*, message: OutboundMessage, kind: str, now: datetime) -> bool:
    """Record that the patient opened (or answered) a message: True the first time, False for a
    later time (then counted: `count` + 1, `last_at` moved). Two at once insert one row."""
    later = EngagementEvent.objects.filter(message=message, kind=kind)
    if later.update(count=F("count") + 1, last_at=now, updated_at=now):
        return False
    try:
        with transaction.atomic():
            event = EngagementEvent(
                patient_id=message.patient_id, message=message, kind=kind, first_at=now, last_at=now
            )
            event.full_clean(exclude=["message", "patient"])
            event.save()
    except IntegrityError:
        later.update(count=F("count") + 1, last_at=now, updated_at=now)  # the other request won
        return False
    return True
