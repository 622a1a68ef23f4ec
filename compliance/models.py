"""Compliance records: who looked at which protected health information, when and from where."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models

from healthcrm.models import TenantModel


class AccessAction(models.TextChoices):
    VIEW = "view", "Viewed a record"
    LIST = "list", "Listed records"
    SEARCH = "search", "Searched"
    EXPORT = "export", "Exported"
    CHANGE = "change", "Changed a record"
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
    # What was shown, as "app_label.model:pk" pairs (object_type/object_ids summarize the first type).
    # Empty on rows written before the pairs were recorded.
    records = ArrayField(models.CharField(max_length=120), default=list, blank=True)
    search_fields = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    search_fingerprint = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="accesslog_org_time"),
            models.Index(fields=["organization", "object_type", "-created_at"], name="accesslog_org_type_time"),
            models.Index(fields=["organization", "actor", "-created_at"], name="accesslog_org_actor_time"),
            GinIndex(fields=["records"], name="accesslog_records"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(action__in=AccessAction.values), name="accesslog_action_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type} at {self.created_at:%Y-%m-%d %H:%M}"


class AuditSource(models.TextChoices):
    ACCESS = "access", "Access log row"
    WRITE = "write", "Change log entry"


class AuditLink(TenantModel):
    """One link of an organization's audit chain: an access-log row or a change-log entry.

    Written only by the database, never by the app: a deferred trigger on insert into
    compliance_accesslog and auditlog_logentry appends a link when the transaction commits, under
    a per-organization lock (so concurrent writers never fork the chain).
    `hash = sha256(prev_hash|organization|seq|source|source_id|content_hash)`, and `content_hash`
    is the sha256 of the row's canonical content (`audit_content_access`/`audit_content_write` in
    the migration). `manage.py verify_audit` walks the chain (compliance/chain.py).
    """

    seq = models.BigIntegerField()
    source = models.CharField(max_length=6, choices=AuditSource.choices)
    source_id = models.BigIntegerField()
    content_hash = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["organization", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "seq"], name="auditlink_seq_unique_per_org"),
            models.UniqueConstraint(fields=["source", "source_id"], name="auditlink_source_once"),
            models.CheckConstraint(condition=models.Q(source__in=AuditSource.values), name="auditlink_source_valid"),
        ]

    def __str__(self) -> str:
        return f"Audit link {self.seq} ({self.source} #{self.source_id})"
