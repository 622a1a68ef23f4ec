"""Waitlist offers: the message that offers a freed slot, and what its link does.

Scheduling offers a freed slot to waiting patients (`patients.scheduling.services.
waitlist_offers_make`) and announces it with `patients.signals.waitlist_offered`, inside the
transaction that freed it. Each offer becomes one outbox row per active rule of kind
`waitlist_offer` (the rule's template: first name, time, clinic and the signed "slot" link only),
keyed by the offer (exactly once), through consent, the patient's quiet hours and the caps like
every message, expiring when the slot starts. The link's page takes the slot through scheduling's
`waitlist_offer_claim`, which decides who was first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from engagement import links, selectors
from engagement.models import OutboundMessage, Rule, RuleKind
from engagement.services.outbox import outbox_enqueue
from engagement.tasks import outbox_send_task

OFFER_SLOT = "offer"


def waitlist_offer_notices(*, offer_ids: tuple[int, ...]) -> list[OutboundMessage]:
    """Queue the offer messages (idempotent per offer); those due now are sent after commit."""
    rules = list(Rule.objects.filter(kind=RuleKind.WAITLIST_OFFER, is_active=True))
    if not rules:
        return []
    now = timezone.now()
    queued: list[OutboundMessage] = []
    for offer_id in offer_ids:
        offer = selectors.waitlist_offer_get(offer_id)
        if offer is None:
            continue
        for rule in rules:
            message = outbox_enqueue(
                patient=offer.entry.patient,
                rule=rule,
                subject_type=selectors.WAITLIST_OFFER_SUBJECT,
                subject_id=offer.pk,
                slot=OFFER_SLOT,
                due_at=now,
                expires_at=offer.slot.starts_at,
            )
            if message is not None:
                queued.append(message)
    due = [(m.organization_id, m.pk) for m in queued if m.next_attempt_at <= now]
    if due:
        transaction.on_commit(lambda: [outbox_send_task.delay(org_id, pk) for org_id, pk in due])
    return queued


def _offer_of(message: OutboundMessage) -> Any:
    if message.subject_type != selectors.WAITLIST_OFFER_SUBJECT:
        return None
    return selectors.waitlist_offer_get(message.subject_id)


def slot_link_state(*, message: OutboundMessage, claims: links.LinkClaims, now: datetime) -> tuple[str, Any]:
    """What opening the link shows, writing nothing (link previewers fetch GETs): ("ask", offer),
    or the offer's outcome ("taken", "missed", "expired", "closed"), or ("unavailable", None)."""
    offer = _offer_of(message)
    if offer is None:
        return "unavailable", None
    if offer.status != "offered":
        return str(offer.status), offer
    if offer.slot.status == "taken":
        return "missed", offer
    if offer.slot.status == "expired" or now >= links.link_expires_at(claims, starts_at=offer.slot.starts_at):
        return "expired", offer
    if offer.entry.status != "waiting":
        return "closed", offer
    return "ask", offer


def slot_link_use(*, message: OutboundMessage, claims: links.LinkClaims, now: datetime) -> tuple[str, Any]:
    """Take the slot (the first confirmation wins; see `waitlist_offer_claim`) and say what happened."""
    from patients.scheduling.services import waitlist_offer_claim

    state, offer = slot_link_state(message=message, claims=claims, now=now)
    if state != "ask":
        return state, offer
    state = waitlist_offer_claim(offer=offer, now=now)
    return state, selectors.waitlist_offer_get(offer.pk)
