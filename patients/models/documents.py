"""Documents attached to a patient's record (a referral letter, a lab report, a scanned card).

The bytes are encrypted with the field encryption keys (Fernet, `healthcrm.crypto.encrypt_bytes`)
and kept in a bytea column of their own table, not in files: they then sit behind the same two
tenancy walls as every other row (row-level security, the tenant manager), commit or roll back with
the row that describes them, need no shared volume between web servers, and go with the database's
backups. Kept apart from the description so lists and the audit log's before/after reads never
load them. Deletion is soft: the row stays, hidden, with who deleted it and when.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from healthcrm.crypto import EncryptedCharField
from healthcrm.models import TenantModel
from patients.models.patient import Patient


class DocumentKind(models.TextChoices):
    REFERRAL = "referral", "Referral"
    LAB_REPORT = "lab_report", "Lab report"
    CONSENT_FORM = "consent_form", "Consent form"
    ID_CARD = "id_card", "ID or insurance card"
    OTHER = "other", "Other"


class DocumentType(models.TextChoices):
    """What the file is, decided from its first bytes (never from its name or the browser)."""

    PDF = "application/pdf", "PDF"
    JPEG = "image/jpeg", "JPEG image"
    PNG = "image/png", "PNG image"


class PatientDocument(TenantModel):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="documents")
    title = EncryptedCharField(max_length=200)
    kind = models.CharField(max_length=16, choices=DocumentKind.choices)
    content_type = models.CharField(max_length=32, choices=DocumentType.choices)
    original_name = EncryptedCharField(max_length=255, blank=True)  # as uploaded: may name the patient
    size = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_by_label = models.CharField(max_length=150, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deleted_by_label = models.CharField(max_length=150, blank=True)
    # Restricted at the patient's request (set by staff, audited): opening it takes break-the-glass,
    # even for the care team (patients/breakglass/policy.py).
    restricted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=DocumentKind.values), name="patientdocument_kind_valid"),
            models.CheckConstraint(
                condition=Q(content_type__in=DocumentType.values), name="patientdocument_type_valid"
            ),
        ]
        indexes = [models.Index(fields=["organization", "patient", "-created_at"], name="patientdocument_patient")]

    def __str__(self) -> str:
        return f"Document #{self.pk}"

    @property
    def extension(self) -> str:
        return {DocumentType.PDF: "pdf", DocumentType.JPEG: "jpg", DocumentType.PNG: "png"}[
            DocumentType(self.content_type)
        ]


class PatientDocumentContent(TenantModel):
    """A document's bytes, Fernet-encrypted (the token as stored: never the plaintext)."""

    document = models.OneToOneField(PatientDocument, on_delete=models.CASCADE, related_name="content")
    encrypted = models.BinaryField()

    def __str__(self) -> str:
        return f"Document content #{self.pk}"
