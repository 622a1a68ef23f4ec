"""Free-text notes staff write on a patient (encrypted)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from healthcrm.crypto import EncryptedTextField
from healthcrm.models import TenantModel
from patients.models.patient import Patient


class PatientNote(TenantModel):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(max_length=150, blank=True)  # outlives the author's account
    body = EncryptedTextField(max_length=10_000)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["patient", "-created_at"], name="patientnote_patient_created")]

    def __str__(self) -> str:
        return f"Note #{self.pk}"
