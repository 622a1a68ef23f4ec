"""FHIR pages: upload a file and watch its import, EHR connections, a patient's export."""

from __future__ import annotations

import json
from typing import TypeVar

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from compliance.access import phi_free
from compliance.decorators import PHI_FREE, staff_view
from compliance.models import AccessAction
from healthcrm.http import TenantRequest, public_base_url, render_partial_or_page
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.fhir import services
from integrations.fhir.capability import fhir_connection_test
from integrations.fhir.export import fhir_export_patient
from integrations.fhir.forms import ConnectionForm, ImportUploadForm
from integrations.fhir.importer import ImportReport
from integrations.fhir.smart import public_jwks
from integrations.models import AuthType, FhirConnection, ImportJob
from patients.policies import require_clinical
from patients.selectors import get_patient_for_user

M = TypeVar("M", bound=Model)


def require_integrations_admin(request: TenantRequest) -> None:
    """Imports and connections are for the organization's administrators (or a granted permission)."""
    membership = getattr(request, "membership", None)
    if request.user.is_superuser or (membership is not None and membership.role == "admin"):
        return
    if request.user.has_perm("integrations.add_importjob"):
        return
    raise PermissionDenied


def _get_for_integrations_admin(request: TenantRequest, queryset: QuerySet[M], pk: int) -> M:
    """One import job or connection of the current organization, for its administrators.

    The tenant manager does not find another organization's row (404, like an id that never
    existed), and only then is the role checked (403): the answer never tells a member of one
    clinic which ids another clinic holds.
    """
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given id.")
    require_integrations_admin(request)
    return obj


def _job_for_user(request: TenantRequest, pk: int) -> ImportJob:
    return _get_for_integrations_admin(request, ImportJob.objects.all(), pk)


def _connection_for_user(request: TenantRequest, pk: int) -> FhirConnection:
    return _get_for_integrations_admin(request, FhirConnection.objects.all(), pk)


@staff_view(access=PHI_FREE, perm=require_integrations_admin)  # counts, entry numbers and FHIR paths only
def import_upload_view(request: TenantRequest) -> HttpResponse:
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data["file"].read()
        job = services.import_job_create(
            data=data, source_system=form.cleaned_data["source_system"], actor=request.user
        )
        return redirect("integrations:fhir_import_job", pk=job.pk)
    jobs = ImportJob.objects.select_related("created_by")[:20]
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "integrations/fhir_import.html",
        {"form": form, "jobs": jobs, "max_mb": services.max_upload_bytes() // (1024 * 1024)},
        status=status,
    )


@staff_view(access=PHI_FREE)  # counts, entry numbers, FHIR paths and patient ids only
def import_job_view(request: TenantRequest, pk: int) -> HttpResponse:
    job = _job_for_user(request, pk)
    processed, total = job.processed, job.total
    if not job.is_done:
        live = services.import_progress_get(job.pk)
        if live:
            processed, total = live
    percent = 100 if job.is_done else (min(99, int(100 * processed / total)) if total else 0)
    # A running pull commits its report page by page: the type it is asking for and what arrived.
    pulling = (job.report or {}).get("progress") if not job.is_done else None
    if pulling and pulling.get("types"):
        percent = min(99, int(100 * pulling["types_done"] / pulling["types"]))
    context = {
        "job": job,
        "report": ImportReport.from_dict(job.report) if job.is_done else None,
        "live_report": ImportReport.from_dict(job.report) if pulling else None,
        "pulling": pulling,
        "processed": processed,
        "total": total,
        "percent": percent,
    }
    return render_partial_or_page(
        request, "integrations/fhir_import_job.html", "integrations/partials/fhir_job_status.html", context
    )


@staff_view(access=PHI_FREE, perm=require_integrations_admin)  # connection settings; never the token or key
def connection_list_view(request: TenantRequest) -> HttpResponse:
    return render(request, "integrations/fhir_connections.html", {"connections": FhirConnection.objects.all()})


def _jwks_url(request: TenantRequest, connection: FhirConnection) -> str:
    path = reverse(
        "integrations:fhir_connection_jwks", kwargs={"org_slug": request.organization.slug, "pk": connection.pk}
    )
    return public_base_url(request).rstrip("/") + path


@staff_view(access=PHI_FREE)
def connection_detail_view(request: TenantRequest, pk: int) -> HttpResponse:
    connection = _connection_for_user(request, pk)
    jobs = ImportJob.objects.filter(connection=connection)[:20]
    context = {"connection": connection, "jobs": jobs, "jwks_url": _jwks_url(request, connection)}
    return render(request, "integrations/fhir_connection.html", context)


def _connection_form_page(request: TenantRequest, connection: FhirConnection) -> HttpResponse:
    form = ConnectionForm(request.POST or None, instance=connection)
    if request.method == "POST" and form.is_valid():
        saved = services.fhir_connection_save(connection=form.instance, base_url=form.cleaned_data["base_url"])
        messages.success(request, "Connection saved.")
        return redirect("integrations:fhir_connection", pk=saved.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "integrations/fhir_connection_form.html", {"form": form, "connection": connection}, status=status
    )


@staff_view(access=PHI_FREE, perm=require_integrations_admin)  # settings only; secrets are write-only
def connection_create_view(request: TenantRequest) -> HttpResponse:
    return _connection_form_page(request, FhirConnection())


@staff_view(access=PHI_FREE)  # settings only; secrets are write-only
def connection_edit_view(request: TenantRequest, pk: int) -> HttpResponse:
    return _connection_form_page(request, _connection_for_user(request, pk))


@staff_view(access=PHI_FREE)
@require_POST
def connection_keys_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Generate (or rotate) the connection's SMART key pair; the private key is never shown."""
    connection = _connection_for_user(request, pk)
    rotated = bool(connection.key_id)
    services.fhir_connection_keys_generate(connection=connection)
    messages.success(
        request,
        "New key generated: register the JWKS URL below with the EHR (it now serves only the new key)."
        if rotated
        else "Key generated: register the JWKS URL below with the EHR.",
    )
    return redirect("integrations:fhir_connection", pk=pk)


@require_GET
@phi_free  # the public half of a key: meant to be fetched by the EHR, no sign-in
def connection_jwks_view(request: HttpRequest, org_slug: str, pk: int) -> HttpResponse:
    """The connection's public JWK Set, at a stable URL the EHR registers for SMART Backend Services."""
    organization = Organization.objects.filter(slug=org_slug, is_active=True).first()
    if organization is None:
        raise Http404("No such key set.")
    with organization_context(organization):
        connection = FhirConnection.objects.filter(pk=pk, auth_type=AuthType.SMART).exclude(key_id="").first()
        if connection is None:
            raise Http404("No such key set.")
        jwks = public_jwks(connection.private_key_pem, connection.key_id)
    response = JsonResponse(jwks, content_type="application/jwk-set+json")
    response["Cache-Control"] = "public, max-age=300"
    return response


@staff_view(access=PHI_FREE)
@require_POST
def connection_pull_view(request: TenantRequest, pk: int) -> HttpResponse:
    from django.db import transaction

    from integrations.fhir.tasks import fhir_pull_task

    connection = _connection_for_user(request, pk)
    organization_id, user_id = connection.organization_id, request.user.pk
    transaction.on_commit(lambda: fhir_pull_task.delay(organization_id, connection.pk, actor_id=user_id))
    messages.success(request, "Pull queued.")
    return redirect("integrations:fhir_connection", pk=pk)


@staff_view(access=PHI_FREE)  # the server's metadata only
@require_POST
def connection_test_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Test connection: read the CapabilityStatement and show what the server supports."""
    connection = _connection_for_user(request, pk)
    context = {
        "connection": connection,
        "jobs": ImportJob.objects.filter(connection=connection)[:20],
        "test": fhir_connection_test(connection=connection),
    }
    return render_partial_or_page(
        request, "integrations/fhir_connection.html", "integrations/partials/fhir_connection_test.html", context
    )


@staff_view(access=AccessAction.EXPORT)
def patient_export_view(request: TenantRequest, pk: int) -> HttpResponse:
    """The patient's record as a FHIR R4 Bundle download (access requests); access-logged as an export."""
    patient = get_patient_for_user(request, pk)
    require_clinical(request, patient)  # the export holds the whole clinical record
    bundle = fhir_export_patient(patient=patient)
    response = HttpResponse(json.dumps(bundle, indent=1), content_type="application/fhir+json")
    response["Content-Disposition"] = f'attachment; filename="patient-{patient.pk}-fhir.json"'
    response["Cache-Control"] = "no-store"
    return response
