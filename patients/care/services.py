"""Writes of care coordination: validated (full_clean), atomic, audited (django-auditlog in the same
transaction), the care team notified in the app, and `care_plan_updated` sent after commit."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from healthcrm.services import notify
from healthcrm.tenancy import require_current_organization
from patients.care.selectors import staff_of_organization, task_roles
from patients.models import (
    CarePlan,
    CarePlanActivity,
    CarePlanChange,
    CarePlanStatus,
    CarePlanTemplate,
    CareTask,
    CareTeamMember,
    Goal,
    GoalStatus,
    Intervention,
    InterventionStatus,
    NoteType,
    Patient,
    PatientNote,
    Priority,
    TaskEvent,
    TaskField,
    TaskStatus,
)
from patients.models.care import validate_targets
from patients.signals import send_care_plan_updated

TEAM_PERMISSIONS = ("view_patient", "change_patient")


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


# -- Care team ------------------------------------------------------------------------------------


@transaction.atomic
def care_team_add(*, patient: Patient, user: Any, team_role: str, actor: Any = None) -> CareTeamMember:
    """Put a staff user of the organization on the patient's care team (or back on it), granting the
    django-guardian object permissions view_patient and change_patient on this patient."""
    from healthcrm.models import Membership

    organization = require_current_organization()
    if not Membership.objects.filter(user=user, organization=organization, is_active=True).exists():
        raise ValidationError({"user": "Only staff of this organization can join a care team."})
    if not staff_of_organization().filter(pk=user.pk).exists():
        raise ValidationError({"user": "Only staff in a role that sees care tasks can join a care team."})
    member = CareTeamMember.objects.filter(patient=patient, user=user).first() or CareTeamMember(
        patient=patient, user=user
    )
    member.team_role = team_role
    member.active = True
    member.added_by = _user(actor)
    member.full_clean()
    member.save()
    for perm in TEAM_PERMISSIONS:
        assign_perm(perm, user, patient)
    return member


@transaction.atomic
def care_team_remove(*, member: CareTeamMember) -> CareTeamMember:
    """Take someone off the care team and revoke the object permissions the team gave them."""
    member.active = False
    member.save(update_fields=["active", "updated_at"])
    for perm in TEAM_PERMISSIONS:
        remove_perm(perm, member.user, member.patient)
    return member


# -- Change trail, notifications and the event ---------------------------------------------------


def _changed(
    *,
    patient: Patient,
    care_plan: CarePlan | None,
    change: str,
    actor: Any,
    task: CareTask | None = None,
    announce: bool = True,
) -> None:
    """Record a plan change (timeline), notify the care team (not the actor), announce it after commit
    (`announce=False` for the team's own bookkeeping: an edited or reassigned task is no news to the
    patient)."""
    user = _user(actor)
    CarePlanActivity.objects.create(
        patient=patient,
        care_plan=care_plan,
        task=task,
        change=change,
        actor=user,
        actor_label=user.get_username() if user else "system",
    )
    recipients = CareTeamMember.objects.filter(patient=patient, active=True).values_list("user_id", flat=True)
    if user is not None:
        recipients = recipients.exclude(user_id=user.pk)
    subject = f"Care plan #{care_plan.pk}" if care_plan else f"Task #{task.pk}" if task else "Care plan"
    # No PHI in notifications: ids and the kind of change only.
    notify(
        recipients=list(recipients),
        kind=f"care_plan.{change}",
        message=f"{subject} of patient #{patient.pk}: {CarePlanChange(change).label.lower()}",
        url=reverse("patients:care_plan", args=[patient.pk]),
    )
    if announce:
        send_care_plan_updated(
            organization_id=patient.organization_id,
            patient_id=patient.pk,
            care_plan_id=care_plan.pk if care_plan else None,
            change=change,
        )


# -- Care plans ----------------------------------------------------------------------------------


@transaction.atomic
def care_plan_start(
    *,
    patient: Patient,
    template: CarePlanTemplate | None = None,
    title: str = "",
    activate: bool = True,
    actor: Any = None,
    today: date | None = None,
) -> CarePlan:
    """Start a care plan, from an organization template (its goals, interventions and tasks copied
    with dates counted from today) or blank. Active at once unless `activate=False` (a draft)."""
    today = today or timezone.localdate()
    if template is None and not title.strip():
        raise ValidationError({"title": "Give the plan a title or choose a template."})
    plan = CarePlan(
        patient=patient,
        template=template,
        title=(title.strip() or template.name) if template else title.strip(),
        status=CarePlanStatus.ACTIVE if activate else CarePlanStatus.DRAFT,
        review_date=today + timedelta(days=template.review_interval_days if template else 90),
        started_by=_user(actor),
    )
    plan.full_clean()
    plan.save()
    if template is not None:
        for goal in template.goals.all():
            Goal(
                care_plan=plan,
                description=goal.description,
                observation_code=goal.observation_code,
                targets=goal.targets,
                unit=goal.unit,
                due_date=today + timedelta(days=goal.due_in_days),
            ).save()
        for intervention in template.interventions.all():
            Intervention(care_plan=plan, description=intervention.description).save()
        for task in template.tasks.all():
            CareTask(
                patient=patient,
                care_plan=plan,
                title=task.title,
                assignee_role=task.assignee_role,
                due_date=today + timedelta(days=task.due_in_days),
                priority=task.priority,
            ).save()
    _changed(patient=patient, care_plan=plan, change=CarePlanChange.STARTED, actor=actor)
    return plan


@transaction.atomic
def care_plan_update(
    *, care_plan: CarePlan, status: str | None = None, review_date: date | None = None, actor: Any = None
) -> CarePlan:
    """Move a plan along draft -> active -> completed/revoked, and/or set its review date."""
    changes = []
    if status is not None and status != care_plan.status:
        if not care_plan.can_become(status):
            raise ValidationError(
                {"status": f"A {care_plan.get_status_display().lower()} care plan cannot become {status}."}
            )
        care_plan.status = status
        changes.append(CarePlanChange.STATUS)
    if review_date is not None and review_date != care_plan.review_date:
        care_plan.review_date = review_date
        changes.append(CarePlanChange.REVIEW)
    if not changes:
        return care_plan
    care_plan.full_clean()
    care_plan.save()
    for change in changes:
        _changed(patient=care_plan.patient, care_plan=care_plan, change=change, actor=actor)
    return care_plan


@transaction.atomic
def goal_add(
    *,
    care_plan: CarePlan,
    description: str,
    observation_code: str,
    targets: list[dict[str, str]],
    unit: str = "",
    due_date: date | None = None,
    actor: Any = None,
) -> Goal:
    """Add a measurable goal: targets on the latest observation of `observation_code`."""
    goal = Goal(
        care_plan=care_plan,
        description=description.strip(),
        observation_code=observation_code.strip(),
        targets=targets,
        unit=unit.strip(),
        due_date=due_date,
    )
    goal.full_clean()
    goal.save()
    _changed(patient=care_plan.patient, care_plan=care_plan, change=CarePlanChange.GOAL_ADDED, actor=actor)
    return goal


def _require_open_plan(care_plan: CarePlan) -> None:
    if not care_plan.is_open:
        raise ValidationError(f"A {care_plan.get_status_display().lower()} care plan cannot change any more.")


@transaction.atomic
def goal_update(
    *,
    goal: Goal,
    targets: list[dict[str, str]],
    unit: str = "",
    start_date: date | None = None,
    due_date: date | None = None,
    actor: Any = None,
) -> Goal:
    """Change a goal's targets (comparator and value per component), unit and dates. Audited by
    django-auditlog (the description is encrypted and redacted there); a no-op saves nothing."""
    _require_open_plan(goal.care_plan)
    validate_targets(targets)
    if start_date and due_date and due_date < start_date:
        raise ValidationError({"due_date": "The due date cannot be before the start date."})
    new = {"targets": targets, "unit": unit.strip(), "start_date": start_date, "due_date": due_date}
    if all(getattr(goal, name) == value for name, value in new.items()):
        return goal
    for name, value in new.items():
        setattr(goal, name, value)
    goal.full_clean()
    goal.save()
    _changed(patient=goal.care_plan.patient, care_plan=goal.care_plan, change=CarePlanChange.GOAL_UPDATED, actor=actor)
    return goal


@transaction.atomic
def goal_set_status(*, goal: Goal, status: str, actor: Any = None, today: date | None = None) -> Goal:
    """Move a goal through its lifecycle (proposed, active, on hold, achieved, cancelled; see
    GOAL_TRANSITIONS), stamping the day it changed. Idempotent."""
    if status not in GoalStatus.values:
        raise ValidationError({"status": "Choose a valid goal status."})
    if status == goal.status:
        return goal
    _require_open_plan(goal.care_plan)
    if not goal.can_become(status):
        raise ValidationError(
            {"status": f"A {goal.get_status_display().lower()} goal cannot become {GoalStatus(status).label.lower()}."}
        )
    goal.status = status
    goal.status_date = today or timezone.localdate()
    goal.full_clean()
    goal.save()
    _changed(patient=goal.care_plan.patient, care_plan=goal.care_plan, change=CarePlanChange.GOAL_STATUS, actor=actor)
    return goal


@transaction.atomic
def intervention_add(*, care_plan: CarePlan, description: str, actor: Any = None) -> Intervention:
    """Add an intervention (planned) to an open care plan."""
    _require_open_plan(care_plan)
    intervention = Intervention(care_plan=care_plan, description=description.strip())
    intervention.full_clean()
    intervention.save()
    _changed(patient=care_plan.patient, care_plan=care_plan, change=CarePlanChange.INTERVENTION_ADDED, actor=actor)
    return intervention


@transaction.atomic
def intervention_set_status(*, intervention: Intervention, status: str, actor: Any = None) -> Intervention:
    """Planned -> in progress -> completed, or cancelled; completed and cancelled are final. Idempotent."""
    if status not in InterventionStatus.values:
        raise ValidationError({"status": "Choose a valid intervention status."})
    if status == intervention.status:
        return intervention
    _require_open_plan(intervention.care_plan)
    if intervention.is_final:
        raise ValidationError(f"A {intervention.get_status_display().lower()} intervention cannot change any more.")
    intervention.status = status
    intervention.full_clean()
    intervention.save()
    plan = intervention.care_plan
    _changed(patient=plan.patient, care_plan=plan, change=CarePlanChange.INTERVENTION_STATUS, actor=actor)
    return intervention


# -- Tasks ----------------------------------------------------------------------------------------


def assignee_label(task: CareTask) -> str:
    """Who a task is for, as the history shows it: a person's full name, or "Nurse (role)"."""
    if task.assignee is not None:
        return str(task.assignee.get_full_name() or task.assignee.get_username())
    return f"{task.get_assignee_role_display()} (role)" if task.assignee_role else ""


def _field_label(task: CareTask, field: str) -> str:
    if field == TaskField.ASSIGNEE:
        return assignee_label(task)
    if field == TaskField.DUE_DATE:
        return task.due_date.isoformat() if task.due_date else ""
    if field == TaskField.PRIORITY:
        return str(Priority(task.priority).label)
    if field == TaskField.STATUS:
        return str(TaskStatus(task.status).label)
    return str(getattr(task, field))


def _record_events(*, task: CareTask, before: dict[str, str], actor: Any) -> list[TaskEvent]:
    """One TaskEvent per field whose shown value changed (values encrypted: titles are PHI)."""
    user = _user(actor)
    events = []
    for field, old in before.items():
        new = _field_label(task, field)
        if new != old:
            event = TaskEvent(
                task=task,
                field=field,
                old_value=old,
                new_value=new,
                actor=user,
                actor_label=user.get_username() if user else "system",
            )
            event.full_clean()
            event.save()
            events.append(event)
    return events


def _snapshot(task: CareTask, *fields: str) -> dict[str, str]:
    return {field: _field_label(task, field) for field in fields}


@transaction.atomic
def task_assign(
    *,
    patient: Patient,
    title: str,
    due_date: date,
    care_plan: CarePlan | None = None,
    assignee: Any = None,
    assignee_role: str = "",
    priority: str = "routine",
    details: str = "",
    kind: str = "general",
    appointment: Any = None,
    actor: Any = None,
) -> CareTask:
    """Create a task for a person or for a role (a `kind` "reschedule" names the visit to move,
    if any). Raises ValidationError (nothing saved)."""
    if care_plan is not None and care_plan.patient_id != patient.pk:
        raise ValidationError({"care_plan": "This care plan belongs to another patient."})
    if assignee is not None and not staff_of_organization().filter(pk=assignee.pk).exists():
        raise ValidationError({"assignee": "Assign tasks to staff in a role that sees care tasks."})
    if assignee_role and assignee_role not in task_roles():
        raise ValidationError({"assignee_role": "This role cannot see care tasks."})
    if appointment is not None and appointment.patient_id != patient.pk:
        raise ValidationError({"appointment": "This appointment belongs to another patient."})
    task = CareTask(
        patient=patient,
        care_plan=care_plan,
        title=title.strip(),
        details=details.strip(),
        assignee=assignee,
        assignee_role=assignee_role,
        due_date=due_date,
        priority=priority,
        kind=kind,
        appointment=appointment,
    )
    task.full_clean()
    task.save()
    _changed(patient=patient, care_plan=care_plan, change=CarePlanChange.TASK_ADDED, actor=actor, task=task)
    if assignee is not None and assignee != _user(actor):
        notify(
            recipients=[assignee],
            kind="task.assigned",
            message=f"Task #{task.pk} of patient #{patient.pk} assigned to you",
            url=reverse("patients:my_tasks"),
        )
    return task


@transaction.atomic
def task_set_status(*, task: CareTask, status: str, actor: Any = None) -> CareTask:
    """Move a task (open, in progress, done, cancelled). Done stamps who and when; idempotent."""
    if status not in TaskStatus.values:
        raise ValidationError({"status": "Choose a valid task status."})
    if status == task.status:
        return task
    if not task.is_open:
        raise ValidationError(f"A {task.get_status_display().lower()} task cannot change any more; reopen it first.")
    before = _snapshot(task, TaskField.STATUS)
    task.status = status
    if status == TaskStatus.DONE:
        task.completed_by = _user(actor)
        task.completed_at = timezone.now()
    task.full_clean()
    task.save()
    _record_events(task=task, before=before, actor=actor)
    change = CarePlanChange.TASK_DONE if status == TaskStatus.DONE else CarePlanChange.TASK_STATUS
    _changed(patient=task.patient, care_plan=task.care_plan, change=change, actor=actor, task=task)
    return task


def _require_open_task(task: CareTask) -> None:
    if not task.is_open:
        raise ValidationError(f"A {task.get_status_display().lower()} task cannot change; reopen it first.")


@transaction.atomic
def task_update(
    *, task: CareTask, title: str, due_date: date, priority: str, details: str = "", actor: Any = None
) -> CareTask:
    """Edit an open task's title, details, due date and priority; each changed field gets a history
    row (TaskEvent). A no-op saves nothing."""
    _require_open_task(task)
    before = _snapshot(task, TaskField.TITLE, TaskField.DETAILS, TaskField.DUE_DATE, TaskField.PRIORITY)
    # Encrypted fields hold str at run time (their stubs say field): set them like patient_update does.
    setattr(task, "title", title.strip())  # noqa: B010
    setattr(task, "details", details.strip())  # noqa: B010
    task.due_date = due_date
    task.priority = priority
    task.full_clean()
    if all(_field_label(task, field) == old for field, old in before.items()):
        return task
    task.save()
    _record_events(task=task, before=before, actor=actor)
    _changed(
        patient=task.patient,
        care_plan=task.care_plan,
        change=CarePlanChange.TASK_UPDATED,
        actor=actor,
        task=task,
        announce=False,
    )
    return task


@transaction.atomic
def task_reassign(*, task: CareTask, assignee: Any = None, assignee_role: str = "", actor: Any = None) -> CareTask:
    """Give an open task to a person (who may see tasks) or to a role's queue, recorded in its
    history; the new assignee is notified in the app. A person takes precedence over a role."""
    _require_open_task(task)
    if assignee is None and not assignee_role:
        raise ValidationError({"assignee": "Assign the task to a person or to a role."})
    if assignee is not None and not staff_of_organization().filter(pk=assignee.pk).exists():
        raise ValidationError({"assignee": "Assign tasks to staff in a role that sees care tasks."})
    if assignee is None and assignee_role not in task_roles():
        raise ValidationError({"assignee_role": "This role cannot see care tasks."})
    before = _snapshot(task, TaskField.ASSIGNEE)
    task.assignee = assignee
    task.assignee_role = "" if assignee is not None else assignee_role
    task.full_clean()
    if _field_label(task, TaskField.ASSIGNEE) == before[TaskField.ASSIGNEE]:
        return task
    task.save()
    _record_events(task=task, before=before, actor=actor)
    _changed(
        patient=task.patient,
        care_plan=task.care_plan,
        change=CarePlanChange.TASK_REASSIGNED,
        actor=actor,
        task=task,
        announce=False,
    )
    if assignee is not None and assignee != _user(actor):
        notify(
            recipients=[assignee],
            kind="task.assigned",
            message=f"Task #{task.pk} of patient #{task.patient_id} assigned to you",
            url=reverse("patients:task_detail", args=[task.pk]),
        )
    return task


@transaction.atomic
def task_reopen(*, task: CareTask, actor: Any = None) -> CareTask:
    """Open a completed or cancelled task again (its completion stamp cleared), in its history."""
    if task.is_open:
        return task
    before = _snapshot(task, TaskField.STATUS)
    task.status = TaskStatus.OPEN
    task.completed_by = None
    task.completed_at = None
    task.full_clean()
    task.save()
    _record_events(task=task, before=before, actor=actor)
    _changed(
        patient=task.patient, care_plan=task.care_plan, change=CarePlanChange.TASK_REOPENED, actor=actor, task=task
    )
    return task


# -- Notes ----------------------------------------------------------------------------------------


def _label(user: Any) -> str:
    return str(user.get_username()) if user else "system"


def _sign(note: PatientNote, user: Any) -> None:
    note.signed_at = timezone.now()
    note.signed_by = user
    note.signed_by_label = _label(user)


@transaction.atomic
def note_add(
    *, patient: Patient, body: str, note_type: str = NoteType.GENERAL, sign: bool = False, author: Any = None
) -> PatientNote:
    """Write an encrypted free-text note on the patient: a draft its author may still edit, or
    signed at once (`sign=True`: final)."""
    user = _user(author)
    note = PatientNote(patient=patient, body=body.strip(), note_type=note_type, author=user, author_label=_label(user))
    if sign:
        _sign(note, user)
    note.full_clean()
    note.save()
    return note


def _require_author(note: PatientNote, actor: Any) -> Any:
    user = _user(actor)
    if user is None or note.author_id != user.pk:
        raise PermissionDenied("Only the author of a draft note may edit or sign it.")
    return user


@transaction.atomic
def note_update(*, note: PatientNote, body: str, note_type: str, actor: Any) -> PatientNote:
    """Edit a draft note: its author only (PermissionDenied otherwise); a signed note is refused
    (ValidationError: it is amended instead)."""
    if note.is_signed:
        raise ValidationError("A signed note cannot be edited; amend it instead.")
    _require_author(note, actor)
    if note.body == body.strip() and note.note_type == note_type:
        return note
    setattr(note, "body", body.strip())  # noqa: B010  (encrypted: str at run time, see task_update)
    note.note_type = note_type
    note.full_clean()
    note.save()
    return note


@transaction.atomic
def note_sign(*, note: PatientNote, actor: Any) -> PatientNote:
    """Sign a draft note (its author only): from then on it cannot be edited. Idempotent."""
    if note.is_signed:
        return note
    user = _require_author(note, actor)
    _sign(note, user)
    note.full_clean()
    note.save()
    return note


@transaction.atomic
def note_amend(*, note: PatientNote, body: str, reason: str, actor: Any) -> PatientNote:
    """Amend a signed note: a new signed note of the same type that points at it, with the reason;
    the original is kept exactly as it was signed."""
    if not note.is_signed:
        raise ValidationError("A draft is edited, not amended.")
    if not reason.strip():
        raise ValidationError({"amendment_reason": "Say why the note is amended."})
    user = _user(actor)
    amendment = PatientNote(
        patient=note.patient,
        note_type=note.note_type,
        body=body.strip(),
        author=user,
        author_label=_label(user),
        amends=note,
        amendment_reason=reason.strip(),
    )
    _sign(amendment, user)
    amendment.full_clean()
    amendment.save()
    return amendment
