"""In-app notifications: a row per recipient, read or not. Messages carry no PHI (kinds and ids:
"Care plan #7 of patient #12: task completed"), since they are listed outside the patient's page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from healthcrm.models import TenantModel


class Notification(TenantModel):
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32)
    message = models.CharField(max_length=255)
    url = models.CharField(max_length=300, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "recipient", "read_at"], name="notification_org_recipient")]

    def __str__(self) -> str:
        return f"Notification #{self.pk}"


def notify(*, recipients: Iterable[Any], kind: str, message: str, url: str = "") -> list[Notification]:
    """Notify users in the current organization (one bulk insert). `message` must hold no PHI."""
    rows = [Notification(recipient_id=getattr(r, "pk", r), kind=kind, message=message, url=url) for r in recipients]
    return Notification.objects.bulk_create(rows) if rows else []


def unread_count(user: Any) -> int:
    return Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).count()


def notification_list(user: Any) -> models.QuerySet[Notification]:
    return Notification.objects.filter(recipient_id=user.pk)


def notifications_mark_read(*, user: Any, ids: Iterable[int] | None = None) -> int:
    """Mark the user's notifications (all, or these ids) read; returns how many changed."""
    unread = Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())
