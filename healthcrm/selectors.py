"""Reads of the core: a user's memberships, their notifications."""

from __future__ import annotations

from typing import Any

from django.db import models

from healthcrm.models import Membership, Notification


def membership_list(user_id: int) -> list[Membership]:
    """The user's active memberships, across organizations, by organization name.

    Runs before any organization is current: needs `user_context(user_id)` (the membership
    table's row-level security shows a user their own rows).
    """
    return list(
        Membership.objects.filter(user_id=user_id, is_active=True)
        .select_related("organization")
        .order_by("organization__name")
    )


def unread_count(user: Any) -> int:
    """The user's unread notifications in the current organization (one COUNT query)."""
    return Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).count()


def notification_list(user: Any) -> models.QuerySet[Notification]:
    """The user's notifications in the current organization, newest first."""
    return Notification.objects.filter(recipient_id=user.pk)
