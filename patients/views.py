from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from compliance.access import access_recorder, phi_view
from compliance.models import AccessAction
from healthcrm.guards import require_perm
from healthcrm.views import organization_required
from patients import services
from patients.forms import PatientForm, PatientSearchForm
from patients.selectors import get_patient_for_user, patient_list

PAGE_SIZE = 25


@login_required
@organization_required
@phi_view(AccessAction.LIST)
def patient_list_view(request: HttpRequest) -> HttpResponse:
    require_perm(request, "patients.view_patient")
    form = PatientSearchForm(request.GET)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    page = Paginator(patient_list(query=query), PAGE_SIZE).get_page(request.GET.get("page"))
    recorder = access_recorder(request)
    recorder.saw(page.object_list)
    recorder.searched(q=query)
    context = {"form": form, "page": page, "query": query}
    template = "patients/partials/patient_table.html" if request.htmx else "patients/patient_list.html"
    return render(request, template, context)


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def patient_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    return render(request, "patients/patient_detail.html", {"patient": patient})


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def patient_create_view(request: HttpRequest) -> HttpResponse:
    require_perm(request, "patients.add_patient")
    form = PatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_create(**form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            access_recorder(request).saw([patient])
            messages.success(request, "Patient created.")
            return redirect("patients:detail", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "patients/patient_form.html", {"form": form}, status=status)
