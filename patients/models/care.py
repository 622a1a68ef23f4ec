"""Care coordination: care teams, care plans (from organization templates), goals, interventions,
tasks, and the activity trail of plan changes.

What is encrypted follows patients/models/clinical.py: free text written about a patient (plan
titles, goal and intervention descriptions, task titles and details) is encrypted; codes, numeric
targets, statuses and the dates queues sort and filter on are plain. Templates belong to the
organization, describe no one, and are plain.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import Q

from healthcrm.crypto import EncryptedCharField, EncryptedTextField
from healthcrm.models import TenantModel
from healthcrm.roles import Role
from patients.models.clinical import BLOOD_PRESSURE, DIASTOLIC, SYSTOLIC
from patients.models.patient import Patient


class TeamRole(models.TextChoices):
    PROVIDER = "provider", "Provider"
    NURSE = "nurse", "Nurse"
    COORDINATOR = "coordinator", "Care coordinator"
    PHARMACIST = "pharmacist", "Pharmacist"
    SOCIAL_WORKER = "social_worker", "Social worker"
    OTHER = "other", "Other"


class CareTeamMember(TenantModel):
    """A staff user on a patient's care team. Active members hold django-guardian object permissions
    (view_patient, change_patient) on the patient; the services grant and revoke them."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_team")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    team_role = models.CharField(max_length=16, choices=TeamRole.choices)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-active", "team_role", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "patient", "user"],
                name="careteammember_unique_per_patient",
                violation_error_message="This person is already on the patient's care team.",
            ),
            models.CheckConstraint(condition=Q(team_role__in=TeamRole.values), name="careteammember_role_valid"),
        ]
        indexes = [models.Index(fields=["organization", "user", "active"], name="careteam_org_user")]

    def __str__(self) -> str:
        return f"Care team member #{self.pk}"


# -- Templates (organization data, not PHI) ------------------------------------------------------


class Comparator(models.TextChoices):
    LT = "<", "below"
    LE = "<=", "at most"
    GT = ">", "above"
    GE = ">=", "at least"


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def validate_targets(value: Any) -> None:
    """Goal targets: [{"component": "" or a LOINC component code, "comparator": "<", "value": "7"}]."""
    if not isinstance(value, list) or not value:
        raise ValidationError("A measurable goal needs at least one target.", code="no_target")
    for item in value:
        if (
            not isinstance(item, dict)
            or item.get("comparator") not in Comparator.values
            or _decimal(item.get("value")) is None
        ):
            raise ValidationError("Each target needs a comparator (<, <=, >, >=) and a number.", code="bad_target")


def targets_display(observation_code: str, targets: list[dict[str, Any]], unit: str) -> str:
    """'< 7 %', or '< 140/90 mm[Hg]' for blood pressure (systolic/diastolic components)."""
    if observation_code == BLOOD_PRESSURE:
        by_component = {t.get("component"): t for t in targets}
        systolic, diastolic = by_component.get(SYSTOLIC), by_component.get(DIASTOLIC)
        if systolic and diastolic and systolic["comparator"] == diastolic["comparator"]:
            return f"{systolic['comparator']} {_plain(systolic['value'])}/{_plain(diastolic['value'])} {unit}".strip()
    return ", ".join(f"{t['comparator']} {_plain(t['value'])} {unit}".strip() for t in targets)


def _plain(value: Any) -> str:
    number = _decimal(value)
    return str(value) if number is None else format(number.normalize(), "f")


class CarePlanTemplate(TenantModel):
    """An organization's standard plan (e.g. type 2 diabetes): its goals, interventions and tasks."""

    code = models.SlugField(max_length=64, help_text="Short stable name, e.g. t2dm.")
    name = models.CharField(max_length=200)
    description = models.TextField(max_length=2000, blank=True, validators=[MaxLengthValidator(2000)])
    condition_codes = ArrayField(
        models.CharField(max_length=32),
        default=list,
        blank=True,
        help_text="SNOMED CT / ICD-10 codes of the conditions this plan suits (used to suggest it).",
    )
    review_interval_days = models.PositiveIntegerField(default=90)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "code"],
                name="careplantemplate_code_unique_per_org",
                violation_error_message="This organization already has a care plan template with this code.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class GoalTemplate(TenantModel):
    template = models.ForeignKey(CarePlanTemplate, on_delete=models.CASCADE, related_name="goals")
    description = models.CharField(max_length=255)
    observation_code = models.CharField(max_length=32, help_text="LOINC code of the measurement, e.g. 4548-4.")
    targets = models.JSONField(default=list, validators=[validate_targets])
    unit = models.CharField(max_length=32, blank=True)
    due_in_days = models.PositiveIntegerField(default=90)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description

    @property
    def target_display(self) -> str:
        return targets_display(self.observation_code, self.targets, self.unit)


class InterventionTemplate(TenantModel):
    template = models.ForeignKey(CarePlanTemplate, on_delete=models.CASCADE, related_name="interventions")
    description = models.CharField(max_length=255)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description


class Priority(models.TextChoices):
    ROUTINE = "routine", "Routine"
    URGENT = "urgent", "Urgent"
    STAT = "stat", "Stat"


class TaskTemplate(TenantModel):
    template = models.ForeignKey(CarePlanTemplate, on_delete=models.CASCADE, related_name="tasks")
    title = models.CharField(max_length=255)
    assignee_role = models.CharField(max_length=16, choices=Role.choices)
    due_in_days = models.PositiveIntegerField(default=7)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.ROUTINE)

    class Meta:
        ordering = ["due_in_days", "id"]

    def __str__(self) -> str:
        return self.title


# -- Per-patient plans (PHI) --------------------------------------------------------------------


class CarePlanStatus(models.TextChoices):  # FHIR request-status, the ones a CRM uses
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    REVOKED = "revoked", "Revoked"


CARE_PLAN_TRANSITIONS: dict[str, frozenset[str]] = {
    CarePlanStatus.DRAFT: frozenset({"active", "revoked"}),
    CarePlanStatus.ACTIVE: frozenset({"completed", "revoked"}),
    CarePlanStatus.COMPLETED: frozenset(),
    CarePlanStatus.REVOKED: frozenset(),
}


class CarePlan(TenantModel):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_plans")
    template = models.ForeignKey(
        CarePlanTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="care_plans"
    )
    title = EncryptedCharField(max_length=200)
    status = models.CharField(max_length=12, choices=CarePlanStatus.choices, default=CarePlanStatus.DRAFT)
    review_date = models.DateField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["status", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=CarePlanStatus.values), name="careplan_status_valid"),
        ]
        indexes = [models.Index(fields=["organization", "status", "review_date"], name="careplan_org_review")]

    def __str__(self) -> str:
        return f"Care plan #{self.pk}"

    def can_become(self, status: str) -> bool:
        return status in CARE_PLAN_TRANSITIONS[self.status]

    @property
    def is_open(self) -> bool:
        """Draft or active: its goals and interventions can still change."""
        return self.status in (CarePlanStatus.DRAFT, CarePlanStatus.ACTIVE)


class GoalStatus(models.TextChoices):
    """FHIR Goal.lifecycleStatus, the states a clinic uses ("achieved" stands for lifecycle
    completed with achievementStatus achieved)."""

    PROPOSED = "proposed", "Proposed"
    ACTIVE = "active", "Active"
    ON_HOLD = "on_hold", "On hold"
    ACHIEVED = "achieved", "Achieved"
    CANCELLED = "cancelled", "Cancelled"


# Where a goal may go from each state: cancelled is final; an achieved goal can be taken up again.
GOAL_TRANSITIONS: dict[str, frozenset[str]] = {
    GoalStatus.PROPOSED: frozenset({"active", "cancelled"}),
    GoalStatus.ACTIVE: frozenset({"on_hold", "achieved", "cancelled"}),
    GoalStatus.ON_HOLD: frozenset({"active", "achieved", "cancelled"}),
    GoalStatus.ACHIEVED: frozenset({"active"}),
    GoalStatus.CANCELLED: frozenset(),
}


class Goal(TenantModel):
    """A measurable goal: the latest observation of `observation_code` against `targets`."""

    care_plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="goals")
    description = EncryptedCharField(max_length=255)
    observation_code = models.CharField(max_length=32)
    targets = models.JSONField(default=list, validators=[validate_targets])
    unit = models.CharField(max_length=32, blank=True)
    start_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=GoalStatus.choices, default=GoalStatus.ACTIVE)
    status_date = models.DateField(null=True, blank=True, help_text="When the status last changed.")

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(status__in=GoalStatus.values), name="goal_status_valid")]

    def __str__(self) -> str:
        return f"Goal #{self.pk}"

    def can_become(self, status: str) -> bool:
        return status in GOAL_TRANSITIONS[self.status]

    @property
    def next_statuses(self) -> list[tuple[str, str]]:
        return [(s, GoalStatus(s).label) for s in GoalStatus.values if s in GOAL_TRANSITIONS[self.status]]

    @property
    def target_display(self) -> str:
        return targets_display(self.observation_code, self.targets, self.unit)


class InterventionStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class Intervention(TenantModel):
    care_plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="interventions")
    description = EncryptedCharField(max_length=255)
    status = models.CharField(max_length=12, choices=InterventionStatus.choices, default=InterventionStatus.PLANNED)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=InterventionStatus.values), name="intervention_status_valid")
        ]

    def __str__(self) -> str:
        return f"Intervention #{self.pk}"

    @property
    def is_final(self) -> bool:
        return self.status in (InterventionStatus.COMPLETED, InterventionStatus.CANCELLED)


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


OPEN_TASK_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)


class TaskKind(models.TextChoices):
    """What the work is, when a screen can take the user straight to it."""

    GENERAL = "general", "Task"
    RESCHEDULE = "reschedule", "Find a new time for a visit"


class CareTask(TenantModel):
    """A piece of work about a patient, for one person or for everyone holding a role."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_tasks")
    care_plan = models.ForeignKey(CarePlan, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks")
    title = EncryptedCharField(max_length=255)
    details = EncryptedTextField(max_length=4000, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assignee_role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    due_date = models.DateField()
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.ROUTINE)
    status = models.CharField(max_length=12, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(max_length=16, choices=TaskKind.choices, default=TaskKind.GENERAL)
    # A reschedule task's visit (the patient's next one when they asked); the booking form otherwise.
    appointment = models.ForeignKey(
        "patients.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["due_date", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=TaskStatus.values), name="caretask_status_valid"),
            models.CheckConstraint(condition=Q(kind__in=TaskKind.values), name="caretask_kind_valid"),
            models.CheckConstraint(condition=Q(priority__in=Priority.values), name="caretask_priority_valid"),
            models.CheckConstraint(
                condition=Q(assignee__isnull=False) | ~Q(assignee_role=""),
                name="caretask_has_assignee",
                violation_error_message="Assign the task to a person or to a role.",
            ),
            models.CheckConstraint(
                condition=Q(status="done", completed_at__isnull=False) | ~Q(status="done"),
                name="caretask_done_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "due_date"], name="caretask_org_status_due"),
            models.Index(fields=["organization", "assignee", "status"], name="caretask_org_assignee"),
            models.Index(fields=["organization", "assignee_role", "status"], name="caretask_org_role"),
            models.Index(fields=["patient", "-updated_at"], name="caretask_patient_updated"),
        ]

    def __str__(self) -> str:
        return f"Task #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TASK_STATUSES


class TaskField(models.TextChoices):
    """What a task history row is about."""

    TITLE = "title", "Title"
    DETAILS = "details", "Details"
    DUE_DATE = "due_date", "Due date"
    PRIORITY = "priority", "Priority"
    ASSIGNEE = "assignee", "Assigned to"
    STATUS = "status", "Status"


class TaskEvent(TenantModel):
    """One change of one field of a task: who, when, old -> new. The values are the labels shown at
    the time (a person's name, "Urgent", "2031-03-01"); they are encrypted because a title or
    details value is PHI, and all are treated alike. Rows outlive their actor (SET_NULL + label)."""

    task = models.ForeignKey(CareTask, on_delete=models.CASCADE, related_name="events")
    field = models.CharField(max_length=16, choices=TaskField.choices)
    old_value = EncryptedTextField(max_length=4000, blank=True)
    new_value = EncryptedTextField(max_length=4000, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(field__in=TaskField.values), name="taskevent_field_valid")]
        indexes = [models.Index(fields=["task", "-created_at"], name="taskevent_task_created")]

    def __str__(self) -> str:
        return f"Task event #{self.pk}"


class CarePlanChange(models.TextChoices):
    """What changed; the `change` carried by the care_plan_updated signal and shown on the timeline."""

    STARTED = "started", "Care plan started"
    STATUS = "status", "Care plan status changed"
    REVIEW = "review", "Review date changed"
    GOAL_ADDED = "goal_added", "Goal added"
    GOAL_STATUS = "goal_status", "Goal status changed"
    INTERVENTION_ADDED = "intervention_added", "Intervention added"
    INTERVENTION_STATUS = "intervention_status", "Intervention status changed"
    TASK_ADDED = "task_added", "Task assigned"
    TASK_STATUS = "task_status", "Task status changed"
    TASK_DONE = "task_done", "Task completed"
    TASK_UPDATED = "task_updated", "Task edited"
    TASK_REASSIGNED = "task_reassigned", "Task reassigned"
    TASK_REOPENED = "task_reopened", "Task reopened"
    GOAL_UPDATED = "goal_updated", "Goal target or dates changed"


class CarePlanActivity(TenantModel):
    """One change to a care plan or task: the timeline's "plan changes". Holds no PHI (a kind, ids,
    the actor); the full field-level history is django-auditlog's."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="care_activities")
    care_plan = models.ForeignKey(CarePlan, null=True, blank=True, on_delete=models.CASCADE, related_name="activity")
    task = models.ForeignKey(CareTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    change = models.CharField(max_length=24, choices=CarePlanChange.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)

    class Meta:
        verbose_name_plural = "care plan activities"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["patient", "-created_at"], name="careactivity_patient_created")]

    def __str__(self) -> str:
        return f"Care plan activity #{self.pk}"
