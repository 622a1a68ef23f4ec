"""Writes of patient documents: upload (the bytes encrypted before they reach the database) and
soft delete, each audited (django-auditlog, encrypted fields redacted) in its transaction."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from healthcrm.crypto import encrypt_bytes
from patients.models import DocumentType, Patient, PatientDocument, PatientDocumentContent

# The first bytes of the kinds we accept. The name and the browser's content type are not asked:
# a program renamed "scan.pdf" starts with "MZ", not "%PDF-".
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", DocumentType.PDF),
    (b"\x89PNG\r\n\x1a\n", DocumentType.PNG),
    (b"\xff\xd8\xff", DocumentType.JPEG),
)
NOT_ACCEPTED = "This file is not a PDF, JPEG or PNG (checked by its content, not its name)."


def sniff_type(data: bytes) -> str | None:
    """The document type its first bytes say, or None for anything we do not accept."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return str(kind)
    return None


def max_bytes() -> int:
    return int(settings.PATIENT_DOCUMENT_MAX_BYTES)


def size_label(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


def safe_filename(name: str, extension: str, fallback: str = "document") -> str:
    """A download name: letters, digits, dot, dash and underscore only, no path, the extension of the
    type the content has (so the browser never opens it as something else), at most 100 characters."""
    base = unicodedata.normalize("NFKD", name.replace("\\", "/").rsplit("/", 1)[-1])
    base = base.encode("ascii", "ignore").decode("ascii")
    base = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", base)
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._-")[:90] or fallback
    return f"{base}.{extension}"


@transaction.atomic
def document_upload(
    *, patient: Patient, title: str, kind: str, data: bytes, original_name: str = "", actor: Any = None
) -> PatientDocument:
    """Attach a PDF, JPEG or PNG to the patient's record, encrypted. Raises ValidationError for a
    file of another type (by content), an empty one or one over PATIENT_DOCUMENT_MAX_BYTES."""
    if not data:
        raise ValidationError({"file": "The file is empty."})
    if len(data) > max_bytes():
        raise ValidationError({"file": f"The file is larger than {size_label(max_bytes())}."})
    content_type = sniff_type(data)
    if content_type is None:
        raise ValidationError({"file": NOT_ACCEPTED})
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    document = PatientDocument(
        patient=patient,
        title=title.strip(),
        kind=kind,
        content_type=content_type,
        original_name=original_name.replace("\x00", "")[:255],
        size=len(data),
        uploaded_by=user,
        uploaded_by_label=user.get_username()[:150] if user else "",
    )
    document.full_clean()
    document.save()
    content = PatientDocumentContent(document=document, encrypted=encrypt_bytes(data))
    content.save()
    return document


@transaction.atomic
def document_delete(*, document: PatientDocument, actor: Any = None) -> PatientDocument:
    """Hide a document from the record (soft: the row and its bytes stay, with who and when)."""
    if document.deleted_at is not None:
        return document
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    document.deleted_at = timezone.now()
    document.deleted_by = user
    document.deleted_by_label = user.get_username()[:150] if user else ""
    document.full_clean()
    document.save(update_fields=["deleted_at", "deleted_by", "deleted_by_label", "updated_at"])
    return document
