"""Erasure requests and legal holds (issue 13 item 5; the rules are in patients/erasure/).

An `ErasureRequest` is a patient's request to be forgotten (GDPR Art. 17), handled by the
compliance role, or the record the retention job leaves when it pseudonymises a record past its
period (`kind=retention`). A `LegalHold` freezes a patient's records: while one is open, neither
an erasure nor the retention job touches them. Neither holds PHI in clear: the notes are encrypted
(staff words, which may name people), the rest are ids, dates, counts and user-name snapshots.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import F, Q

from healthcrm.crypto import EncryptedTextField
from healthcrm.models import TenantModel
from patients.models.patient import Patient

NOTE_MAX_LENGTH = 500


class ErasureKind(models.TextChoices):
    REQUEST = "request", "Patient's request"
    RETENTION = "retention", "Retention period ended"


class ErasureStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"
    DECLINED = "declined", "Declined"


class ErasureRequest(TenantModel):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=ErasureKind.choices, default=ErasureKind.REQUEST)
    status = models.CharField(max_length=16, choices=ErasureStatus.choices, default=ErasureStatus.PENDING)
    requested_at = models.DateTimeField()
    # Audit history outlives the account: SET_NULL plus a snapshot of the name.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_label = models.CharField(max_length=150, blank=True)
    decision_note = EncryptedTextField(
        max_length=NOTE_MAX_LENGTH, blank=True, validators=[MaxLengthValidator(NOTE_MAX_LENGTH)]
    )
    # What the erasure did, per model label: {"erased": n, "deleted": n} (counts only, no values).
    outcome = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["organization", "status", "-requested_at"], name="erasure_status")]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ErasureKind.values), name="erasure_kind_valid"),
            models.CheckConstraint(condition=Q(status__in=ErasureStatus.values), name="erasure_status_valid"),
            models.CheckConstraint(
                condition=Q(status=ErasureStatus.PENDING, decided_at__isnull=True)
                | ~Q(status=ErasureStatus.PENDING) & Q(decided_at__isnull=False),
                name="erasure_decision_complete",
                violation_error_message="A decided request needs its decision time.",
            ),
            models.UniqueConstraint(
                fields=["organization", "patient"],
                condition=Q(status=ErasureStatus.PENDING),
                name="erasure_one_pending_per_patient",
                violation_error_message="This patient already has an erasure request waiting for a decision.",
            ),
        ]

    def __str__(self) -> str:
        return f"Erasure request #{self.pk}"


class LegalHold(TenantModel):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    reason = EncryptedTextField(max_length=NOTE_MAX_LENGTH, validators=[MaxLengthValidator(NOTE_MAX_LENGTH)])
    placed_at = models.DateTimeField()
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    placed_by_label = models.CharField(max_length=150, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    released_by_label = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        indexes = [models.Index(fields=["organization", "patient", "released_at"], name="legalhold_open")]
        constraints = [
            models.CheckConstraint(
                condition=Q(released_at__isnull=True) | Q(released_at__gte=F("placed_at")),
                name="legalhold_released_after_placed",
                violation_error_message="A hold cannot be released before it was placed.",
            ),
        ]

    def __str__(self) -> str:
        return f"Legal hold #{self.pk}"
