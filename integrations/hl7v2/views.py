"""HL7 v2 pages: the interface status of the organization and the control id search.

PHI-free by construction: message types, outcomes, states, the HL7 field an error names and our
reason, control ids and times; never the raw message, a name or an identifier.
"""

from __future__ import annotations

from datetime import datetime

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from compliance.decorators import PHI_FREE, staff_view
from healthcrm.http import TenantRequest
from integrations.fhir.views import require_integrations_admin
from integrations.hl7v2.forms import MessageSearchForm
from integrations.hl7v2.models import Hl7Message
from integrations.hl7v2.selectors import interface_status, message_search


def _clinic_midnight(request: TenantRequest) -> datetime:
    local = timezone.localtime(timezone.now(), request.organization.zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


@staff_view(access=PHI_FREE, perm=require_integrations_admin)  # types, outcomes, fields, reasons: no PHI
def interface_status_view(request: TenantRequest) -> HttpResponse:
    status = interface_status(day_start=_clinic_midnight(request))
    return render(request, "integrations/hl7_status.html", {"status": status, "form": MessageSearchForm()})


@staff_view(access=PHI_FREE, perm=require_integrations_admin)
def message_search_view(request: TenantRequest) -> HttpResponse:
    form = MessageSearchForm(request.POST or None)
    results = None
    if request.method == "POST" and form.is_valid():
        results = message_search(control_id=form.cleaned_data["control_id"])
    status = 400 if request.method == "POST" and not form.is_valid() else 200
    return render(request, "integrations/hl7_search.html", {"form": form, "results": results}, status=status)


@staff_view(access=PHI_FREE)  # the log row only (never the raw message)
def message_detail_view(request: TenantRequest, pk: int) -> HttpResponse:
    message = Hl7Message.objects.select_related("sender").defer("raw").filter(pk=pk).first()
    if message is None:  # tenant manager: another organization's message is not found
        raise Http404("No message matches the given id.")
    require_integrations_admin(request)
    return render(request, "integrations/hl7_message.html", {"message": message})
