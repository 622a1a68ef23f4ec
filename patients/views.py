from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from compliance.access import access_recorder, phi_view
from compliance.guards import require_perm
from compliance.models import AccessAction
from healthcrm.decorators import organization_required
from healthcrm.models import Location
from healthcrm.pagination import paginate_by_pk
from patients import services
from patients.care.forms import PatientFilter
from patients.care.views import render_patient_tab
from patients.forms import (
    AllergyForm,
    AppointmentForm,
    ConditionForm,
    MedicationForm,
    ObservationForm,
    PatientEditForm,
    PatientForm,
    PatientSearchForm,
    RescheduleForm,
)
from patients.models import AppointmentStatus, Patient, Practitioner
from patients.policies import can_see_clinical, require_clinical
from patients.selectors import (
    appointment_calendar,
    appointment_list_for_patient,
    get_appointment_for_user,
    get_patient_for_user,
    name_search_hint,
    patient_list,
    patient_summary,
)
from patients.services import appointment_book, appointment_reschedule, appointment_set_status

PAGE_SIZE = 25


@login_required
@organization_required
@phi_view(AccessAction.LIST)
def patient_list_view(request: HttpRequest) -> HttpResponse:
    require_perm(request, "patients.view_patient")
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
        "filters": filters if clinical else None,
    }
    template = "patients/partials/patient_table.html" if request.htmx else "patients/patient_list.html"
    return render(request, template, context)


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def patient_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
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


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def patient_edit_view(request: HttpRequest, pk: int) -> HttpResponse:
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


def _form_page(request: HttpRequest, patient: Patient, form: Form, *, title: str, submit: str) -> HttpResponse:
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "title": title, "submit": submit}
    return render(request, "patients/record_form.html", context, status=status)


def _add_to_record(
    request: HttpRequest, pk: int, form_class: type[Form], service: Callable[..., Any], *, title: str, done: str
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


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def condition_add_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _add_to_record(
        request, pk, ConditionForm, services.condition_add, title="Add a problem", done="Problem added."
    )


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def medication_add_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _add_to_record(
        request, pk, MedicationForm, services.medication_add, title="Add a medication", done="Medication added."
    )


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def allergy_add_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _add_to_record(request, pk, AllergyForm, services.allergy_add, title="Add an allergy", done="Allergy added.")


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def observation_add_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _add_to_record(
        request,
        pk,
        ObservationForm,
        services.observation_record,
        title="Record a measurement",
        done="Measurement recorded.",
    )


# -- Appointments --------------------------------------------------------------------------------


def _form_error(form, exc: ValidationError) -> None:  # type: ignore[no-untyped-def]
    """Put a service's errors on the form: times on the start time, the rest on the form."""
    errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
    for field, messages_ in errors.items():
        target = "start_time" if field in ("starts_at", "ends_at") else field if field in form.fields else None
        for message in messages_:
            form.add_error(target, message)


@login_required
@organization_required
@phi_view(AccessAction.LIST)
def appointment_calendar_view(request: HttpRequest) -> HttpResponse:
    require_perm(request, "patients.view_appointment")
    zone = request.organization.zone  # type: ignore[attr-defined]
    try:
        day = date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        day = timezone.now().astimezone(zone).date()
    span = "day" if request.GET.get("view") == "day" else "week"
    first = day if span == "day" else day - timedelta(days=day.weekday())
    days = [first + timedelta(days=n) for n in range(1 if span == "day" else 7)]
    practitioner = Practitioner.objects.filter(pk=request.GET.get("practitioner") or None).first()
    location = Location.objects.filter(pk=request.GET.get("location") or None).first()
    start = datetime.combine(days[0], time.min, tzinfo=zone)
    end = datetime.combine(days[-1] + timedelta(days=1), time.min, tzinfo=zone)
    appointments = appointment_calendar(start=start, end=end, practitioner=practitioner, location=location)
    access_recorder(request).saw(appointments)
    by_day: dict[date, list] = {d: [] for d in days}
    for appointment in appointments:
        by_day.setdefault(appointment.starts_at.astimezone(zone).date(), []).append(appointment)
    step = timedelta(days=1 if span == "day" else 7)
    context = {
        "span": span,
        "days": [(d, by_day.get(d, [])) for d in days],
        "today": timezone.now().astimezone(zone).date(),
        "previous": (first - step).isoformat(),
        "next": (first + step).isoformat(),
        "anchor": day.isoformat(),
        "practitioner": practitioner,
        "location": location,
        "practitioners": Practitioner.objects.filter(is_active=True),
        "locations": Location.objects.filter(is_active=True),
    }
    return render(request, "patients/appointment_calendar.html", context)


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def appointment_create_view(request: HttpRequest, patient_pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, patient_pk)
    require_perm(request, "patients.add_appointment")
    form = AppointmentForm(request.POST or None, initial={"date": request.GET.get("date")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            appointment = appointment_book(
                patient=patient,
                practitioner=data["practitioner"],
                location=data["location"],
                kind=data["kind"],
                appointment_type=data["appointment_type"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                reason=data["reason"],
                actor=request.user,
            )
        except ValidationError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, "Appointment booked.")
            return redirect("patients:appointment_detail", pk=appointment.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "patients/appointment_form.html", {"form": form, "patient": patient}, status=status)


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def appointment_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    appointment = get_appointment_for_user(request, pk)
    access_recorder(request).saw([appointment.patient])
    choices = [(s, AppointmentStatus(s).label) for s in AppointmentStatus.values if appointment.can_become(s)]
    return render(request, "patients/appointment_detail.html", {"appointment": appointment, "next_statuses": choices})


@login_required
@organization_required
@phi_view(AccessAction.VIEW)
def appointment_reschedule_view(request: HttpRequest, pk: int) -> HttpResponse:
    appointment = get_appointment_for_user(request, pk, "patients.change_appointment")
    zone = request.organization.zone  # type: ignore[attr-defined]
    local = appointment.starts_at.astimezone(zone)
    minutes = int((appointment.ends_at - appointment.starts_at).total_seconds() // 60)
    initial = {
        "practitioner": appointment.practitioner_id,
        "date": local.date(),
        "start_time": local.time(),
        "duration": minutes,
    }
    form = RescheduleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            appointment_reschedule(
                appointment=appointment,
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                practitioner=data["practitioner"],
                actor=request.user,
            )
        except ValidationError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, "Appointment rescheduled.")
            return redirect("patients:appointment_detail", pk=appointment.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "patients/appointment_reschedule.html", {"form": form, "appointment": appointment}, status=status
    )


@login_required
@organization_required
@require_POST
@phi_view(AccessAction.VIEW)
def appointment_status_view(request: HttpRequest, pk: int) -> HttpResponse:
    appointment = get_appointment_for_user(request, pk, "patients.change_appointment")
    status = request.POST.get("status", "")
    if status not in AppointmentStatus.values:
        messages.error(request, "Choose a valid status.")
    else:
        try:
            appointment_set_status(appointment=appointment, status=status, actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Appointment marked {AppointmentStatus(status).label.lower()}.")
    return redirect("patients:appointment_detail", pk=appointment.pk)
