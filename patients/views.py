from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import BaseForm
from django.http import HttpResponse
from django.shortcuts import redirect, render

from compliance.access import access_recorder
from compliance.decorators import staff_view
from compliance.models import AccessAction
from healthcrm.http import TenantRequest, render_partial_or_page
from healthcrm.pagination import paginate_by_pk
from patients import services
from patients.care.forms import PatientFilter
from patients.care.views import render_patient_tab
from patients.forms import (
    CHANNEL_RULE,
    AllergyForm,
    ConditionForm,
    MedicationForm,
    ObservationForm,
    PatientEditForm,
    PatientForm,
    PatientSearchForm,
)
from patients.models import Patient
from patients.policies import can_see_clinical, require_clinical
from patients.scheduling.selectors import appointment_list_for_patient
from patients.selectors import NO_MATCH_HELP, get_patient_for_user, name_search_hint, patient_list, patient_summary

PAGE_SIZE = 25


@staff_view(access=AccessAction.LIST, perm="patients.view_patient")
def patient_list_view(request: TenantRequest) -> HttpResponse:
    # Searches are POSTed: a name, phone or birth date typed here is PHI and must not end up in
    # URLs (browser history, proxy and server logs). GET shows the unsearched list.
    data = request.POST if request.method == "POST" else request.GET.copy()
    if request.method != "POST":
        data.pop("q", None)
    form = PatientSearchForm(data)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    # Filters that reveal clinical facts (condition, overdue tasks) are for the clinical field group.
    clinical = can_see_clinical(request.user)
    filters = PatientFilter(data if clinical else None, queryset=patient_list(query=query), request=request)
    patients = filters.qs  # invalid filter values are shown as errors and left out
    page = paginate_by_pk(patients, data.get("page"), PAGE_SIZE)
    recorder = access_recorder(request)
    recorder.saw(page.object_list)
    recorder.searched(q=query)
    if clinical:
        recorder.searched(
            **{k: str(v) for k, v in getattr(filters.form, "cleaned_data", {}).items() if v not in (None, "")}
        )
    context = {
        "form": form,
        "page": page,
        "query": query,
        "hint": name_search_hint(query),
        "no_match_help": NO_MATCH_HELP,
        "filters": filters if clinical else None,
    }
    return render_partial_or_page(
        request, "patients/patient_list.html", "patients/partials/patient_table.html", context
    )


@staff_view(access=AccessAction.VIEW)
def patient_detail_view(request: TenantRequest, pk: int) -> HttpResponse:
    """The Summary tab: demographics and appointments for everyone who may see the patient; the
    clinical summary only for the clinical field group (patients.policies)."""
    patient = get_patient_for_user(request, pk)
    clinical = can_see_clinical(request.user)
    context = {
        "summary": patient_summary(patient=patient, clinical=clinical),
        "appointments": appointment_list_for_patient(patient=patient, limit=PAGE_SIZE),
        "can_book": request.user.has_perm("patients.add_appointment"),
        # Refills due within a week (or overdue) are highlighted.
        "refill_soon": date.today() + timedelta(days=7),
    }
    return render_patient_tab(request, patient, "summary", "patients/patient_detail.html", context)


@staff_view(access=AccessAction.VIEW, perm="patients.add_patient")
def patient_create_view(request: TenantRequest) -> HttpResponse:
    form = PatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_create(**form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            access_recorder(request).saw([patient])
            messages.success(request, f"Patient created. Preferred channel: {patient.get_preferred_channel_display()}.")
            return redirect("patients:detail", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "channel_rule": CHANNEL_RULE}
    return render(request, "patients/patient_form.html", context, status=status)


@staff_view(access=AccessAction.VIEW)
def patient_edit_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk, "patients.change_patient")
    form = PatientEditForm(request.POST or None, instance=patient)
    if request.method == "POST" and form.is_valid():
        try:
            services.patient_update(patient=patient, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Patient record saved.")
            return redirect("patients:detail", pk=patient.pk)
    return _form_page(request, patient, form, title="Edit patient record", submit="Save changes")


def _form_page(request: TenantRequest, patient: Patient, form: BaseForm, *, title: str, submit: str) -> HttpResponse:
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "title": title, "submit": submit}
    return render(request, "patients/record_form.html", context, status=status)


def _add_to_record(
    request: TenantRequest, pk: int, form_class: type[BaseForm], service: Callable[..., Any], *, title: str, done: str
) -> HttpResponse:
    """The add-to-the-record pages share one shape: guarded fetch, form, service, back to the patient.

    They edit the clinical summary: the front desk (no clinical field group) gets 403.
    """
    patient = get_patient_for_user(request, pk, "patients.change_patient")
    require_clinical(request, patient)
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            service(patient=patient, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, done)
            return redirect("patients:detail", pk=patient.pk)
    return _form_page(request, patient, form, title=title, submit="Add")


@staff_view(access=AccessAction.VIEW)
def condition_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    return _add_to_record(
        request, pk, ConditionForm, services.condition_add, title="Add a problem", done="Problem added."
    )


@staff_view(access=AccessAction.VIEW)
def medication_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    return _add_to_record(
        request, pk, MedicationForm, services.medication_add, title="Add a medication", done="Medication added."
    )


@staff_view(access=AccessAction.VIEW)
def allergy_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    return _add_to_record(request, pk, AllergyForm, services.allergy_add, title="Add an allergy", done="Allergy added.")


@staff_view(access=AccessAction.VIEW)
def observation_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    return _add_to_record(
        request,
        pk,
        ObservationForm,
        services.observation_record,
        title="Record a measurement",
        done="Measurement recorded.",
    )
