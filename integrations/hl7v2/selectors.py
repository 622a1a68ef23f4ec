"""Reads of the HL7 v2 interface: routing a sender, the status page, the control id search."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Max

from integrations.hl7v2.models import Hl7HeldMessage, Hl7Message, Hl7Sender, MessageState

RECENT_ERRORS = 50
SEARCH_LIMIT = 50


def sender_route_get(lookup_key: str) -> Hl7Sender | None:
    """The sender registered under a routing key, in whichever organization (or None).

    Read before any organization is current: the sender table's RLS policy shows the row whose key
    is the transaction's `app.hl7_sender_key`, and no other; so this is the one cross-tenant read.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('app.hl7_sender_key', %s, true)", [lookup_key])
        # Platform code on purpose: the organization is what this lookup finds.
        senders = Hl7Sender.objects.all_organizations().select_related("organization")
        sender = senders.filter(lookup_key=lookup_key).first()
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('app.hl7_sender_key', '', true)")
    return sender


@dataclass
class InterfaceStatus:
    """One organization's interface today: no PHI (types, outcomes, fields, reasons, control ids)."""

    senders: list[Hl7Sender]
    last_received_at: datetime | None
    counts: list[tuple[str, dict[str, int]]]
    totals: dict[str, int]
    held: int
    errors: list[Hl7Message] = field(default_factory=list)


def interface_status(*, day_start: datetime) -> InterfaceStatus:
    """Counts by type and outcome since `day_start` (the clinic's midnight), the last message,
    messages still held, and the latest errors with their field and reason."""
    today = Hl7Message.objects.filter(received_at__gte=day_start, received_at__lt=day_start + timedelta(days=1))
    by_type: dict[str, dict[str, int]] = {}
    totals = {"AA": 0, "AE": 0, "AR": 0}
    for row in today.values("message_type", "outcome").annotate(n=Count("id")).order_by("message_type"):
        by_type.setdefault(row["message_type"], {"AA": 0, "AE": 0, "AR": 0})[row["outcome"]] = row["n"]
        totals[row["outcome"]] += row["n"]
    errors = list(
        Hl7Message.objects.filter(state__in=[MessageState.ERROR, MessageState.EXPIRED, MessageState.REFUSED])
        .select_related("sender")
        .only(
            "control_id",
            "message_type",
            "outcome",
            "state",
            "error_field",
            "error_reason",
            "received_at",
            "sender__name",
        )
        .order_by("-received_at", "-id")[:RECENT_ERRORS]
    )
    return InterfaceStatus(
        senders=list(Hl7Sender.objects.order_by("name")),
        last_received_at=Hl7Message.objects.aggregate(last=Max("received_at"))["last"],
        counts=sorted(by_type.items()),
        totals=totals,
        held=Hl7HeldMessage.objects.count(),
        errors=errors,
    )


def message_search(*, control_id: str) -> list[Hl7Message]:
    """Messages of the current organization with this control id (any sender), newest first."""
    return list(
        Hl7Message.objects.filter(control_id=control_id.strip())
        .select_related("sender")
        .defer("raw", "ack")
        .order_by("-received_at", "-id")[:SEARCH_LIMIT]
    )
