"""Compliance records: who looked at which protected health information, when and from where."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from healthcrm.models import TenantModel


class AccessAction(models.TextChoices):
    VIEW = "view", "Viewed a record"
    LIST = "list", "Listed records"
    SEARCH = "search", "Searched"
    EXPORT = "export", "Exported"
    DENIED = "denied", "Was denied access"


class AccessLog(TenantModel):
    """One row per view of PHI. Outlives the people in it: the actor is SET_NULL plus a snapshot.

    The search performed is stored as the fields searched and a keyed fingerprint of the terms,
    never the terms: "who searched for this phone number?" is answerable by fingerprinting the
    number again, while the log itself reveals nothing.
    """

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=8, choices=AccessAction.choices)
    view_name = models.CharField(max_length=120)
    object_type = models.CharField(max_length=100, blank=True)
    object_ids = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    search_fields = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    search_fingerprint = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="accesslog_org_time"),
            models.Index(fields=["organization", "object_type", "-created_at"], name="accesslog_org_type_time"),
            models.Index(fields=["organization", "actor", "-created_at"], name="accesslog_org_actor_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(action__in=AccessAction.values), name="accesslog_action_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type} at {self.created_at:%Y-%m-%d %H:%M}"
