"""Writes of right-of-access requests: receive, start the fulfilment, build the package (the
Celery job's body, step by step so its progress shows), download it once, expire it.

Every state change is a change-log entry on the request (progress ticks are not: they move by
UPDATE). The package's bytes are encrypted with the field keys before they reach the database.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from healthcrm.crypto import decrypt_bytes, encrypt_bytes
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.models import RightOfAccessPackage, RightOfAccessRequest, RightOfAccessStatus
from integrations.right_of_access import record

DUE_AFTER = timedelta(days=30)  # HIPAA 164.524(b)(2) and GDPR Art. 12(3): 30 days
DOWNLOAD_VALID_FOR = timedelta(days=7)
OPEN = (RightOfAccessStatus.RECEIVED, RightOfAccessStatus.IN_PROGRESS, RightOfAccessStatus.READY)


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


@transaction.atomic
def right_of_access_receive(*, patient: Any, actor: Any, now: datetime) -> RightOfAccessRequest:
    """Record a request received now; it is due DUE_AFTER later."""
    user = _user(actor)
    request = RightOfAccessRequest(
        patient=patient,
        requested_at=now,
        due_at=now + DUE_AFTER,
        received_by=user,
        received_by_label=user.get_username()[:150] if user else "",
    )
    request.full_clean()
    request.save()
    return request


@transaction.atomic
def right_of_access_start(*, request: RightOfAccessRequest) -> None:
    """Queue the fulfilment (a request received, or one that failed or expired, can be built again)."""
    from integrations.right_of_access.tasks import right_of_access_build_task

    if not startable(request, timezone.now()):
        raise ValidationError("This request is already being fulfilled or was delivered.")
    request.status = RightOfAccessStatus.IN_PROGRESS
    request.progress, request.progress_step, request.error = 0, "Queued", ""
    request.save(update_fields=["status", "progress", "progress_step", "error", "updated_at"])
    organization_id, request_id = request.organization_id, request.pk
    transaction.on_commit(lambda: right_of_access_build_task.delay(organization_id, request_id))


# A job that has not moved for this long died with its worker (a build takes seconds): it may start again.
STALLED_AFTER = timedelta(minutes=15)


def startable(request: RightOfAccessRequest, now: datetime) -> bool:
    """Received, failed, expired, or stalled in progress (its worker died: nothing moved for STALLED_AFTER)."""
    if request.status in (RightOfAccessStatus.RECEIVED, RightOfAccessStatus.FAILED, RightOfAccessStatus.EXPIRED):
        return True
    return request.status == RightOfAccessStatus.IN_PROGRESS and request.updated_at < now - STALLED_AFTER


def _progress(request_id: int, percent: int, step: str) -> None:
    RightOfAccessRequest.objects.filter(pk=request_id).update(
        progress=percent, progress_step=step, updated_at=timezone.now()
    )


def document_render(rec: record.PatientRecord, *, organization: Organization, now: datetime) -> str:
    """The readable document: one section per SECTIONS entry, in the clinic's zone, printable."""
    with timezone.override(organization.zone):
        return render_to_string(
            "integrations/right_of_access/document.html",
            {"record": rec, "organization": organization, "generated_at": now, "sections": dict(record.SECTIONS)},
        )


def right_of_access_build(*, organization: Organization, request_id: int) -> str:
    """Build the package (the task's body). Each step commits, so the progress bar moves: claim,
    read the record, the bundle, the document, store (encrypted) and mark ready. Returns the
    outcome ("ready", "skipped", "failed")."""
    with organization_context(organization):
        claimed = RightOfAccessRequest.objects.filter(
            pk=request_id, status=RightOfAccessStatus.IN_PROGRESS, progress=0
        ).update(progress=5, progress_step="Reading the record", updated_at=timezone.now())
    if claimed != 1:
        return "skipped"  # gone, not started, or another worker has it
    try:
        with organization_context(organization):
            request = RightOfAccessRequest.objects.select_related("patient").get(pk=request_id)
            rec = record.record_read(patient=request.patient)
            _progress(request_id, 30, "Building the FHIR bundle")
        with organization_context(organization):
            bundle = json.dumps(record.record_bundle(rec), indent=1).encode()
            _progress(request_id, 60, "Writing the document")
        with organization_context(organization):
            now = timezone.now()
            document = document_render(rec, organization=organization, now=now).encode()
            _progress(request_id, 85, "Encrypting")
        with organization_context(organization):
            request = RightOfAccessRequest.objects.select_for_update().get(pk=request_id)
            RightOfAccessPackage.objects.filter(request=request).delete()
            RightOfAccessPackage.objects.create(
                request=request, bundle=encrypt_bytes(bundle), document=encrypt_bytes(document)
            )
            request.status = RightOfAccessStatus.READY
            request.progress, request.progress_step = 100, "Ready"
            request.ready_at = timezone.now()
            request.expires_at = request.ready_at + DOWNLOAD_VALID_FOR
            request.resource_count = len(json.loads(bundle)["entry"])
            request.save()
    except Exception as exc:  # a failed build is recorded on the request, never half-ready
        with organization_context(organization):
            request = RightOfAccessRequest.objects.get(pk=request_id)
            request.status = RightOfAccessStatus.FAILED
            request.error = f"The package could not be built ({type(exc).__name__})."[:200]
            request.save(update_fields=["status", "error", "updated_at"])
        return "failed"
    return "ready"


def right_of_access_expire(*, now: datetime) -> int:
    """Expire ready packages past their time: the bytes are deleted, the request says expired."""
    expired = 0
    for request in RightOfAccessRequest.objects.filter(status=RightOfAccessStatus.READY, expires_at__lte=now):
        with transaction.atomic():
            RightOfAccessPackage.objects.filter(request=request).delete()
            request.status = RightOfAccessStatus.EXPIRED
            request.save(update_fields=["status", "updated_at"])
            expired += 1
    return expired


def right_of_access_download(*, request: RightOfAccessRequest, actor: Any, now: datetime) -> bytes:
    """The package as a zip (record.json: the FHIR Bundle; record.html: the document), once: the
    claim (ready, not expired -> delivered) must touch exactly one row, then the package is
    deleted. Raises ValidationError when it is not ready, already downloaded or expired (an
    expired package is deleted then)."""
    user = _user(actor)
    with transaction.atomic():
        claimed = RightOfAccessRequest.objects.filter(
            pk=request.pk, status=RightOfAccessStatus.READY, expires_at__gt=now
        ).update(status=RightOfAccessStatus.DELIVERED)
        if claimed == 1:
            package = RightOfAccessPackage.objects.get(request=request)
            label = f"right-of-access-{request.pk}"
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(f"{label}/record.json", decrypt_bytes(bytes(package.bundle), label="a package"))
                archive.writestr(f"{label}/record.html", decrypt_bytes(bytes(package.document), label="a package"))
            package.delete()
            request.refresh_from_db()
            request.fulfilled_by = user
            request.fulfilled_by_label = user.get_username()[:150] if user else ""
            request.fulfilled_at = now
            request.save(update_fields=["fulfilled_by", "fulfilled_by_label", "fulfilled_at", "updated_at"])
            return buffer.getvalue()
    request.refresh_from_db()
    if request.status == RightOfAccessStatus.READY:  # past its time
        right_of_access_expire(now=now)
        request.refresh_from_db()
        raise ValidationError("This package has expired and was deleted: build it again.")
    if request.status == RightOfAccessStatus.DELIVERED:
        raise ValidationError("This package was already downloaded: it can be downloaded once.")
    raise ValidationError("This package is not ready.")


def right_of_access_list() -> Any:
    """Open requests first, overdue before due, by due date; then closed ones, newest first."""
    from django.db.models import Case, IntegerField, Value, When

    return (
        RightOfAccessRequest.objects.select_related("patient")
        .annotate(closed=Case(When(status__in=OPEN, then=Value(0)), default=Value(1), output_field=IntegerField()))
        .order_by("closed", "due_at", "id")
    )
