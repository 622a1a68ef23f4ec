"""The beat's scan: per organization, a bounded index scan of the pending rows whose
next_attempt_at has come (and of stale claims); their ids go to the outreach tasks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from engagement.models import ChannelSettings
from engagement.tasks import outbox_reconcile_task, outbox_send_batch_task, outbox_send_task
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context

_DUE_SQL = """
WITH due AS MATERIALIZED (
    SELECT id FROM engagement_outboundmessage
    WHERE organization_id = %(org)s AND status = 'pending' AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE engagement_outboundmessage AS m SET next_attempt_at = %(requeue)s, enqueued_at = %(now)s
FROM due WHERE m.id = due.id
RETURNING m.id
"""

_STALE_SQL = """
WITH stale AS MATERIALIZED (
    SELECT id FROM engagement_outboundmessage
    WHERE organization_id = %(org)s AND status = 'sending'
      AND (claimed_at <= %(stale_before)s OR settle_at <= %(now)s)
      AND (enqueued_at IS NULL OR enqueued_at <= %(requeue_before)s)
    ORDER BY claimed_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE engagement_outboundmessage AS m SET enqueued_at = %(now)s
FROM stale WHERE m.id = stale.id
RETURNING m.id
"""


def due_ids(organization: Organization, *, now: datetime, limit: int) -> tuple[list[int], list[int]]:
    """Take up to `limit` due message ids (and stale claims) of the current organization.

    Taking a row pushes its next_attempt_at ENGAGEMENT_REQUEUE_AFTER ahead: the next scan skips it
    while its task waits in the queue, and finds it again if the task was lost.
    """
    requeue = float(settings.ENGAGEMENT_REQUEUE_AFTER)
    stale = float(settings.ENGAGEMENT_SENDING_STALE_AFTER)
    params: dict[str, Any] = {
        "org": organization.pk,
        "now": now,
        "limit": limit,
        "requeue": now + timedelta(seconds=requeue),
    }
    with connection.cursor() as cursor:
        cursor.execute(_DUE_SQL, params)
        due = [row[0] for row in cursor.fetchall()]
        stale_params: dict[str, Any] = {
            "org": organization.pk,
            "now": now,
            "limit": max(1, limit // 10),
            "stale_before": now - timedelta(seconds=stale),
            "requeue_before": now - timedelta(seconds=requeue),
        }
        cursor.execute(_STALE_SQL, stale_params)
        stale_ids = [row[0] for row in cursor.fetchall()]
    return due, stale_ids


def dispatch_due(*, now: datetime | None = None) -> int:
    """The beat's scan over every active organization; returns how many ids were enqueued."""
    batch = int(settings.ENGAGEMENT_SCAN_BATCH)
    window = float(settings.ENGAGEMENT_SCAN_WINDOW)
    total = 0
    # Organizations are platform rows (no RLS); every outbox query below runs inside one of them.
    for organization in Organization.objects.filter(is_active=True).order_by("pk"):
        with organization_context(organization):
            rate = ChannelSettings.objects.values_list("send_rate_per_second", flat=True).first() or 10
            # No point taking more than the organization may send before the next scans.
            limit = max(1, min(batch, int(rate * window)))
            due, stale = due_ids(organization, now=now or timezone.now(), limit=limit)
        # ENGAGEMENT_SEND_BATCH > 1 (the default, 50): one task per chunk of at most that many ids
        # (and at most a second's worth of sends), sent concurrently by messages_send; 1: one task
        # per message.
        size = max(1, min(int(settings.ENGAGEMENT_SEND_BATCH), rate))
        for start in range(0, len(due), size):
            chunk = due[start : start + size]
            if len(chunk) == 1:
                outbox_send_task.delay(organization.pk, chunk[0])
            else:
                outbox_send_batch_task.delay(organization.pk, chunk)
        for message_id in stale:
            outbox_reconcile_task.delay(organization.pk, message_id)
        total += len(due) + len(stale)
    return total
