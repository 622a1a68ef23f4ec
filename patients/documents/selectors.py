"""Reads of patient documents (current organization only: the tenant manager and RLS)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest

from compliance.guards import get_object_for_user
from healthcrm.crypto import decrypt_bytes
from patients.models import Patient, PatientDocument, PatientDocumentContent


def document_list(*, patient: Patient) -> QuerySet[PatientDocument]:
    """The patient's documents that are not deleted, newest first (the bytes are not read)."""
    return (
        PatientDocument.objects.filter(patient_id=patient.pk, deleted_at__isnull=True)
        .select_related("uploaded_by")
        .order_by("-created_at", "-id")
    )


def get_document_for_user(
    request: HttpRequest, pk: object, perm: str = "patients.view_patientdocument"
) -> PatientDocument:
    """The guarded fetch for documents: 404 across organizations and for deleted ones, 403 without `perm`."""
    queryset = PatientDocument.objects.filter(deleted_at__isnull=True).select_related("patient")
    return get_object_for_user(request, queryset, pk, perm)


def document_bytes(*, document: PatientDocument) -> bytes:
    """The document's bytes, decrypted."""
    content = PatientDocumentContent.objects.get(document_id=document.pk)
    return decrypt_bytes(content.encrypted, label=f"Document #{document.pk}")
