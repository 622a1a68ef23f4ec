"""The patient record's Documents tab: list, upload, download (access-logged), soft delete.

Who: the clinical roles (provider, nurse, coordinator) list, upload and download (documents are
referrals and lab reports: the clinical field group); administrators see the list and delete a
misfiled document, without opening it; every other role gets 403, another organization 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from compliance.decorators import staff_view
from compliance.guards import require_perm
from compliance.models import AccessAction
from healthcrm.http import TenantRequest, form_add_service_errors
from patients.breakglass.policy import require_unrestricted
from patients.breakglass.services import record_restriction_set
from patients.care.views import render_patient_tab
from patients.documents import selectors, services
from patients.documents.forms import DocumentUploadForm
from patients.documents.uploads import BoundedMemoryUploadHandler
from patients.policies import can_see_clinical, require_clinical
from patients.selectors import get_patient_for_user

VIEW_PERM = "patients.view_patientdocument"
ADD_PERM = "patients.add_patientdocument"
DELETE_PERM = "patients.delete_patientdocument"


# CSRF is checked inside (csrf_protect below), after the upload handler is swapped: the middleware
# would read the body first, with Django's default handlers, which spool big files to disk in clear.
@csrf_exempt
@staff_view(access=AccessAction.VIEW)
def documents_tab_view(request: TenantRequest, pk: int) -> HttpResponse:
    handler = BoundedMemoryUploadHandler(request, max_bytes=services.max_bytes())
    request.upload_handlers = [handler]
    return _documents_tab(request, pk, handler)


@csrf_protect
def _documents_tab(request: TenantRequest, pk: int, handler: BoundedMemoryUploadHandler) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    require_perm(request, VIEW_PERM)
    user = request.user
    clinical = can_see_clinical(user)
    may_upload = clinical and user.has_perm(ADD_PERM)
    form = DocumentUploadForm()
    if request.method == "POST":
        if not may_upload:
            require_clinical(request, patient)
            require_perm(request, ADD_PERM)
        form = DocumentUploadForm(request.POST, request.FILES, too_large=handler.too_large)
        if form.is_valid():
            data = form.cleaned_data
            upload = data["file"]
            try:
                services.document_upload(
                    patient=patient,
                    title=data["title"],
                    kind=data["kind"],
                    data=upload.read(),
                    original_name=upload.name or "",
                    actor=user,
                )
            except ValidationError as exc:
                form_add_service_errors(form, exc)
            else:
                messages.success(request, "Document uploaded.")
                return redirect("patients:documents", pk=patient.pk)
    documents = list(selectors.document_list(patient=patient))
    request.phi_access.saw(documents)
    context = {
        "documents": documents,
        "upload_form": form if may_upload else None,
        "can_download": clinical,
        "can_delete": user.has_perm(DELETE_PERM),
        "can_restrict": may_upload,
    }
    return render_patient_tab(
        request,
        patient,
        "documents",
        "patients/documents/tab_documents.html",
        context,
        status=400 if form.errors else 200,
    )


@staff_view(access=AccessAction.VIEW)
@require_GET
def document_download_view(request: TenantRequest, pk: int) -> HttpResponse:
    """The document's bytes, decrypted, as an attachment that no cache keeps (access-logged)."""
    document = selectors.get_document_for_user(request, pk, VIEW_PERM)
    require_clinical(request, document.patient)
    require_unrestricted(request, document, document.patient)
    data = selectors.document_bytes(document=document)
    name = services.safe_filename(document.original_name or document.title, document.extension)
    # The whole file is in memory already (Fernet decrypts a token at once, at most the upload limit).
    response = HttpResponse(data, content_type=document.content_type)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=name) or "attachment"
    response["Content-Length"] = str(len(data))
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@staff_view(access=AccessAction.VIEW)
@require_POST
def document_delete_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Administrators hide a misfiled document (soft, audited)."""
    document = selectors.get_document_for_user(request, pk, DELETE_PERM)
    services.document_delete(document=document, actor=request.user)
    messages.success(request, "Document deleted.")
    return redirect("patients:documents", pk=document.patient_id)


@staff_view(access=AccessAction.CHANGE)
@require_POST
def document_restrict_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Restrict a document at the patient's request, or lift it (audited; lifting takes a grant)."""
    document = selectors.get_document_for_user(request, pk, ADD_PERM)
    require_clinical(request, document.patient)
    restrict = request.POST.get("restricted") == "1"
    if not restrict:
        require_unrestricted(request, document, document.patient)
    record_restriction_set(record=document, restricted=restrict, actor=request.user)
    messages.success(request, "Document restricted at the patient's request." if restrict else "Restriction lifted.")
    return redirect("patients:documents", pk=document.patient_id)
