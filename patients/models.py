"""Patient records. Every PHI value is encrypted; searchable ones carry a blind index beside them."""

from __future__ import annotations

from django.db import models

from compliance.audit import register_phi
from healthcrm.crypto import (
    BlindIndexField,
    EncryptedCharField,
    EncryptedDateField,
    EncryptedEmailField,
    validate_phone,
)
from healthcrm.models import TenantModel


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class Patient(TenantModel):
    mrn = EncryptedCharField("MRN", max_length=64)
    mrn_bidx = BlindIndexField(source="mrn", kind="identifier")
    given_name = EncryptedCharField(max_length=100)
    given_name_bidx = BlindIndexField(source="given_name", kind="name")
    family_name = EncryptedCharField(max_length=100)
    family_name_bidx = BlindIndexField(source="family_name", kind="name")
    date_of_birth = EncryptedDateField()
    date_of_birth_bidx = BlindIndexField(source="date_of_birth", kind="date")
    sex = EncryptedCharField(max_length=16, choices=Sex.choices, default=Sex.UNKNOWN)
    phone_mobile = EncryptedCharField("mobile phone", max_length=32, blank=True, validators=[validate_phone])
    phone_mobile_bidx = BlindIndexField(source="phone_mobile", kind="phone")
    email = EncryptedEmailField(blank=True)
    email_bidx = BlindIndexField(source="email", kind="email")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "mrn_bidx"], name="patient_mrn_unique_per_org",
                                    violation_error_message="A patient with this MRN already exists in this organization."),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="patient_org_created"),
        ]

    def __str__(self) -> str:
        # Never PHI: django-auditlog stores this string as object_repr.
        return f"Patient #{self.pk}"

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip()


register_phi(Patient)
