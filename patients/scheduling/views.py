"""Scheduling screens: the appointment calendar, booking, an appointment's page, rescheduling and
status changes."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from compliance.access import access_recorder
from compliance.decorators import staff_view
from compliance.guards import require_perm
from compliance.models import AccessAction
from healthcrm.http import TenantRequest, form_add_service_errors
from healthcrm.models import Location
from patients.models import AppointmentStatus, Practitioner
from patients.scheduling.badges import appointment_badges
from patients.scheduling.forms import AppointmentForm, CalendarFilterForm, RescheduleForm
from patients.scheduling.selectors import appointment_calendar, get_appointment_for_user
from patients.scheduling.services import appointment_book, appointment_reschedule, appointment_set_status
from patients.selectors import get_patient_for_user

# The service names the model's times; the form shows them on its start time.
_TIMES_ON_START = {"starts_at": "start_time", "ends_at": "start_time"}


@staff_view(access=AccessAction.LIST, perm="patients.view_appointment")
def appointment_calendar_view(request: TenantRequest) -> HttpResponse:
    zone = request.organization.zone
    filters = CalendarFilterForm(request.GET)
    day = filters.value("date") or timezone.now().astimezone(zone).date()
    span = "day" if filters.value("view") == "day" else "week"
    first = day if span == "day" else day - timedelta(days=day.weekday())
    days = [first + timedelta(days=n) for n in range(1 if span == "day" else 7)]
    practitioner = filters.value("practitioner")
    location = filters.value("location")
    start = datetime.combine(days[0], time.min, tzinfo=zone)
    end = datetime.combine(days[-1] + timedelta(days=1), time.min, tzinfo=zone)
    appointments = appointment_calendar(start=start, end=end, practitioner=practitioner, location=location)
    access_recorder(request).saw(appointments)
    badges = appointment_badges(request, [a.pk for a in appointments])
    for appointment in appointments:
        appointment.badges = badges.get(appointment.pk, [])  # type: ignore[attr-defined]
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
    return render(request, "patients/scheduling/appointment_calendar.html", context)


@staff_view(access=AccessAction.VIEW)
def appointment_create_view(request: TenantRequest, patient_pk: int) -> HttpResponse:
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
            form_add_service_errors(form, exc, field_map=_TIMES_ON_START)
        else:
            messages.success(request, "Appointment booked.")
            return redirect("patients:appointment_detail", pk=appointment.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "patients/scheduling/appointment_form.html", {"form": form, "patient": patient}, status=status
    )


@staff_view(access=AccessAction.VIEW)
def appointment_detail_view(request: TenantRequest, pk: int) -> HttpResponse:
    appointment = get_appointment_for_user(request, pk)
    access_recorder(request).saw([appointment.patient])
    choices = [(s, AppointmentStatus(s).label) for s in AppointmentStatus.values if appointment.can_become(s)]
    context = {
        "appointment": appointment,
        "next_statuses": choices,
        "badges": appointment_badges(request, [appointment.pk]).get(appointment.pk, []),
    }
    return render(request, "patients/scheduling/appointment_detail.html", context)


@staff_view(access=AccessAction.VIEW)
def appointment_reschedule_view(request: TenantRequest, pk: int) -> HttpResponse:
    appointment = get_appointment_for_user(request, pk, "patients.change_appointment")
    zone = request.organization.zone
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
            form_add_service_errors(form, exc, field_map=_TIMES_ON_START)
        else:
            messages.success(request, "Appointment rescheduled.")
            return redirect("patients:appointment_detail", pk=appointment.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "patients/scheduling/appointment_reschedule.html",
        {"form": form, "appointment": appointment},
        status=status,
    )


@staff_view(access=AccessAction.VIEW)
@require_POST
def appointment_status_view(request: TenantRequest, pk: int) -> HttpResponse:
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
