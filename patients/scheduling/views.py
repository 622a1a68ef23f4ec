"""Scheduling screens: the appointment calendar (week list, day grid, month), booking (from a
patient's page or an empty slot of the day grid; one visit or a series), an appointment's page,
rescheduling, status changes, cancelling (asked for, with a reason), and practitioners' availability."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from compliance.access import access_recorder
from compliance.decorators import PHI_FREE, staff_view
from compliance.guards import get_object_for_user, require_perm
from compliance.models import AccessAction
from healthcrm.http import TenantRequest, form_add_service_errors
from healthcrm.models import Location
from patients.care.selectors import get_task_for_user
from patients.care.services import task_set_status
from patients.forms import PatientSearchForm
from patients.models import (
    Appointment,
    AppointmentStatus,
    Availability,
    AvailabilityException,
    CareTask,
    OfferStatus,
    Patient,
    Practitioner,
    TaskStatus,
    WaitlistEntry,
    WaitlistStatus,
)
from patients.policies import may_work_on_task
from patients.scheduling.badges import appointment_badges
from patients.scheduling.forms import (
    AppointmentForm,
    AvailabilityExceptionForm,
    AvailabilityForm,
    CalendarFilterForm,
    CancelForm,
    DayViewForm,
    NoShowForm,
    RescheduleForm,
    SlotBookingForm,
    WaitlistForm,
    query_id,
)
from patients.scheduling.options import scheduling_options
from patients.scheduling.selectors import (
    appointment_calendar,
    day_columns,
    day_grid,
    get_appointment_for_user,
    get_location_for_user,
    get_practitioner_for_user,
    get_waitlist_entry_for_user,
    month_grid,
    slot_offers_recent,
    waitlist_for_day,
    waitlist_latest_offers,
)
from patients.scheduling.services import (
    appointment_book,
    appointment_cancel,
    appointment_reschedule,
    appointment_series_book,
    appointment_set_status,
    appointment_status_refusal,
    availability_add,
    availability_exception_add,
    availability_exception_remove,
    availability_remove,
    waitlist_add,
    waitlist_close,
)
from patients.selectors import get_patient_for_user, patient_list

# The service names the model's fields; the form shows them on its own (times on the start time).
_TIMES_ON_START = {
    "starts_at": "start_time",
    "ends_at": "start_time",
    "availability_override_reason": "override_reason",
}
SEARCH_RESULTS = 10


def _local(moment: datetime, request: TenantRequest) -> str:
    local = moment.astimezone(request.organization.zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"


def _book_from_form(request: TenantRequest, form: AppointmentForm, patient: Patient) -> Appointment | None:
    """Book what a valid booking form says, one visit or a series; None with the service's errors on
    the form. A series books every occurrence the service accepts and lists the others (messages):
    a clinic would rather have 11 of 12 weekly visits booked and see the 12th to rebook by hand."""
    data = form.cleaned_data
    booking: dict[str, Any] = {
        "practitioner": data["practitioner"],
        "location": data["location"],
        "kind": data["kind"],
        "appointment_type": data["appointment_type"],
        "reason": data["reason"],
        "actor": request.user,
        "availability_override": data["availability_override"],
        "override_reason": data["override_reason"],
    }
    if not data.get("repeat"):
        try:
            return appointment_book(patient=patient, starts_at=data["starts_at"], ends_at=data["ends_at"], **booking)
        except ValidationError as exc:
            form_add_service_errors(form, exc, field_map=_TIMES_ON_START)
            return None
    try:
        result = appointment_series_book(
            patient=patient,
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            every_weeks=data["repeat"],
            count=data.get("repeat_count"),
            until=data.get("repeat_until"),
            **booking,
        )
    except ValidationError as exc:
        form_add_service_errors(form, exc, field_map=_TIMES_ON_START)
        return None
    if not result.booked:
        form.add_error(None, f"None of the {len(result.refused)} visits of the series could be booked.")
        for start, problems in result.refused:
            form.add_error(None, f"{_local(start, request)}: {' '.join(problems)}")
        return None
    total = len(result.booked) + len(result.refused)
    messages.success(request, f"Series booked: {len(result.booked)} of {total} visits.")
    for start, problems in result.refused:
        messages.warning(request, f"Not booked, {_local(start, request)}: {' '.join(problems)}")
    return result.booked[0]


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
        appointment = _book_from_form(request, form, patient)
        if appointment is not None:
            if closed := _close_task(request, task, "Appointment booked."):
                return closed
            if not form.cleaned_data.get("repeat"):
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
                availability_override=data["availability_override"],
                override_reason=data["override_reason"],
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


# -- Day grid and month --------------------------------------------------------------------------


def _calendar_filters(request: TenantRequest) -> tuple[date, Location | None, Practitioner | None]:
    """The day, location and practitioner asked for. A date that does not parse is today; an id that
    is not a number is ignored; another organization's id is a 404 (the guarded fetches)."""
    zone = request.organization.zone
    day = DayViewForm(request.GET).day() or timezone.now().astimezone(zone).date()
    location_id = query_id(request.GET.get("location"))
    practitioner_id = query_id(request.GET.get("practitioner"))
    location = get_location_for_user(request, location_id) if location_id else None
    practitioner = get_practitioner_for_user(request, practitioner_id) if practitioner_id else None
    return day, location, practitioner


def _query(**params: object) -> str:
    return urlencode({k: (v.pk if hasattr(v, "pk") else v) for k, v in params.items() if v not in (None, "")})


@staff_view(access=AccessAction.LIST, perm="patients.view_appointment")
def appointment_day_view(request: TenantRequest) -> HttpResponse:
    """One local day as a grid: rows of the organization's slot length, a column per practitioner at the location (or
    the one chosen); visits where they are, and the empty slots one can book now as links to the
    booking form. The location defaults to the first active one."""
    zone = request.organization.zone
    day, location, practitioner = _calendar_filters(request)
    locations = list(Location.objects.filter(is_active=True))
    if location is None and "location" not in request.GET and locations:
        location = locations[0]
    columns = day_columns(day=day, location=location, practitioner=practitioner)
    now = timezone.now()
    slot_minutes = scheduling_options(request.organization).slot_minutes
    grid = day_grid(day=day, zone=zone, columns=columns, location=location, now=now, slot_minutes=slot_minutes)
    access_recorder(request).saw(grid.appointments)
    may_book = request.user.has_perm("patients.add_appointment")
    for row in grid.rows:
        for cell in row.cells:
            if cell.state == "open" and may_book:
                cell.book_url = (  # type: ignore[attr-defined]
                    reverse("patients:appointment_book")
                    + "?"
                    + _query(
                        practitioner=cell.practitioner,
                        location=location,
                        date=cell.starts_at.date().isoformat(),
                        time=f"{cell.starts_at:%H:%M}",
                    )
                )
    today = now.astimezone(zone).date()
    keep = {"location": location, "practitioner": practitioner}
    context = {
        "day": day,
        "today": today,
        "grid": grid,
        "location": location,
        "practitioner": practitioner,
        "locations": locations,
        "practitioners": Practitioner.objects.filter(is_active=True),
        "slot_minutes": slot_minutes,
        "previous": _query(date=(day - timedelta(days=1)).isoformat(), **keep),
        "next": _query(date=(day + timedelta(days=1)).isoformat(), **keep),
        "today_query": _query(date=today.isoformat(), **keep),
        "month_query": _query(date=day.isoformat(), **keep),
        "waiting": waitlist_for_day(day=day, practitioner=practitioner, location=location).count(),
        "waitlist_query": _query(date=day.isoformat(), **keep),
    }
    return render(request, "patients/scheduling/appointment_day.html", context)


@staff_view(access=PHI_FREE, perm="patients.view_appointment")
def appointment_month_view(request: TenantRequest) -> HttpResponse:
    """A month of local days with their numbers of visits (no names: PHI-free), each a link to its day."""
    zone = request.organization.zone
    day, location, practitioner = _calendar_filters(request)
    first = day.replace(day=1)
    previous = (first - timedelta(days=1)).replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    keep = {"location": location, "practitioner": practitioner}
    weeks = month_grid(month=first, zone=zone, practitioner=practitioner, location=location)
    for week in weeks:
        for cell in week:
            cell.day_query = _query(date=cell.day.isoformat(), **keep)  # type: ignore[attr-defined]
    context = {
        "month": first,
        "weeks": weeks,
        "today": timezone.now().astimezone(zone).date(),
        "location": location,
        "practitioner": practitioner,
        "locations": Location.objects.filter(is_active=True),
        "practitioners": Practitioner.objects.filter(is_active=True),
        "previous": _query(date=previous.isoformat(), **keep) if previous.year > 1 else "",
        "next": _query(date=following.isoformat(), **keep) if following.year < 9999 else "",
        "today_query": _query(date=timezone.now().astimezone(zone).date().isoformat(), **keep),
    }
    return render(request, "patients/scheduling/appointment_month.html", context)


@staff_view(access=AccessAction.VIEW, perm="patients.add_appointment")
def appointment_book_view(request: TenantRequest) -> HttpResponse:
    """Book from an empty slot: the form comes prefilled from the slot (ids, date and time in the query
    string); the front desk finds the patient (the search is POSTed, as on the patient list), picks
    one, a type, and books. Back to the day view showing the visit."""
    _, location, practitioner = _calendar_filters(request)
    day = DayViewForm(request.GET).day()
    start = _query_time(request.GET.get("time", ""))
    initial = {
        "practitioner": practitioner.pk if practitioner else None,
        "location": location.pk if location else None,
        "date": day,
        "start_time": start,
        "duration": scheduling_options(request.organization).slot_minutes,
    }
    search = PatientSearchForm(request.POST if request.POST.get("action") == "search" else None)
    results: list[Patient] = []
    chosen: Patient | None = None
    recorder = access_recorder(request)
    # Booked from the waitlist: its patient comes chosen, and the entry is closed with the visit.
    waitlist_id = query_id(request.GET.get("waitlist"))
    entry: WaitlistEntry | None = get_waitlist_entry_for_user(request, waitlist_id) if waitlist_id else None
    if entry is not None and entry.status != WaitlistStatus.WAITING:
        entry = None
    if entry is not None and request.method == "GET":
        chosen = entry.patient
    if request.method == "POST" and request.POST.get("action") == "search":
        # Keep what was typed in the booking fields; no errors yet: the patient is still being found.
        form = SlotBookingForm(initial={**initial, **{k: v for k, v in request.POST.items() if k in _BOOKING_FIELDS}})
        query = search.cleaned_data["q"].strip() if search.is_valid() else ""
        if query:
            results = list(patient_list(query=query).order_by("id")[:SEARCH_RESULTS])
            recorder.searched(q=query)
            recorder.saw(results)
        status = 200
    elif request.method == "POST":
        form = SlotBookingForm(request.POST)
        if form.is_valid():
            chosen = get_patient_for_user(request, form.cleaned_data["patient"])
            appointment = _book_from_form(request, form, chosen)
            if appointment is not None:
                if not form.cleaned_data.get("repeat"):
                    messages.success(request, "Appointment booked.")
                if entry is not None and entry.patient_id == chosen.pk:
                    waitlist_close(entry=entry, appointment=appointment)
                    messages.success(request, "Taken off the waitlist.")
                local = appointment.starts_at.astimezone(request.organization.zone)
                query = _query(date=local.date().isoformat(), location=appointment.location)
                return redirect(reverse("patients:appointment_day") + "?" + query)
        elif query_id(request.POST.get("patient", "")):
            chosen = get_patient_for_user(request, request.POST["patient"])
        status = 400
    else:
        form = SlotBookingForm(initial=initial)
        status = 200
    if chosen is not None and chosen not in results:
        results.insert(0, chosen)
    back_day = day or timezone.now().astimezone(request.organization.zone).date()
    context = {
        "form": form,
        "search": search if request.POST.get("action") == "search" else PatientSearchForm(),
        "results": results,
        "chosen": chosen,
        "searched": request.POST.get("action") == "search",
        "entry": entry,
        "back": reverse("patients:appointment_day") + "?" + _query(date=back_day.isoformat(), location=location),
    }
    return render(request, "patients/scheduling/appointment_book.html", context, status=status)


_BOOKING_FIELDS = frozenset(SlotBookingForm.base_fields) - {"patient"}


def _query_time(raw: str) -> time | None:
    """ "HH:MM" from the query string, else None."""
    if len(raw) != 5 or raw[2] != ":" or not (raw[:2] + raw[3:]).isdigit() or not raw.isascii():
        return None
    hours, minutes = int(raw[:2]), int(raw[3:])
    return time(hours, minutes) if hours < 24 and minutes < 60 else None


# -- Availability (the clinic's administrator) ----------------------------------------------------


@staff_view(access=PHI_FREE, perm="patients.change_availability")
def availability_view(request: TenantRequest) -> HttpResponse:
    """A practitioner's weekly windows and exceptions, and forms to add them (POST, `action` says
    which); each row has a remove button. Practitioners with none are bookable whenever the
    location is open."""
    practitioners = list(Practitioner.objects.filter(is_active=True))
    practitioner_id = query_id(request.GET.get("practitioner"))
    if practitioner_id:
        practitioner: Practitioner | None = get_practitioner_for_user(request, practitioner_id)
    else:
        practitioner = practitioners[0] if practitioners else None
    action = request.POST.get("action") if request.method == "POST" else None
    window_form = AvailabilityForm(request.POST if action == "window" else None, prefix="window")
    exception_form = AvailabilityExceptionForm(request.POST if action == "exception" else None, prefix="exception")
    status = 200
    if practitioner is not None and action in ("window", "exception"):
        require_perm(request, "patients.add_availability")
        form: forms.ModelForm = window_form if action == "window" else exception_form
        if form.is_valid():
            data = {k: v for k, v in form.cleaned_data.items()}
            try:
                if action == "window":
                    availability_add(practitioner=practitioner, **data)
                else:
                    availability_exception_add(practitioner=practitioner, **data)
            except ValidationError as exc:
                form_add_service_errors(form, exc)
            else:
                messages.success(request, "Availability saved.")
                return redirect(reverse("patients:availability") + "?" + _query(practitioner=practitioner))
        status = 400
    elif request.method == "POST":
        status = 400
    context = {
        "practitioners": practitioners,
        "practitioner": practitioner,
        "windows": Availability.objects.filter(practitioner=practitioner).select_related("location")
        if practitioner
        else [],
        "exceptions": AvailabilityException.objects.filter(
            practitioner=practitioner, date__gte=timezone.now().astimezone(request.organization.zone).date()
        ).select_related("location")
        if practitioner
        else [],
        "window_form": window_form,
        "exception_form": exception_form,
    }
    return render(request, "patients/scheduling/availability.html", context, status=status)


@staff_view(access=PHI_FREE, perm="patients.delete_availability")
@require_POST
def availability_remove_view(request: TenantRequest, pk: int) -> HttpResponse:
    window = get_object_for_user(request, Availability.objects.all(), pk, "patients.delete_availability")
    practitioner_id = window.practitioner_id
    availability_remove(availability=window)
    messages.success(request, "Availability removed.")
    return redirect(reverse("patients:availability") + "?" + _query(practitioner=practitioner_id))


@staff_view(access=PHI_FREE, perm="patients.delete_availabilityexception")
@require_POST
def availability_exception_remove_view(request: TenantRequest, pk: int) -> HttpResponse:
    exception = get_object_for_user(
        request, AvailabilityException.objects.all(), pk, "patients.delete_availabilityexception"
    )
    practitioner_id = exception.practitioner_id
    availability_exception_remove(exception=exception)
    messages.success(request, "Exception removed.")
    return redirect(reverse("patients:availability") + "?" + _query(practitioner=practitioner_id))


# -- Waitlist --------------------------------------------------------------------------------------


@staff_view(access=AccessAction.VIEW)
def waitlist_add_view(request: TenantRequest, patient_pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, patient_pk)
    require_perm(request, "patients.add_appointment")
    form = WaitlistForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            waitlist_add(patient=patient, **form.cleaned_data)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Added to the waitlist.")
            return redirect("patients:waitlist")
    status = 400 if request.method == "POST" else 200
    return render(request, "patients/scheduling/waitlist_form.html", {"form": form, "patient": patient}, status=status)


@staff_view(access=AccessAction.LIST, perm="patients.view_appointment")
def waitlist_view(request: TenantRequest) -> HttpResponse:
    """Patients waiting, first come first; for a day (and a location, a practitioner) when asked: each
    with a link that books them (the day grid shows where the open slots are)."""
    _, location, practitioner = _calendar_filters(request)
    day = DayViewForm(request.GET).day()
    entries = list(waitlist_for_day(day=day, practitioner=practitioner, location=location)[:200])
    now = timezone.now()
    latest = waitlist_latest_offers(entries)
    # Freed slots offered by message (from yesterday on): who was offered each, and who took it.
    offered = slot_offers_recent(since=now - timedelta(days=1))
    shown = [entry.patient for entry in entries] + [o.entry.patient for s in offered for o in s.offers.all()]
    access_recorder(request).saw(shown)
    for slot in offered:
        slot.offer_rows = [(o, OfferStatus(o.status_at(now)).label) for o in slot.offers.all()]  # type: ignore[attr-defined]
    for entry in entries:
        offer = latest.get(entry.pk)
        entry.offer = offer  # type: ignore[attr-defined]
        entry.offer_label = OfferStatus(offer.status_at(now)).label if offer else ""  # type: ignore[attr-defined]
        entry.book_query = _query(  # type: ignore[attr-defined]
            waitlist=entry.pk,
            practitioner=entry.practitioner or practitioner,
            location=entry.location or location,
            date=(day or max(entry.earliest, timezone.now().astimezone(request.organization.zone).date())).isoformat(),
        )
    context = {
        "entries": entries,
        "offered": offered,
        "auto_offer": scheduling_options(request.organization),
        "day": day,
        "location": location,
        "practitioner": practitioner,
        "locations": Location.objects.filter(is_active=True),
        "practitioners": Practitioner.objects.filter(is_active=True),
    }
    return render(request, "patients/scheduling/waitlist.html", context)


@staff_view(access=AccessAction.VIEW, perm="patients.change_appointment")
@require_POST
def waitlist_remove_view(request: TenantRequest, pk: int) -> HttpResponse:
    entry = get_waitlist_entry_for_user(request, pk, "patients.change_appointment")
    access_recorder(request).saw([entry.patient])
    try:
        waitlist_close(entry=entry)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Taken off the waitlist.")
    return redirect("patients:waitlist")
