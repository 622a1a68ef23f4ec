"""Ship an organization's audit events after its checkpoint, batch by batch.

Each batch is one transaction: lock the organization's checkpoint row for this collector (a second
shipper running at the same time skips the organization instead of sending the same batch), read
the next links of the audit chain after it (ordered by `seq`: gap-free, assigned at commit under
the chain's lock, so no event can later appear behind the checkpoint), write them to the sink,
advance the checkpoint, commit. A sink that fails rolls the transaction back: the checkpoint stays
and the same events go in the next run (nothing skipped). A restart resumes after the last committed
batch (nothing sent twice), except in one window: a process killed after the sink took a batch and
before the commit sends that batch again; each event's `event_id` (organization slug and `seq`)
lets the collector drop the repeat.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from compliance.models import AuditLink, SiemCheckpoint
from compliance.siem.events import events_for_links
from compliance.siem.sinks import Sink
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context


def _checkpoint_locked(sink_name: str) -> SiemCheckpoint | None:
    """The checkpoint row, locked for this transaction; None when another shipper holds it."""
    SiemCheckpoint.objects.get_or_create(sink=sink_name)
    return SiemCheckpoint.objects.select_for_update(skip_locked=True).filter(sink=sink_name).first()


def siem_ship(
    *,
    organization: Organization,
    sink: Sink,
    batch_size: int = 500,
    max_batches: int | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> int:
    """Ship every event of `organization` not yet shipped to `sink`; returns how many were sent.

    `max_batches` bounds one run; `after_batch(last_seq)` runs after each committed batch (tests use
    it to stop a run between batches, as a killed process would)."""
    shipped = batches = 0
    while max_batches is None or batches < max_batches:
        with organization_context(organization):
            checkpoint = _checkpoint_locked(sink.name)
            if checkpoint is None:
                return shipped
            links = list(AuditLink.objects.filter(seq__gt=checkpoint.last_seq).order_by("seq")[:batch_size])
            if not links:
                return shipped
            sink.write(events_for_links(organization, links))
            checkpoint.last_seq = links[-1].seq
            checkpoint.shipped_at = timezone.now()
            checkpoint.save(update_fields=["last_seq", "shipped_at", "updated_at"])
        shipped += len(links)
        batches += 1
        if after_batch is not None:
            after_batch(links[-1].seq)
    return shipped
