from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import BaseForm
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from compliance.access import access_recorder
from compliance.decorators import staff_view
from compliance.guards import get_object_for_user
from compliance.models import AccessAction
from healthcrm.http import TenantRequest, render_partial_or_page
from healthcrm.pagination import paginate_by_pk
from patients import services
from patients.care.forms import PatientFilter
from patients.care.views import render_patient_tab
from patients.forms import (
    CHANNEL_RULE,
    AccessFlagForm,
    AllergyForm,
    ConditionForm,
    CoverageForm,
    IdentifierForm,
    MedicationForm,
    MergeChoiceForm,
    MergeSearchForm,
    ObservationForm,
    PatientEditForm,
    PatientForm,
    PatientSearchForm,
)
from patients.merge import patient_merge_plan
from patients.models import Coverage, Patient, PatientIdentifier
from patients.policies import can_see_clinical, require_clinical
from patients.scheduling.selectors import appointment_list_for_patient
from patients.selectors import (
    NO_MATCH_HELP,
    get_patient_for_user,
    name_search_hint,
    patient_list,
    patient_match,
    patient_possible_duplicates,
    patient_summary,
)

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
        "can_book": patient.is_active and request.user.has_perm("patients.add_appointment"),
        # Refills due within a week (or overdue) are highlighted.
        "refill_soon": date.today() + timedelta(days=7),
    }
    return render_patient_tab(request, patient, "summary", "patients/patient_detail.html", context)


_MRN_TAKEN = str(
    next(c.violation_error_message for c in Patient._meta.constraints if c.name == "patient_mrn_unique_per_org")
)


@staff_view(access=AccessAction.VIEW, perm="patients.add_patient")
def patient_create_view(request: TenantRequest) -> HttpResponse:
    """Add a patient; a possible duplicate (same name and birth date, or same mobile number) is
    shown with links instead of being created, until the user ticks "create anyway"."""
    form = PatientForm(request.POST or None)
    duplicates: list[Patient] = []
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        if not data.pop("create_anyway", False):
            duplicates = patient_possible_duplicates(
                given_name=data["given_name"],
                family_name=data["family_name"],
                date_of_birth=data["date_of_birth"],
                phone_mobile=data.get("phone_mobile") or "",
            )
        if not duplicates:
            try:
                patient = services.patient_create(**data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                access_recorder(request).saw([patient])
                channel = patient.get_preferred_channel_display()
                messages.success(request, f"Patient created. Preferred channel: {channel}.")
                return redirect("patients:detail", pk=patient.pk)
    if duplicates:
        access_recorder(request).saw(duplicates)
        if patient_match(identifiers=[], mrn=form.cleaned_data["mrn"]) is not None:
            # A taken MRN is an error whatever the warning says: "create anyway" could not save it.
            form.add_error("mrn", _MRN_TAKEN)
    status = 400 if request.method == "POST" and (form.errors or not duplicates) else 200
    context = {"form": form, "channel_rule": CHANNEL_RULE, "duplicates": duplicates}
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


# -- Merge a duplicate record into another ---------------------------------------------------------

MERGE_RESULTS = 20


@staff_view(access=AccessAction.VIEW)
def patient_merge_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Merge this (duplicate) record into another, for administrators (`patients.merge_patient`).

    Three POSTed steps on one page, so no search term or choice is ever in a URL: `search` finds
    the record to keep (the patient search), `review` shows side by side what will move, `merge`
    (with the confirmation ticked) runs `patient_merge` and opens the surviving record."""
    duplicate = get_patient_for_user(request, pk, "patients.merge_patient")
    step = request.POST.get("step", "") if request.method == "POST" else ""
    context: dict[str, Any] = {"duplicate": duplicate}
    if duplicate.merged_into_id or not duplicate.is_active:
        return render(request, "patients/merge.html", context)
    if step in ("review", "merge"):
        choice = MergeChoiceForm(request.POST)
        if choice.is_valid():
            survivor = get_patient_for_user(request, choice.cleaned_data["survivor"], "patients.merge_patient")
            plan = patient_merge_plan(survivor=survivor, duplicate=duplicate)
            if step == "merge" and not plan.blockers:
                if not choice.cleaned_data["confirm"]:
                    choice.add_error("confirm", "Tick the box to confirm that both records are the same person.")
                else:
                    try:
                        services.patient_merge(survivor=survivor, duplicate=duplicate, actor=request.user)
                    except ValidationError as exc:
                        choice.add_error(None, exc)
                    else:
                        # No MRN in the message: messages may travel in the session or a cookie.
                        messages.success(request, "Record merged. Everything of the duplicate is on this record now.")
                        return redirect("patients:detail", pk=survivor.pk)
            context.update({"plan": plan, "choice": choice, "survivor": survivor})
            status = 400 if step == "merge" else 200
            return render(request, "patients/merge_review.html", context, status=status)
        step = "search"  # a forged or missing choice: back to the search, with the form's errors
        context["choice_error"] = "Choose the record to keep from the list."
    search = MergeSearchForm(request.POST if step == "search" and "q" in request.POST else None)
    results: list[Patient] = []
    recorder = access_recorder(request)
    if search.is_bound and search.is_valid():
        query = search.cleaned_data["q"]
        found = patient_list(query=query).exclude(pk=duplicate.pk).order_by("-created_at", "-id")
        results = list(found[:MERGE_RESULTS])
        recorder.searched(q=query)
        context.update({"searched": True, "hint": name_search_hint(query)})
    suggestions = patient_possible_duplicates(
        given_name=duplicate.given_name,
        family_name=duplicate.family_name,
        date_of_birth=duplicate.date_of_birth,
        phone_mobile=duplicate.phone_mobile,
        exclude_pk=duplicate.pk,
    )
    recorder.saw([*suggestions, *results])
    context.update({"search": search, "results": results, "suggestions": suggestions})
    status = 400 if (search.is_bound and not search.is_valid()) or "choice_error" in context else 200
    return render(request, "patients/merge.html", context, status=status)


# -- Insurance and identifiers (registration: front desk, coordinators, administrators) -----------


def _registration_form(
    request: TenantRequest,
    patient: Patient,
    form: BaseForm,
    save: Callable[[dict[str, Any]], Any],
    *,
    title: str,
    submit: str,
    done: str,
) -> HttpResponse:
    if request.method == "POST" and form.is_valid():
        try:
            save(dict(form.cleaned_data))
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, done)
            return redirect("patients:detail", pk=patient.pk)
    return _form_page(request, patient, form, title=title, submit=submit)


def _live(request: TenantRequest, patient: Patient) -> None:
    """Registration details are changed on live records only (a merged record is history)."""
    if not patient.is_active:
        raise PermissionDenied


@staff_view(access=AccessAction.VIEW)
def coverage_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk, "patients.add_coverage")
    _live(request, patient)
    form = CoverageForm(request.POST or None)
    return _registration_form(
        request,
        patient,
        form,
        lambda data: services.coverage_add(patient=patient, **data),
        title="Add insurance coverage",
        submit="Add",
        done="Coverage added.",
    )


def _coverage_for_user(request: TenantRequest, pk: int, perm: str) -> Coverage:
    coverage = get_object_for_user(request, Coverage.objects.select_related("patient"), pk, perm)
    _live(request, coverage.patient)
    return coverage


@staff_view(access=AccessAction.VIEW)
def coverage_edit_view(request: TenantRequest, pk: int) -> HttpResponse:
    coverage = _coverage_for_user(request, pk, "patients.change_coverage")
    form = CoverageForm(request.POST or None, instance=coverage)
    return _registration_form(
        request,
        coverage.patient,
        form,
        lambda data: services.coverage_update(coverage=coverage, **data),
        title="Edit insurance coverage",
        submit="Save changes",
        done="Coverage saved.",
    )


@staff_view(access=AccessAction.VIEW)
@require_POST
def coverage_remove_view(request: TenantRequest, pk: int) -> HttpResponse:
    coverage = _coverage_for_user(request, pk, "patients.delete_coverage")
    patient = coverage.patient
    services.coverage_remove(coverage=coverage)
    messages.success(request, "Coverage removed.")
    return redirect("patients:detail", pk=patient.pk)


@staff_view(access=AccessAction.VIEW)
def identifier_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk, "patients.add_patientidentifier")
    _live(request, patient)
    form = IdentifierForm(request.POST or None)
    return _registration_form(
        request,
        patient,
        form,
        lambda data: services.patient_identifier_add(patient=patient, **data),
        title="Add an identifier",
        submit="Add",
        done="Identifier added.",
    )


def _identifier_for_user(request: TenantRequest, pk: int, perm: str) -> PatientIdentifier:
    identifier = get_object_for_user(request, PatientIdentifier.objects.select_related("patient"), pk, perm)
    _live(request, identifier.patient)
    return identifier


@staff_view(access=AccessAction.VIEW)
def identifier_edit_view(request: TenantRequest, pk: int) -> HttpResponse:
    identifier = _identifier_for_user(request, pk, "patients.change_patientidentifier")
    form = IdentifierForm(request.POST or None, instance=identifier)
    return _registration_form(
        request,
        identifier.patient,
        form,
        lambda data: services.patient_identifier_update(identifier=identifier, **data),
        title="Edit an identifier",
        submit="Save changes",
        done="Identifier saved.",
    )


@staff_view(access=AccessAction.VIEW)
@require_POST
def identifier_remove_view(request: TenantRequest, pk: int) -> HttpResponse:
    identifier = _identifier_for_user(request, pk, "patients.delete_patientidentifier")
    patient = identifier.patient
    services.patient_identifier_remove(identifier=identifier)
    messages.success(request, "Identifier removed.")
    return redirect("patients:detail", pk=patient.pk)


# Administrators and compliance flag VIP and employee records: every opening raises an alert.
@staff_view(access=AccessAction.VIEW, perm="patients.flag_patient")
def patient_access_flag_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk, perm="patients.flag_patient")
    form = AccessFlagForm(request.POST or None, initial={"access_flag": patient.access_flag})
    if request.method == "POST" and form.is_valid():
        services.patient_access_flag_set(patient=patient, flag=form.cleaned_data["access_flag"])
        messages.success(request, "Flag saved.")
        return redirect("patients:access_flag", pk=patient.pk)
    status = 400 if form.errors else 200
    return render(request, "patients/access_flag.html", {"patient": patient, "form": form}, status=status)
