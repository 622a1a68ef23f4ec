"""Free-text notes staff write on a patient (encrypted): typed, drafted by their author, signed,
and amended after signing by a new linked note (the signed original is never changed)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from healthcrm.crypto import EncryptedCharField, EncryptedTextField
from healthcrm.models import TenantModel
from patients.models.patient import Patient


class NoteType(models.TextChoices):
    GENERAL = "general", "Note"
    PROGRESS = "progress", "Progress note"
    PHONE_CALL = "phone_call", "Phone call"
    OUTREACH = "outreach", "Outreach"


class PatientNote(TenantModel):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(max_length=150, blank=True)  # outlives the author's account
    note_type = models.CharField(max_length=16, choices=NoteType.choices, default=NoteType.GENERAL)
    body = EncryptedTextField(max_length=10_000)
    # Signed: final. A draft (signed_at empty) is edited by its author only.
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_by_label = models.CharField(max_length=150, blank=True)
    # An amendment is a signed note of its own pointing at the note it corrects (kept unchanged).
    amends = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="amendments")
    amendment_reason = EncryptedCharField(max_length=500, blank=True)
    # Restricted at the patient's request (set by staff, audited): opening it takes break-the-glass,
    # even for the care team (patients/breakglass/policy.py).
    restricted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["patient", "-created_at"], name="patientnote_patient_created")]
        constraints = [
            models.CheckConstraint(condition=Q(note_type__in=NoteType.values), name="patientnote_type_valid"),
            models.CheckConstraint(
                condition=Q(amends__isnull=True) | Q(signed_at__isnull=False),
                name="patientnote_amendment_signed",
                violation_error_message="An amendment is signed when it is written.",
            ),
        ]

    def __str__(self) -> str:
        return f"Note #{self.pk}"

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None
