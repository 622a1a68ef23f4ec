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
from django.urls import reverse
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
from patients.breakglass.policy import require_unrestricted
from patients.breakglass.services import record_restriction_set
from patients.care import services
from patients.care.forms import (
    CarePlanStartForm,
    CarePlanUpdateForm,
    CareTeamAddForm,
    GoalEditForm,
    GoalStatusForm,
    InterventionForm,
    InterventionStatusForm,
    NoteAmendForm,
    NoteForm,
    TaskEditForm,
    TaskForm,
    TaskReassignForm,
    TeamQueueFilter,
    TimelinePageForm,
)
from patients.care.selectors import (
    care_plans_for_patient,
    care_team_for,
    get_care_plan_for_user,
    get_care_team_member_for_user,
    get_goal_for_user,
    get_intervention_for_user,
    get_note_for_user,
    get_task_for_user,
    my_tasks,
    note_versions,
    patients_due_for_follow_up,
    task_history,
    team_queue,
)
from patients.care.timeline import patient_timeline
from patients.models import CareTask, InterventionStatus, NoteType, Patient, PatientNote, TaskStatus
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
        "can_change_plan": user.has_perm("patients.change_careplan"),
        "intervention_statuses": InterventionStatus.choices,
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
        sign = request.POST.get("action") == "sign"
        try:
            note = services.note_add(
                patient=patient,
                body=form.cleaned_data["body"],
                note_type=form.cleaned_data["note_type"] or NoteType.GENERAL,
                sign=sign,
                author=request.user,
            )
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Note signed." if sign else "Draft note saved: sign it when it is final.")
            return redirect("patients:note_detail", pk=note.pk)
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "title": "Write a note", "submit": "Save draft", "can_sign": True}
    return render(request, "patients/care/form.html", context, status=status)


def _note_patient(request: TenantRequest, note: PatientNote) -> Patient:
    """The note's patient through the guard, and the note itself when the patient restricted it."""
    patient = get_patient_for_user(request, note.patient_id)
    require_clinical(request, patient)
    require_unrestricted(request, note, patient)
    return patient


@staff_view(access=AccessAction.VIEW)
def note_detail_view(request: TenantRequest, pk: int) -> HttpResponse:
    """A note with its author, time, signature, the amendments written to it and what it amends."""
    note = get_note_for_user(request, pk)
    patient = _note_patient(request, note)
    versions = note_versions(note=note)
    for version in [*versions.amendments, *versions.originals]:
        require_unrestricted(request, version, patient)  # a restricted version shown beside it
    access_recorder(request).saw([*versions.amendments, *versions.originals])
    context = {
        "patient": patient,
        "versions": versions,
        "may_edit": not note.is_signed and note.author_id == request.user.pk,
        "may_amend": note.is_signed and request.user.has_perm("patients.add_patientnote"),
        "may_restrict": request.user.has_perm("patients.add_patientnote"),
    }
    return render(request, "patients/care/note_detail.html", context)


@staff_view(access=AccessAction.CHANGE)
@require_POST
def note_restrict_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Restrict a note at the patient's request, or lift the restriction (audited). Lifting it
    means opening it: a restricted note is lifted under break-the-glass like any opening."""
    note = get_note_for_user(request, pk, "patients.add_patientnote")
    patient = get_patient_for_user(request, note.patient_id)
    require_clinical(request, patient)
    restrict = request.POST.get("restricted") == "1"
    if not restrict:
        require_unrestricted(request, note, patient)
    record_restriction_set(record=note, restricted=restrict, actor=request.user)
    messages.success(request, "Note restricted at the patient's request." if restrict else "Restriction lifted.")
    if restrict:  # the page of the note would now ask for a reason: back to the timeline
        return redirect("patients:timeline", pk=patient.pk)
    return redirect("patients:note_detail", pk=note.pk)


@staff_view(access=AccessAction.VIEW)
def note_edit_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Edit a draft note: its author only (others 403); a signed note is amended instead."""
    note = get_note_for_user(request, pk, "patients.change_patientnote")
    patient = _note_patient(request, note)
    if note.is_signed:
        messages.error(request, "A signed note cannot be edited; amend it instead.")
        return redirect("patients:note_detail", pk=note.pk)
    if note.author_id != request.user.pk:
        raise PermissionDenied
    form = NoteForm(request.POST or None, initial={"note_type": note.note_type, "body": note.body})
    if request.method == "POST" and form.is_valid():
        sign = request.POST.get("action") == "sign"
        try:
            services.note_update(
                note=note,
                body=form.cleaned_data["body"],
                note_type=form.cleaned_data["note_type"] or note.note_type,
                actor=request.user,
            )
            if sign:
                services.note_sign(note=note, actor=request.user)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Note signed." if sign else "Draft note saved.")
            return redirect("patients:note_detail", pk=note.pk)
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "title": "Edit draft note", "submit": "Save draft", "can_sign": True}
    return render(request, "patients/care/form.html", context, status=status)


@staff_view(access=AccessAction.VIEW)
@require_POST
def note_sign_view(request: TenantRequest, pk: int) -> HttpResponse:
    note = get_note_for_user(request, pk, "patients.change_patientnote")
    _note_patient(request, note)
    services.note_sign(note=note, actor=request.user)  # PermissionDenied (403) for anyone but the author
    messages.success(request, "Note signed.")
    return redirect("patients:note_detail", pk=note.pk)


@staff_view(access=AccessAction.VIEW)
def note_amend_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Amend a signed note: a new note with a reason; the original stays as it was signed."""
    note = get_note_for_user(request, pk, "patients.add_patientnote")
    patient = _note_patient(request, note)
    if not note.is_signed:
        messages.error(request, "A draft is edited, not amended.")
        return redirect("patients:note_detail", pk=note.pk)
    form = NoteAmendForm(request.POST or None, initial={"body": note.body})
    if request.method == "POST" and form.is_valid():
        try:
            amendment = services.note_amend(
                note=note, body=form.cleaned_data["body"], reason=form.cleaned_data["reason"], actor=request.user
            )
        except ValidationError as exc:
            form_add_service_errors(form, exc, field_map={"amendment_reason": "reason"})
        else:
            messages.success(request, "Amendment signed. The original note is kept below it.")
            return redirect("patients:note_detail", pk=amendment.pk)
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "title": f"Amend note #{note.pk}", "submit": "Sign amendment"}
    return render(request, "patients/care/form.html", context, status=status)


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


def _plan_patient(request: TenantRequest, plan_patient_id: int) -> Patient:
    patient = get_patient_for_user(request, plan_patient_id)
    require_clinical(request, patient)
    return patient


def _back_to_plan(request: TenantRequest, patient: Patient, error: str, success: str) -> HttpResponse:
    if error:
        messages.error(request, error)
    else:
        messages.success(request, success)
    return redirect("patients:care_plan", pk=patient.pk)


@staff_view(access=AccessAction.VIEW)
def goal_edit_view(request: TenantRequest, pk: int) -> HttpResponse:
    """A goal's target, unit and dates."""
    goal = get_goal_for_user(request, pk)
    patient = _plan_patient(request, goal.care_plan.patient_id)
    form = GoalEditForm(request.POST or None, goal=goal)
    if request.method == "POST" and form.is_valid():
        try:
            services.goal_update(
                goal=goal,
                targets=form.targets(),
                unit=form.cleaned_data["unit"],
                start_date=form.cleaned_data["start_date"],
                due_date=form.cleaned_data["due_date"],
                actor=request.user,
            )
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Goal updated.")
            return redirect("patients:care_plan", pk=patient.pk)
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "title": f"Edit goal: {goal.description}", "submit": "Save goal"}
    return render(request, "patients/care/form.html", context, status=status)


@staff_view(access=AccessAction.VIEW)
@require_POST
def goal_status_view(request: TenantRequest, pk: int) -> HttpResponse:
    goal = get_goal_for_user(request, pk)
    patient = _plan_patient(request, goal.care_plan.patient_id)
    form = GoalStatusForm(request.POST)
    error = "" if form.is_valid() else "Choose a valid goal status."
    if not error:
        try:
            services.goal_set_status(goal=goal, status=form.cleaned_data["status"], actor=request.user)
        except ValidationError as exc:
            error = " ".join(exc.messages)
    return _back_to_plan(request, patient, error, f"Goal marked {goal.get_status_display().lower()}.")


@staff_view(access=AccessAction.VIEW)
@require_POST
def intervention_add_view(request: TenantRequest, pk: int) -> HttpResponse:
    plan = get_care_plan_for_user(request, pk, "patients.change_careplan")
    patient = _plan_patient(request, plan.patient_id)
    form = InterventionForm(request.POST)
    error = "" if form.is_valid() else " ".join(str(m) for errors in form.errors.values() for m in errors)
    if not error:
        try:
            services.intervention_add(care_plan=plan, description=form.cleaned_data["description"], actor=request.user)
        except ValidationError as exc:
            error = " ".join(exc.messages)
    return _back_to_plan(request, patient, error, "Intervention added.")


@staff_view(access=AccessAction.VIEW)
@require_POST
def intervention_status_view(request: TenantRequest, pk: int) -> HttpResponse:
    intervention = get_intervention_for_user(request, pk)
    patient = _plan_patient(request, intervention.care_plan.patient_id)
    form = InterventionStatusForm(request.POST)
    error = "" if form.is_valid() else "Choose a valid intervention status."
    if not error:
        try:
            services.intervention_set_status(
                intervention=intervention, status=form.cleaned_data["status"], actor=request.user
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
    return _back_to_plan(request, patient, error, f"Intervention {intervention.get_status_display().lower()}.")


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


def _workable_task(request: TenantRequest, pk: int, perm: str) -> CareTask:
    """A task the user may work on (assignee, role, or clinical), its patient on the access log."""
    task = get_task_for_user(request, pk, perm)
    access_recorder(request).saw([task.patient])
    if not may_work_on_task(request.user, task):
        raise PermissionDenied
    return task


def _task_page(
    request: TenantRequest,
    task: CareTask,
    *,
    edit_form: TaskEditForm | None = None,
    reassign_form: TaskReassignForm | None = None,
    status: int = 200,
) -> HttpResponse:
    can_change = request.user.has_perm("patients.change_caretask")
    context = {
        "task": task,
        "history": task_history(task=task),
        "edit_form": edit_form or (TaskEditForm(task=task) if can_change and task.is_open else None),
        "reassign_form": reassign_form or (TaskReassignForm(task=task) if can_change and task.is_open else None),
        "can_change": can_change,
        "today": timezone.localdate(),
    }
    return render(request, "patients/care/task_detail.html", context, status=status)


@staff_view(access=AccessAction.VIEW)
def task_detail_view(request: TenantRequest, pk: int) -> HttpResponse:
    """A task with its history (who changed due date, priority, assignee or status, when, old -> new),
    and the forms to edit, reassign or reopen it."""
    task = _workable_task(request, pk, "patients.view_caretask")
    return _task_page(request, task)


@staff_view(access=AccessAction.VIEW)
@require_POST
def task_edit_view(request: TenantRequest, pk: int) -> HttpResponse:
    task = _workable_task(request, pk, "patients.change_caretask")
    form = TaskEditForm(request.POST, task=task)
    if form.is_valid():
        try:
            services.task_update(task=task, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Task saved.")
            return redirect("patients:task_detail", pk=task.pk)
    task.refresh_from_db()
    return _task_page(request, task, edit_form=form, status=400)


@staff_view(access=AccessAction.VIEW)
@require_POST
def task_reassign_view(request: TenantRequest, pk: int) -> HttpResponse:
    task = _workable_task(request, pk, "patients.change_caretask")
    form = TaskReassignForm(request.POST)
    if form.is_valid():
        try:
            services.task_reassign(task=task, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Task reassigned.")
            return redirect("patients:task_detail", pk=task.pk)
    task.refresh_from_db()
    return _task_page(request, task, reassign_form=form, status=400)


@staff_view(access=AccessAction.VIEW)
@require_POST
def task_reopen_view(request: TenantRequest, pk: int) -> HttpResponse:
    """Reopen a completed or cancelled task; htmx gets the row back, shaped for its table."""
    task = _workable_task(request, pk, "patients.change_caretask")
    services.task_reopen(task=task, actor=request.user)
    if request.htmx:
        template = TASK_ROW_TEMPLATES.get(request.POST.get("row", ""), TASK_ROW_TEMPLATES["queue"])
        return render(request, template, {"task": task, "today": timezone.localdate()})
    messages.success(request, "Task reopened.")
    return redirect(safe_next_url(request, reverse("patients:task_detail", args=[task.pk])))


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
