"""Break-the-glass: a clinical user without a care relationship opens a record for a stated reason.

Each opening is a `BreakGlassEvent`: who, which patient, why (a coded reason and a short encrypted
note), until when the access lasts, and the compliance review (who, when, outcome, encrypted note).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import F, Q

from healthcrm.crypto import EncryptedTextField
from healthcrm.models import TenantModel
from patients.models.patient import Patient


class BreakGlassReason(models.TextChoices):
    EMERGENCY = "emergency", "Emergency care"
    COVERING = "covering", "Covering for a colleague"
    PATIENT_REQUEST = "patient_request", "Patient request"
    OTHER = "other", "Other"


class BreakGlassOutcome(models.TextChoices):
    APPROPRIATE = "appropriate", "Appropriate"
    INAPPROPRIATE = "inappropriate", "Inappropriate"
    FOLLOW_UP = "follow_up", "Needs follow-up"


NOTE_MAX_LENGTH = 500


class BreakGlassEvent(TenantModel):
    # Audit history outlives the account: SET_NULL plus a snapshot of the name.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    user_label = models.CharField(max_length=150)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=16, choices=BreakGlassReason.choices)
    note = EncryptedTextField(max_length=NOTE_MAX_LENGTH, blank=True, validators=[MaxLengthValidator(NOTE_MAX_LENGTH)])
    granted_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_by_label = models.CharField(max_length=150, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=BreakGlassOutcome.choices, blank=True)
    review_note = EncryptedTextField(
        max_length=NOTE_MAX_LENGTH, blank=True, validators=[MaxLengthValidator(NOTE_MAX_LENGTH)]
    )

    class Meta:
        ordering = ["-granted_at", "-id"]
        indexes = [
            # The guard's grant check: this user, this patient, not expired.
            models.Index(fields=["organization", "user", "patient", "expires_at"], name="breakglass_grant"),
            models.Index(fields=["organization", "reviewed_at", "-granted_at"], name="breakglass_review"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(reason__in=BreakGlassReason.values), name="breakglass_reason_valid"),
            models.CheckConstraint(
                condition=Q(outcome="") | Q(outcome__in=BreakGlassOutcome.values), name="breakglass_outcome_valid"
            ),
            models.CheckConstraint(condition=Q(expires_at__gt=F("granted_at")), name="breakglass_expires_after"),
            models.CheckConstraint(
                condition=Q(reviewed_at__isnull=True, outcome="") | Q(reviewed_at__isnull=False) & ~Q(outcome=""),
                name="breakglass_review_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"Break-glass #{self.pk}"
