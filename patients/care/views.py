"""Care coordination screens: patient tabs (care plan, appointments, timeline), work queues, notes,
notifications. Every view is a staff_view (access-logged or declared PHI-free); every object comes
through a guarded fetch."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from compliance.access import access_recorder
from compliance.decorators import PHI_FREE, staff_view
from compliance.guards import require_perm
from compliance.models import AccessAction
from healthcrm.auth import role_in_current_organization
from healthcrm.http import TenantRequest, form_add_service_errors, render_partial_or_page
from healthcrm.security import safe_next_url
from healthcrm.selectors import notification_list
from healthcrm.services import notifications_mark_read
from patients.care import services
from patients.care.forms import (
    CarePlanStartForm,
    CarePlanUpdateForm,
    CareTeamAddForm,
    NoteForm,
    TaskForm,
    TeamQueueFilter,
    TimelinePageForm,
)
from patients.care.selectors import (
    care_plans_for_patient,
    care_team_for,
    get_care_plan_for_user,
    get_care_team_member_for_user,
    get_task_for_user,
    my_tasks,
    patients_due_for_follow_up,
    team_queue,
)
from patients.care.timeline import patient_timeline
from patients.models import Patient, TaskStatus
from patients.policies import can_change_patient, can_see_clinical, may_work_on_task, require_clinical
from patients.scheduling.selectors import appointment_list_for_patient
from patients.selectors import get_patient_for_user

PAGE_SIZE = 25


def render_patient_tab(
    request: TenantRequest, patient: Patient, tab: str, panel: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """A patient page tab: the whole page, or (htmx) just the tabs and panel."""
    context = {
        "patient": patient,
        "tab": tab,
        "panel_template": panel,
        "can_see_clinical": can_see_clinical(request.user),
        # A merged (inactive) record is history: its pages offer no changes.
        "can_edit": patient.is_active and can_change_patient(request.user, patient),
        **context,
    }
    return render_partial_or_page(
        request, "patients/patient_page.html", "patients/partials/patient_tabs.html", context, status=status
    )


# -- Patient tabs ---------------------------------------------------------------------------------


@staff_view(access=AccessAction.VIEW)
def care_plan_tab_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    require_clinical(request, patient)
    user = request.user
    context = {
        "team": care_team_for(patient=patient),
        "plans": care_plans_for_patient(patient=patient),
        "start_form": CarePlanStartForm(),
        "team_form": CareTeamAddForm() if user.has_perm("patients.add_careteammember") else None,
        "can_plan": user.has_perm("patients.add_careplan"),
        "can_task": user.has_perm("patients.add_caretask"),
        "today": timezone.localdate(),
    }
    return render_patient_tab(request, patient, "care_plan", "patients/care/tab_care_plan.html", context)


@staff_view(access=AccessAction.VIEW)
def appointments_tab_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    require_perm(request, "patients.view_appointment")
    page = Paginator(appointment_list_for_patient(patient=patient), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "can_book": request.user.has_perm("patients.add_appointment")}
    return render_patient_tab(request, patient, "appointments", "patients/care/tab_appointments.html", context)


@staff_view(access=AccessAction.VIEW)
def timeline_tab_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    number = TimelinePageForm(request.GET).number()
    clinical = can_see_clinical(request.user)
    context = {
        "timeline": patient_timeline(patient=patient, clinical=clinical, page=number, per_page=PAGE_SIZE),
        "note_form": NoteForm() if request.user.has_perm("patients.add_patientnote") else None,
    }
    return render_patient_tab(request, patient, "timeline", "patients/care/tab_timeline.html", context)


@staff_view(access=AccessAction.VIEW)
def note_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    require_clinical(request, patient)
    require_perm(request, "patients.add_patientnote")
    form = NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.note_add(patient=patient, body=form.cleaned_data["body"], author=request.user)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Note saved.")
            return redirect("patients:timeline", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "patients/care/form.html",
        {"patient": patient, "form": form, "title": "Write a note", "submit": "Save note"},
        status=status,
    )


# -- Care team ------------------------------------------------------------------------------------


@staff_view(access=AccessAction.VIEW)
@require_POST
def care_team_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    require_perm(request, "patients.add_careteammember")
    form = CareTeamAddForm(request.POST)
    if form.is_valid():
        try:
            services.care_team_add(patient=patient, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Added to the care team.")
    else:
        messages.error(request, "Choose a staff member and a role.")
    return redirect("patients:care_plan", pk=patient.pk)


@staff_view(access=AccessAction.VIEW)
@require_POST
def care_team_remove_view(request: TenantRequest, pk: int) -> HttpResponse:
    member = get_care_team_member_for_user(request, pk)
    get_patient_for_user(request, member.patient_id)
    services.care_team_remove(member=member)
    messages.success(request, "Removed from the care team.")
    return redirect("patients:care_plan", pk=member.patient_id)


# -- Care plans and tasks -------------------------------------------------------------------------


@staff_view(access=AccessAction.VIEW)
def care_plan_start_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    require_clinical(request, patient)
    require_perm(request, "patients.add_careplan")
    form = CarePlanStartForm(request.POST or None, initial={"template": request.GET.get("template")})
    if request.method == "POST" and form.is_valid():
        try:
            services.care_plan_start(patient=patient, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Care plan started.")
            return redirect("patients:care_plan", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "title": "Start a care plan", "submit": "Start plan"}
    return render(request, "patients/care/form.html", context, status=status)


@staff_view(access=AccessAction.VIEW)
def care_plan_update_view(request: TenantRequest, pk: int) -> HttpResponse:
    plan = get_care_plan_for_user(request, pk, "patients.change_careplan")
    patient = get_patient_for_user(request, plan.patient_id)
    require_clinical(request, patient)
    initial = {"status": plan.status, "review_date": plan.review_date}
    form = CarePlanUpdateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.care_plan_update(care_plan=plan, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Care plan updated.")
            return redirect("patients:care_plan", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "title": f"Update care plan #{plan.pk}", "submit": "Save"}
    return render(request, "patients/care/form.html", context, status=status)


@staff_view(access=AccessAction.VIEW)
def task_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    require_clinical(request, patient)
    require_perm(request, "patients.add_caretask")
    plan = None
    if request.GET.get("care_plan") or request.POST.get("care_plan"):
        plan = get_care_plan_for_user(request, request.GET.get("care_plan") or request.POST.get("care_plan"))
        if plan.patient_id != patient.pk:
            raise PermissionDenied
    form = TaskForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.task_assign(patient=patient, care_plan=plan, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Task assigned.")
            return redirect("patients:care_plan", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "title": "Assign a task", "submit": "Assign", "care_plan": plan}
    return render(request, "patients/care/form.html", context, status=status)


# Where a task row is shown -> its partial: the queues have a patient column, a care plan does not.
TASK_ROW_TEMPLATES = {
    "queue": "patients/care/partials/task_queue_row.html",
    "care_plan": "patients/care/partials/care_plan_task_row.html",
}


@staff_view(access=AccessAction.VIEW)
@require_POST
def task_status_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Complete (or start, or cancel) a task; htmx gets the updated queue row back."""
    task = get_task_for_user(request, pk, "patients.change_caretask")
    access_recorder(request).saw([task.patient])
    if not may_work_on_task(request.user, task):
        raise PermissionDenied
    status = request.POST.get("status", TaskStatus.DONE)
    error = ""
    try:
        services.task_set_status(task=task, status=status, actor=request.user)
    except ValidationError as exc:
        error = " ".join(exc.messages)
    if request.htmx:
        # The row comes back shaped for the table it sits in (one row partial per context).
        template = TASK_ROW_TEMPLATES.get(request.POST.get("row", ""), TASK_ROW_TEMPLATES["queue"])
        return render(request, template, {"task": task, "error": error, "today": timezone.localdate()})
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Task marked {TaskStatus(task.status).label.lower()}.")
    return redirect(safe_next_url(request, "patients:my_tasks"))


# -- Work queues ----------------------------------------------------------------------------------


def _queue_page(request: TenantRequest, tasks: Any) -> Any:
    page = Paginator(tasks, PAGE_SIZE).get_page(request.GET.get("page"))
    access_recorder(request).saw([task.patient for task in page.object_list])
    return page


@staff_view(access=AccessAction.LIST, perm="patients.view_caretask")
def my_tasks_view(request: TenantRequest) -> HttpResponse:
    role = role_in_current_organization(request.user)
    page = _queue_page(request, my_tasks(user=request.user, role=role))
    context = {"page": page, "today": timezone.localdate(), "title": "My tasks", "role": role}
    return render(request, "patients/care/task_queue.html", context)


@staff_view(access=AccessAction.LIST, perm="patients.view_caretask")
def team_queue_view(request: TenantRequest) -> HttpResponse:
    if not can_see_clinical(request.user):
        raise PermissionDenied  # every team's tasks name clinical work
    form = TeamQueueFilter(request.GET or None)
    role, assignee = "", None
    if form.is_valid():
        role = form.cleaned_data["role"]
        assignee = form.cleaned_data["assignee"]
    page = _queue_page(request, team_queue(role=role, assignee_id=assignee.pk if assignee else None))
    context = {"page": page, "today": timezone.localdate(), "title": "Team queue", "filter_form": form}
    return render(request, "patients/care/task_queue.html", context)


@staff_view(access=AccessAction.LIST, perm="patients.view_patient")
def follow_up_view(request: TenantRequest) -> HttpResponse:
    if not can_see_clinical(request.user):
        raise PermissionDenied
    try:
        days = max(1, min(730, int(request.GET.get("days", "90"))))
    except ValueError:
        days = 90
    page = Paginator(patients_due_for_follow_up(days=days), PAGE_SIZE).get_page(request.GET.get("page"))
    access_recorder(request).saw(page.object_list)
    return render(request, "patients/care/follow_up.html", {"page": page, "days": days})


# -- Notifications --------------------------------------------------------------------------------


@staff_view(access=PHI_FREE)
def notifications_view(request: TenantRequest) -> HttpResponse:
    if request.method == "POST":
        notifications_mark_read(user=request.user)
        return redirect("patients:notifications")
    page = Paginator(notification_list(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "patients/care/notifications.html", {"page": page})
