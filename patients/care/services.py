"""Writes of care coordination: validated (full_clean), atomic, audited (django-auditlog in the same
transaction), the care team notified in the app, and `care_plan_updated` sent after commit."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.exceptions import ValidationError
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
    Intervention,
    Patient,
    PatientNote,
    TaskStatus,
)
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
    *, patient: Patient, care_plan: CarePlan | None, change: str, actor: Any, task: CareTask | None = None
) -> None:
    """Record a plan change (timeline), notify the care team (not the actor), announce it after commit."""
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


# -- Tasks ----------------------------------------------------------------------------------------


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
        raise ValidationError(f"A {task.get_status_display().lower()} task cannot change any more.")
    task.status = status
    if status == TaskStatus.DONE:
        task.completed_by = _user(actor)
        task.completed_at = timezone.now()
    task.full_clean()
    task.save()
    change = CarePlanChange.TASK_DONE if status == TaskStatus.DONE else CarePlanChange.TASK_STATUS
    _changed(patient=task.patient, care_plan=task.care_plan, change=change, actor=actor, task=task)
    return task


# -- Notes ----------------------------------------------------------------------------------------


@transaction.atomic
def note_add(*, patient: Patient, body: str, author: Any = None) -> PatientNote:
    """Write an encrypted free-text note on the patient."""
    user = _user(author)
    note = PatientNote(
        patient=patient, body=body.strip(), author=user, author_label=user.get_username() if user else "system"
    )
    note.full_clean()
    note.save()
    return note
