"""Compliance records: who looked at which protected health information, when and from where."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import MaxLengthValidator
from django.db import models

from healthcrm.crypto import EncryptedTextField
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


# -- Anomaly alerts (compliance/anomalies.py) -------------------------------------------------------


class AnomalyRule(models.TextChoices):
    VOLUME = "volume", "Far more records than usual"
    SAME_FAMILY = "same_family", "A patient with the user's family name"
    AFTER_HOURS = "after_hours", "Access outside the organization's hours"
    FLAGGED_RECORD = "flagged", "A VIP or employee record"
    FAILED_LOGINS = "failed_logins", "Many failed sign-ins"


class AnomalyOutcome(models.TextChoices):
    EXPLAINED = "explained", "Explained (legitimate)"
    INAPPROPRIATE = "inappropriate", "Inappropriate access"
    FOLLOW_UP = "follow_up", "Needs follow-up"


ALERT_NOTE_MAX_LENGTH = 500


class AnomalyAlert(TenantModel):
    """One rule firing for one user on one of the organization's days, with its evidence.

    Written by the scan (`anomaly_scan`), at most once per (rule, user, day): a scan run again the
    same day updates the evidence and leaves the review alone. The evidence holds ids, counts and
    times only (access-log row ids, patient ids, IP addresses of the sign-in attempts): no PHI in clear.
    The subject is a snapshot of the user's sign-in name; `user` is SET_NULL (alerts outlive accounts).
    """

    rule = models.CharField(max_length=16, choices=AnomalyRule.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=254)
    day = models.DateField(help_text="The organization's local day the activity happened on.")
    evidence = models.JSONField(default=dict, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_by_label = models.CharField(max_length=150, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=AnomalyOutcome.choices, blank=True)
    review_note = EncryptedTextField(
        max_length=ALERT_NOTE_MAX_LENGTH, blank=True, validators=[MaxLengthValidator(ALERT_NOTE_MAX_LENGTH)]
    )

    class Meta:
        ordering = ["-day", "-id"]
        indexes = [
            models.Index(fields=["organization", "reviewed_at", "-day"], name="anomalyalert_review"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "rule", "subject", "day"],
                name="anomalyalert_once_per_rule_user_day",
                violation_error_message="This rule already fired for this user on this day.",
            ),
            models.CheckConstraint(condition=models.Q(rule__in=AnomalyRule.values), name="anomalyalert_rule_valid"),
            models.CheckConstraint(
                condition=models.Q(outcome="") | models.Q(outcome__in=AnomalyOutcome.values),
                name="anomalyalert_outcome_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(reviewed_at__isnull=True, outcome="")
                | models.Q(reviewed_at__isnull=False) & ~models.Q(outcome=""),
                name="anomalyalert_review_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"Anomaly alert #{self.pk} ({self.rule}, {self.day})"


# -- SIEM export (compliance/siem/) ----------------------------------------------------------------


class SiemCheckpoint(TenantModel):
    """How far an organization's audit events have gone to one collector: the last audit-chain link
    (`AuditLink.seq`) shipped. Advanced in the transaction that holds this row locked while the batch
    is written to the collector, so a shipper that stops (or a collector that fails) resumes at the
    first event not yet acknowledged by a commit. `seq` is gap-free and assigned at commit, in order,
    so an event can never appear behind the checkpoint later."""

    sink = models.CharField(max_length=40, help_text="The collector's name (SIEM_SINK).")
    last_seq = models.BigIntegerField(default=0)
    shipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "sink"],
                name="siemcheckpoint_once_per_sink",
                violation_error_message="This organization already has a checkpoint for this collector.",
            ),
            models.CheckConstraint(condition=models.Q(last_seq__gte=0), name="siemcheckpoint_seq_positive"),
        ]

    def __str__(self) -> str:
        return f"SIEM checkpoint {self.sink} at {self.last_seq}"


# The review note is PHI (encrypted): its changes are audited with the value redacted.
def _register_phi_models() -> None:
    from compliance.audit import register_phi

    register_phi(AnomalyAlert)


_register_phi_models()
