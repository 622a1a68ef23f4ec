"""Reads of care coordination, in the current organization, in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import (
    Case,
    Exists,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.http import HttpRequest
from django.utils import timezone

from compliance.guards import get_object_for_user
from healthcrm.roles import Role, group_name
from healthcrm.tenancy import require_current_organization
from patients.models import (
    OPEN_TASK_STATUSES,
    AppointmentStatus,
    CarePlan,
    CarePlanStatus,
    CareTask,
    CareTeamMember,
    Goal,
    Intervention,
    Observation,
    Patient,
    PatientNote,
    TaskEvent,
)
from patients.models.care import _decimal

TASK_PERMISSION = ("patients", "view_caretask")


def task_roles() -> list[str]:
    """The roles whose permission group may see care tasks (analysts, compliance officers and, by
    default, administrators may not): the only roles tasks and care teams are given to."""
    from django.contrib.auth.models import Group

    app_label, codename = TASK_PERMISSION
    names = Group.objects.filter(
        name__in=[group_name(role) for role in Role.values],
        permissions__content_type__app_label=app_label,
        permissions__codename=codename,
    ).values_list("name", flat=True)
    held = set(names)
    return [role for role in Role.values if group_name(role) in held]


def staff_of_organization() -> QuerySet[Any]:
    """Users with an active membership in the current organization in a role that may see tasks,
    each with `staff_role` (their role here), by full name."""
    from healthcrm.models import Membership

    organization = require_current_organization()
    here = Membership.objects.filter(organization=organization, is_active=True, user=OuterRef("pk"))
    return (
        get_user_model()
        .objects.filter(
            memberships__organization=organization,
            memberships__is_active=True,
            memberships__role__in=task_roles(),
        )
        .annotate(staff_role=Subquery(here.values("role")[:1]))
        .order_by("first_name", "last_name", "username")
    )


_PRIORITY_RANK = Case(
    When(priority="stat", then=Value(0)),
    When(priority="urgent", then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


def _queue_order(tasks: QuerySet[CareTask], today: date) -> QuerySet[CareTask]:
    """Overdue first, then by due date, then stat > urgent > routine."""
    overdue = Case(When(due_date__lt=today, then=Value(0)), default=Value(1), output_field=IntegerField())
    return tasks.annotate(overdue_rank=overdue, priority_rank=_PRIORITY_RANK).order_by(
        "overdue_rank", "due_date", "priority_rank", "id"
    )


def _with_related(tasks: QuerySet[CareTask]) -> QuerySet[CareTask]:
    return tasks.select_related("patient", "assignee", "completed_by", "care_plan", "appointment")


def my_tasks(*, user: Any, role: str | None, today: date | None = None) -> QuerySet[CareTask]:
    """Open tasks assigned to the user, or to their role in the current organization (unassigned to a person)."""
    today = today or timezone.localdate()
    mine = Q(assignee_id=user.pk)
    if role:
        mine |= Q(assignee__isnull=True, assignee_role=role)
    return _queue_order(_with_related(CareTask.objects.filter(mine, status__in=OPEN_TASK_STATUSES)), today)


def team_queue(*, role: str = "", assignee_id: int | None = None, today: date | None = None) -> QuerySet[CareTask]:
    """Every open task of the organization, optionally for one role or one person."""
    today = today or timezone.localdate()
    tasks = CareTask.objects.filter(status__in=OPEN_TASK_STATUSES)
    if role:
        tasks = tasks.filter(assignee_role=role)
    if assignee_id:
        tasks = tasks.filter(assignee_id=assignee_id)
    return _queue_order(_with_related(tasks), today)


def overdue_tasks_exist(today: date | None = None) -> Exists:
    """A subquery usable on Patient: has an open task past its due date."""
    today = today or timezone.localdate()
    return Exists(CareTask.objects.filter(patient=OuterRef("pk"), status__in=OPEN_TASK_STATUSES, due_date__lt=today))


def patients_due_for_follow_up(*, days: int = 90, today: date | None = None) -> QuerySet[Patient]:
    """Patients with an active care plan who need attention: its review date has passed, or they had
    no completed visit in `days` days and have none booked. Annotated with last_visit and review_due."""
    today = today or timezone.localdate()
    now = timezone.now()
    from patients.models import Appointment

    booked = Exists(
        Appointment.objects.filter(
            patient=OuterRef("pk"),
            starts_at__gte=now,
            status__in=[AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED],
        )
    )
    overdue_review = Exists(
        CarePlan.objects.filter(patient=OuterRef("pk"), status=CarePlanStatus.ACTIVE, review_date__lt=today)
    )
    active_plan = Exists(CarePlan.objects.filter(patient=OuterRef("pk"), status=CarePlanStatus.ACTIVE))
    cutoff = now - timedelta(days=days)
    return (
        Patient.objects.filter(is_active=True)
        .annotate(
            last_visit=Max("appointments__starts_at", filter=Q(appointments__status=AppointmentStatus.COMPLETED)),
            review_overdue=overdue_review,
            has_booking=booked,
            has_active_plan=active_plan,
        )
        .filter(has_active_plan=True)
        .filter(
            Q(review_overdue=True) | (Q(has_booking=False) & (Q(last_visit__lt=cutoff) | Q(last_visit__isnull=True)))
        )
        .order_by("last_visit", "pk")
    )


# -- Care plans and goal progress ---------------------------------------------------------------


@dataclass(frozen=True)
class GoalProgress:
    goal: Goal
    state: str  # "met", "not_met", "no_data"
    observation: Observation | None

    @property
    def label(self) -> str:
        return {"met": "Met", "not_met": "Not met", "no_data": "No data"}[self.state]


def _compare(value: Decimal, comparator: str, target: Decimal) -> bool:
    return {"<": value < target, "<=": value <= target, ">": value > target, ">=": value >= target}[comparator]


def goal_state(goal: Goal, observation: Observation | None) -> str:
    """The latest observation against every target: met, not met, or no data (none, or a component missing)."""
    if observation is None:
        return "no_data"
    for target in goal.targets:
        component = target.get("component") or ""
        if component:
            item = observation.component(component)
            value = _decimal(item.get("value")) if item else None
        else:
            value = observation.value_quantity
        if value is None:
            return "no_data"
        if not _compare(value, target["comparator"], Decimal(str(target["value"]))):
            return "not_met"
    return "met"


def latest_observations(*, patient: Patient, codes: set[str]) -> dict[str, Observation]:
    """The newest observation of each code, in one query (DISTINCT ON code)."""
    if not codes:
        return {}
    rows = Observation.objects.filter(patient=patient, code__in=codes).order_by("code", "-effective_at", "-id")
    return {o.code: o for o in rows.distinct("code")}


@dataclass(frozen=True)
class CarePlanView:
    plan: CarePlan
    goals: list[GoalProgress]


def care_plans_for_patient(*, patient: Patient) -> list[CarePlanView]:
    """The patient's plans with goals (and their progress), interventions and tasks: five queries."""
    plans = list(
        CarePlan.objects.filter(patient=patient)
        .select_related("template", "started_by")
        .prefetch_related(
            "goals",
            "interventions",
            Prefetch(
                "tasks",
                queryset=CareTask.objects.select_related("assignee", "completed_by").order_by(
                    "status", "due_date", "id"
                ),
            ),
        )
    )
    codes = {goal.observation_code for plan in plans for goal in plan.goals.all()}
    latest = latest_observations(patient=patient, codes=codes)
    return [
        CarePlanView(
            plan=plan,
            goals=[
                GoalProgress(
                    goal, goal_state(goal, latest.get(goal.observation_code)), latest.get(goal.observation_code)
                )
                for goal in plan.goals.all()
            ],
        )
        for plan in plans
    ]


def care_team_for(*, patient: Patient) -> list[CareTeamMember]:
    return list(CareTeamMember.objects.filter(patient=patient, active=True).select_related("user"))


def task_history(*, task: CareTask) -> list[TaskEvent]:
    """The task's changes, newest first (one query)."""
    return list(TaskEvent.objects.filter(task=task).order_by("-created_at", "-id"))


@dataclass(frozen=True)
class NoteVersions:
    """A note as the note page shows it: the note, the amendments written to it (newest first), and
    the original it amends (for an amendment; that original's own original, and so on)."""

    note: PatientNote
    amendments: list[PatientNote]
    originals: list[PatientNote]


def note_versions(*, note: PatientNote, max_depth: int = 50) -> NoteVersions:
    amendments = list(PatientNote.objects.filter(amends=note).order_by("-created_at", "-id"))
    originals: list[PatientNote] = []
    current = note
    while current.amends_id is not None and len(originals) < max_depth:
        parent = PatientNote.objects.filter(pk=current.amends_id).first()
        if parent is None:
            break
        originals.append(parent)
        current = parent
    return NoteVersions(note=note, amendments=amendments, originals=originals)


# -- Guarded fetches ------------------------------------------------------------------------------


def get_task_for_user(request: HttpRequest, pk: object, perm: str = "patients.view_caretask") -> CareTask:
    """The guarded fetch for tasks: 404 across organizations, 403 without `perm`."""
    return get_object_for_user(request, _with_related(CareTask.objects.all()), pk, perm)


def get_care_plan_for_user(request: HttpRequest, pk: object, perm: str = "patients.view_careplan") -> CarePlan:
    return get_object_for_user(request, CarePlan.objects.select_related("patient"), pk, perm)


def get_care_team_member_for_user(
    request: HttpRequest, pk: object, perm: str = "patients.change_careteammember"
) -> CareTeamMember:
    return get_object_for_user(request, CareTeamMember.objects.select_related("patient", "user"), pk, perm)


def get_goal_for_user(request: HttpRequest, pk: object, perm: str = "patients.change_careplan") -> Goal:
    """Goals are parts of a care plan: changing one takes the plan's change permission."""
    return get_object_for_user(request, Goal.objects.select_related("care_plan__patient"), pk, perm)


def get_intervention_for_user(request: HttpRequest, pk: object, perm: str = "patients.change_careplan") -> Intervention:
    return get_object_for_user(request, Intervention.objects.select_related("care_plan__patient"), pk, perm)


def get_note_for_user(request: HttpRequest, pk: object, perm: str = "patients.view_patientnote") -> PatientNote:
    return get_object_for_user(request, PatientNote.objects.select_related("patient", "amends"), pk, perm)
