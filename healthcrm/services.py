"""Writes of the core: in-app notifications (the only core data features write)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from healthcrm.models import Notification


def notify(*, recipients: Iterable[Any], kind: str, message: str, url: str = "") -> list[Notification]:
    """Notify users in the current organization (one bulk insert). `message` must hold no PHI."""
    rows = [Notification(recipient_id=getattr(r, "pk", r), kind=kind, message=message, url=url) for r in recipients]
    return Notification.objects.bulk_create(rows) if rows else []


def notifications_mark_read(*, user: Any, ids: Iterable[int] | None = None) -> int:
    """Mark the user's notifications (all, or these ids) read; returns how many changed."""
    unread = Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())
