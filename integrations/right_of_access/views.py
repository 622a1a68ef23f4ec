"""Right-of-access pages, for compliance officers and administrators (`compliance.view_accesslog`):
the requests with their due dates (overdue first), one request with its progress bar (htmx
polling while the job runs), start, and the one download (access-logged as an export).

Another organization's request or patient is 404 for every role, then 403 without the permission.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from compliance.access import access_recorder, record_denied, record_denied_ids
from compliance.decorators import staff_view
from compliance.models import AccessAction
from healthcrm.http import TenantRequest, render_partial_or_page
from integrations.models import RightOfAccessRequest, RightOfAccessStatus
from integrations.right_of_access import services
from patients.access_report.views import get_report_patient

PERM = "compliance.view_accesslog"
PAGE_SIZE = 50


def _request_for_user(request: TenantRequest, pk: int) -> RightOfAccessRequest:
    """The guarded fetch: another organization's request is 404 (the tenant manager does not find
    it), then 403 without PERM (a role permission, not an object one), each logged as denied."""
    found = RightOfAccessRequest.objects.select_related("patient").filter(pk=pk).first()
    if found is None:
        record_denied_ids(request, [(RightOfAccessRequest._meta.label_lower, pk)])
        raise Http404("No right of access request matches the given id.")
    if not request.user.has_perm(PERM):
        record_denied(request, found)
        raise PermissionDenied
    access_recorder(request).saw([found])  # the request and its patient
    return found


@staff_view(access=AccessAction.LIST, perm=PERM)
def right_of_access_list_view(request: TenantRequest) -> HttpResponse:
    page = Paginator(services.right_of_access_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    access_recorder(request).saw(page.object_list)
    context = {"page": page, "now": timezone.now(), "open": services.OPEN}
    return render(request, "integrations/right_of_access/list.html", context)


@staff_view(access=AccessAction.VIEW)
@require_POST
def right_of_access_create_view(request: TenantRequest, patient_pk: int) -> HttpResponse:
    patient = get_report_patient(request, patient_pk)
    created = services.right_of_access_receive(patient=patient, actor=request.user, now=timezone.now())
    messages.success(request, f"Request received: due {timezone.localtime(created.due_at):%Y-%m-%d}.")
    return redirect("integrations:right_of_access", pk=created.pk)


@staff_view(access=AccessAction.VIEW)
def right_of_access_detail_view(request: TenantRequest, pk: int) -> HttpResponse:
    found = _request_for_user(request, pk)
    now = timezone.now()
    context = {
        "access": found,
        "now": now,
        "running": found.status == RightOfAccessStatus.IN_PROGRESS,
        "downloadable": found.status == RightOfAccessStatus.READY and found.expires_at and found.expires_at > now,
        "startable": services.startable(found, now),
    }
    page, partial = "integrations/right_of_access/detail.html", "integrations/right_of_access/partials/progress.html"
    return render_partial_or_page(request, page, partial, context)


@staff_view(access=AccessAction.VIEW)
@require_POST
def right_of_access_start_view(request: TenantRequest, pk: int) -> HttpResponse:
    found = _request_for_user(request, pk)
    try:
        services.right_of_access_start(request=found)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("integrations:right_of_access", pk=found.pk)


@staff_view(access=AccessAction.VIEW)
@require_POST
def right_of_access_download_view(request: TenantRequest, pk: int) -> HttpResponse:
    """The package, once: a zip of the FHIR Bundle and the document; logged as an export."""
    found = _request_for_user(request, pk)
    try:
        data = services.right_of_access_download(request=found, actor=request.user, now=timezone.now())
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("integrations:right_of_access", pk=found.pk)
    access_recorder(request).action = AccessAction.EXPORT
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="right-of-access-{found.pk}.zip"'
    return response
