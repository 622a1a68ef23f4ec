from __future__ import annotations

from datetime import date
from typing import Any, cast

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from healthcrm.roles import Role
from patients.care.selectors import overdue_tasks_exist, staff_of_organization, task_roles
from patients.models import (
    BLOOD_PRESSURE,
    DIASTOLIC,
    SYSTOLIC,
    AppointmentStatus,
    CarePlanStatus,
    CarePlanTemplate,
    CareTask,
    CareTeamMember,
    Comparator,
    Condition,
    Goal,
    GoalStatus,
    InterventionStatus,
    NoteType,
    Patient,
    Priority,
    TaskStatus,
    TeamRole,
)

TIMELINE_MAX_PAGE = 1000


class StaffChoiceField(forms.ModelChoiceField):
    """A colleague by full name and role ("Nora Hale · Nurse"); the email when no name is set."""

    def label_from_instance(self, obj: Any) -> str:
        name = obj.get_full_name() or obj.get_username()
        role = getattr(obj, "staff_role", "")
        return f"{name} · {Role(role).label}" if role in Role.values else name


def task_role_choices() -> list[tuple[str, str]]:
    labels = dict(Role.choices)
    return [("", "—"), *((role, labels[role]) for role in task_roles())]


class CareTeamAddForm(forms.Form):
    user = StaffChoiceField(queryset=get_user_model().objects.none(), label="Staff member")
    team_role = forms.ChoiceField(choices=TeamRole.choices, label="Role on the team")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["user"]).queryset = staff_of_organization()


class CarePlanStartForm(forms.Form):
    template = forms.ModelChoiceField(
        queryset=CarePlanTemplate.objects.all_organizations().none(),
        required=False,
        empty_label="No template (blank plan)",
    )
    title = forms.CharField(required=False, max_length=200, help_text="Leave empty to use the template's name.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["template"]).queryset = CarePlanTemplate.objects.filter(is_active=True)

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        if not data.get("template") and not (data.get("title") or "").strip():
            self.add_error("title", "Give the plan a title or choose a template.")
        return data


class CarePlanUpdateForm(forms.Form):
    status = forms.ChoiceField(choices=CarePlanStatus.choices)
    review_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_review_date(self) -> date | None:
        value = self.cleaned_data.get("review_date")
        if value and value < date.today():
            raise forms.ValidationError("The review date cannot be in the past.")
        return value


class TaskForm(forms.Form):
    title = forms.CharField(max_length=255)
    assignee = StaffChoiceField(queryset=get_user_model().objects.none(), required=False, label="Assign to a person")
    assignee_role = forms.ChoiceField(choices=[("", "—"), *Role.choices], required=False, label="or to a role")
    due_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.ROUTINE)
    details = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["assignee"]).queryset = staff_of_organization()
        cast(forms.ChoiceField, self.fields["assignee_role"]).choices = task_role_choices()

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        if not data.get("assignee") and not data.get("assignee_role") and "assignee" not in self.errors:
            self.add_error("assignee", "Assign the task to a person or to a role.")
        return data

    def clean_due_date(self) -> date:
        value = self.cleaned_data["due_date"]
        if value < date.today():
            raise forms.ValidationError("The due date cannot be in the past.")
        return value


class TaskEditForm(forms.Form):
    """Title, details, due date and priority of an open task. A due date already past may stay as it
    is (an overdue task keeps its date when only its priority changes); a new one cannot be past."""

    title = forms.CharField(max_length=255)
    details = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    due_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    priority = forms.ChoiceField(choices=Priority.choices)

    def __init__(self, *args: Any, task: CareTask, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {"title": task.title, "details": task.details, "due_date": task.due_date, "priority": task.priority},
        )
        super().__init__(*args, **kwargs)
        self.task = task

    def clean_due_date(self) -> date:
        value: date = self.cleaned_data["due_date"]
        if value != self.task.due_date and value < timezone.localdate():
            raise forms.ValidationError("The due date cannot be in the past.")
        return value


class TaskReassignForm(forms.Form):
    assignee = StaffChoiceField(queryset=get_user_model().objects.none(), required=False, label="Assign to a person")
    assignee_role = forms.ChoiceField(choices=[("", "—")], required=False, label="or to a role's queue")

    def __init__(self, *args: Any, task: CareTask | None = None, **kwargs: Any) -> None:
        if task is not None:
            kwargs.setdefault("initial", {"assignee": task.assignee_id, "assignee_role": task.assignee_role})
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["assignee"]).queryset = staff_of_organization()
        cast(forms.ChoiceField, self.fields["assignee_role"]).choices = task_role_choices()

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        if not data.get("assignee") and not data.get("assignee_role") and "assignee" not in self.errors:
            self.add_error("assignee", "Assign the task to a person or to a role.")
        return data


def _component_label(goal: Goal, component: str) -> str:
    if goal.observation_code == BLOOD_PRESSURE:
        return {SYSTOLIC: "Systolic", DIASTOLIC: "Diastolic"}.get(component, component)
    return component


class GoalEditForm(forms.Form):
    """A goal's target (one comparator and value per component the goal measures), unit and dates."""

    unit = forms.CharField(max_length=32, required=False)
    start_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    due_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, goal: Goal, **kwargs: Any) -> None:
        initial = {"unit": goal.unit, "start_date": goal.start_date, "due_date": goal.due_date}
        self.components = [str(t.get("component") or "") for t in goal.targets] or [""]
        for index, target in enumerate(goal.targets):
            initial[f"comparator_{index}"] = target.get("comparator")
            initial[f"value_{index}"] = target.get("value")
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        for index, component in enumerate(self.components):
            name = _component_label(goal, component)
            prefix = f"{name} target" if name else "Target"
            self.fields[f"comparator_{index}"] = forms.ChoiceField(
                choices=Comparator.choices, label=f"{prefix}: comparison"
            )
            self.fields[f"value_{index}"] = forms.DecimalField(
                label=f"{prefix}: value", max_digits=12, decimal_places=4
            )
        # Targets first, then unit and dates.
        order = [f"{kind}_{i}" for i in range(len(self.components)) for kind in ("comparator", "value")]
        self.order_fields([*order, "unit", "start_date", "due_date"])

    def targets(self) -> list[dict[str, str]]:
        data = self.cleaned_data
        return [
            {
                "component": component,
                "comparator": data[f"comparator_{i}"],
                "value": format(data[f"value_{i}"].normalize(), "f"),
            }
            for i, component in enumerate(self.components)
        ]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        start, due = data.get("start_date"), data.get("due_date")
        if start and due and due < start:
            self.add_error("due_date", "The due date cannot be before the start date.")
        return data


class GoalStatusForm(forms.Form):
    status = forms.ChoiceField(choices=GoalStatus.choices)


class InterventionForm(forms.Form):
    description = forms.CharField(label="New intervention", max_length=255)


class InterventionStatusForm(forms.Form):
    status = forms.ChoiceField(choices=InterventionStatus.choices)


class NoteForm(forms.Form):
    note_type = forms.ChoiceField(choices=NoteType.choices, label="Type", initial=NoteType.GENERAL, required=False)
    body = forms.CharField(label="Note", max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}))


class NoteAmendForm(forms.Form):
    body = forms.CharField(label="Amended note", max_length=10_000, widget=forms.Textarea(attrs={"rows": 5}))
    reason = forms.CharField(label="Reason for the amendment", max_length=500)


class TeamQueueFilter(forms.Form):
    role = forms.ChoiceField(choices=[("", "Any role"), *Role.choices], required=False)
    assignee = StaffChoiceField(queryset=get_user_model().objects.none(), required=False, empty_label="Anyone")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["assignee"]).queryset = staff_of_organization()
        cast(forms.ChoiceField, self.fields["role"]).choices = [("", "Any role"), *task_role_choices()[1:]]


TASK_STATUS_CHOICES = [(s, TaskStatus(s).label) for s in TaskStatus.values]


class PatientFilter(django_filters.FilterSet):
    """Patient list filters; the free-text search (blind indexes) is applied before them."""

    care_team_member = django_filters.ModelChoiceFilter(
        queryset=lambda request: staff_of_organization(), method="filter_care_team", label="Care team member"
    )
    condition = django_filters.CharFilter(
        method="filter_condition", label="Condition code", help_text="SNOMED CT or ICD-10 code, e.g. 44054006."
    )
    last_visit_after = django_filters.DateFilter(
        method="filter_last_visit_after", label="Last visit on or after", widget=forms.DateInput(attrs={"type": "date"})
    )
    last_visit_before = django_filters.DateFilter(
        method="filter_last_visit_before", label="Last visit before", widget=forms.DateInput(attrs={"type": "date"})
    )
    has_overdue_tasks = django_filters.BooleanFilter(
        method="filter_overdue",
        label="Has overdue tasks",
        widget=forms.Select(choices=[("", "Any"), ("true", "Yes"), ("false", "No")]),
    )

    class Meta:
        model = Patient
        fields: list[str] = []

    def filter_care_team(self, queryset: QuerySet[Patient], name: str, value: Any) -> QuerySet[Patient]:
        team = CareTeamMember.objects.filter(patient=OuterRef("pk"), user=value, active=True)
        return queryset.filter(Exists(team))

    def filter_condition(self, queryset: QuerySet[Patient], name: str, value: str) -> QuerySet[Patient]:
        conditions = Condition.objects.filter(
            patient=OuterRef("pk"), code=value.strip(), clinical_status__in=["active", "recurrence", "relapse"]
        )
        return queryset.filter(Exists(conditions))

    def _visits(self, **lookups: Any) -> Exists:
        from patients.models import Appointment

        return Exists(Appointment.objects.filter(patient=OuterRef("pk"), status=AppointmentStatus.COMPLETED, **lookups))

    def filter_last_visit_after(self, queryset: QuerySet[Patient], name: str, value: date) -> QuerySet[Patient]:
        return queryset.filter(self._visits(starts_at__date__gte=value))

    def filter_last_visit_before(self, queryset: QuerySet[Patient], name: str, value: date) -> QuerySet[Patient]:
        # Seen before that date, and not since.
        return queryset.filter(self._visits(starts_at__date__lt=value)).exclude(
            self._visits(starts_at__date__gte=value)
        )

    def filter_overdue(self, queryset: QuerySet[Patient], name: str, value: bool | None) -> QuerySet[Patient]:
        if value is None:
            return queryset
        return queryset.filter(overdue_tasks_exist()) if value else queryset.exclude(overdue_tasks_exist())


class TimelinePageForm(forms.Form):
    """The timeline's `?page=`: a number from 1 to TIMELINE_MAX_PAGE; anything else is page 1.

    Each page merges every source from its newest row, so pages are capped: a page past the last is
    empty, and a number past bigint never reaches the database."""

    page = forms.IntegerField(min_value=1, max_value=TIMELINE_MAX_PAGE, required=False)

    def number(self) -> int:
        return (self.cleaned_data.get("page") if self.is_valid() else None) or 1
