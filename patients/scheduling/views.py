"""Scheduling screens: the appointment calendar, booking, an appointment's page, rescheduling,
status changes, and cancelling (asked for, with a reason)."""

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
from patients.care.selectors import get_task_for_user
from patients.care.services import task_set_status
from patients.models import AppointmentStatus, CareTask, Practitioner, TaskStatus
from patients.policies import may_work_on_task
from patients.scheduling.badges import appointment_badges
from patients.scheduling.forms import AppointmentForm, CalendarFilterForm, CancelForm, NoShowForm, RescheduleForm
from patients.scheduling.selectors import appointment_calendar, get_appointment_for_user
from patients.scheduling.services import (
    appointment_book,
    appointment_cancel,
    appointment_reschedule,
    appointment_set_status,
    appointment_status_refusal,
)
from patients.selectors import get_patient_for_user

# The service names the model's times; the form shows them on its start time.
_TIMES_ON_START = {"starts_at": "start_time", "ends_at": "start_time"}


def _task_in_hand(request: TenantRequest, patient_id: int) -> CareTask | None:
    """The task a booking form was opened from (`?task=`, a front-desk reschedule task): done once
    the visit is booked or moved. Another organization's task is a 404; one of another patient,
    closed, or not the user's to close is ignored."""
    raw = request.GET.get("task", "")
    if not raw.isdigit() or len(raw) > 18:
        return None
    task = get_task_for_user(request, raw, "patients.change_caretask")
    if task.patient_id != patient_id or not task.is_open or not may_work_on_task(request.user, task):
        return None
    return task


def _close_task(request: TenantRequest, task: CareTask | None, done: str) -> HttpResponse | None:
    if task is None:
        return None
    task_set_status(task=task, status=TaskStatus.DONE, actor=request.user)
    messages.success(request, f"{done} Task marked done.")
    return redirect("patients:my_tasks")


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
    task = _task_in_hand(request, patient.pk)
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
            if closed := _close_task(request, task, "Appointment booked."):
                return closed
            messages.success(request, "Appointment booked.")
            return redirect("patients:appointment_detail", pk=appointment.pk)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "patient": patient, "task": task}
    return render(request, "patients/scheduling/appointment_form.html", context, status=status)


@staff_view(access=AccessAction.VIEW)
def appointment_detail_view(request: TenantRequest, pk: int) -> HttpResponse:
    appointment = get_appointment_for_user(request, pk)
    access_recorder(request).saw([appointment.patient])
    now = timezone.now()
    # Offer what the service would accept now; cancelling and no-shows have their own forms (a reason).
    allowed = {s for s in AppointmentStatus.values if appointment_status_refusal(appointment, s, now=now) is None}
    buttons = [
        (s, AppointmentStatus(s).label)
        for s in AppointmentStatus.values
        if s in allowed and s not in (AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW)
    ]
    context = {
        "appointment": appointment,
        "next_statuses": buttons,
        "can_cancel": AppointmentStatus.CANCELLED in allowed,
        "no_show_form": NoShowForm() if AppointmentStatus.NO_SHOW in allowed else None,
        "badges": appointment_badges(request, [appointment.pk]).get(appointment.pk, []),
    }
    return render(request, "patients/scheduling/appointment_detail.html", context)


@staff_view(access=AccessAction.VIEW)
def appointment_reschedule_view(request: TenantRequest, pk: int) -> HttpResponse:
    appointment = get_appointment_for_user(request, pk, "patients.change_appointment")
    task = _task_in_hand(request, appointment.patient_id)
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
            if closed := _close_task(request, task, "Appointment rescheduled."):
                return closed
            messages.success(request, "Appointment rescheduled.")
            return redirect("patients:appointment_detail", pk=appointment.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "patients/scheduling/appointment_reschedule.html",
        {"form": form, "appointment": appointment, "task": task},
        status=status,
    )


@staff_view(access=AccessAction.VIEW)
@require_POST
def appointment_status_view(request: TenantRequest, pk: int) -> HttpResponse:
    appointment = get_appointment_for_user(request, pk, "patients.change_appointment")
    status = request.POST.get("status", "")
    if status == AppointmentStatus.CANCELLED:
        return redirect("patients:appointment_cancel", pk=appointment.pk)  # asks first, and why
    no_show = NoShowForm(request.POST)
    reason = no_show.cleaned_data["reason"] if status == AppointmentStatus.NO_SHOW and no_show.is_valid() else ""
    if status not in AppointmentStatus.values:
        messages.error(request, "Choose a valid status.")
    elif status == AppointmentStatus.NO_SHOW and not no_show.is_valid():
        messages.error(request, "Choose a reason for the no-show from the list.")
    else:
        try:
            appointment_set_status(appointment=appointment, status=status, actor=request.user, reason=reason)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Appointment marked {AppointmentStatus(status).label.lower()}.")
    return redirect("patients:appointment_detail", pk=appointment.pk)


@staff_view(access=AccessAction.VIEW)
def appointment_cancel_view(request: TenantRequest, pk: int) -> HttpResponse:
    """GET: are you sure, and why? POST: cancel with the chosen reason (required)."""
    appointment = get_appointment_for_user(request, pk, "patients.change_appointment")
    access_recorder(request).saw([appointment.patient])
    if not appointment.can_become(AppointmentStatus.CANCELLED):
        messages.error(request, f"A {appointment.get_status_display().lower()} appointment cannot be cancelled.")
        return redirect("patients:appointment_detail", pk=appointment.pk)
    form = CancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            appointment_cancel(appointment=appointment, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            form_add_service_errors(form, exc, field_map={"status_reason": "reason"})
        else:
            messages.success(request, "Appointment cancelled.")
            return redirect("patients:appointment_detail", pk=appointment.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "patients/scheduling/appointment_cancel.html",
        {"form": form, "appointment": appointment},
        status=status,
    )
