"""Forms of the scheduling screens: booking and rescheduling (times in the organization's zone),
cancelling and marking a no-show (with a coded reason)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from django import forms

from healthcrm.models import Location
from healthcrm.tenancy import require_current_organization
from patients.models import (
    CANCEL_REASONS,
    NO_SHOW_REASONS,
    AppointmentKind,
    AppointmentType,
    Practitioner,
    StatusReason,
)

DURATIONS = [
    (15, "15 minutes"),
    (20, "20 minutes"),
    (30, "30 minutes"),
    (45, "45 minutes"),
    (60, "1 hour"),
    (90, "1½ hours"),
]


class _TimesMixin(forms.Form):
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    start_time = forms.TimeField(label="Start time", widget=forms.TimeInput(attrs={"type": "time", "step": 300}))
    duration = forms.TypedChoiceField(choices=DURATIONS, coerce=int, initial=30)

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        if data.get("date") and data.get("start_time") and data.get("duration"):
            zone = require_current_organization().zone
            starts = datetime.combine(data["date"], data["start_time"]).replace(tzinfo=zone)
            data["starts_at"] = starts
            data["ends_at"] = starts + timedelta(minutes=data["duration"])
        return data


class AppointmentForm(_TimesMixin, forms.Form):
    practitioner = forms.ModelChoiceField(queryset=Practitioner.objects.all_organizations().none())
    location = forms.ModelChoiceField(queryset=Location.objects.all_organizations().none(), required=False)
    kind = forms.ChoiceField(choices=AppointmentKind.choices, initial=AppointmentKind.IN_PERSON, label="Visit")
    appointment_type = forms.ChoiceField(choices=AppointmentType.choices, initial="follow_up", label="Type")
    reason = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}), label="Reason for visit"
    )

    field_order = ["practitioner", "location", "kind", "appointment_type", "date", "start_time", "duration", "reason"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["practitioner"]).queryset = Practitioner.objects.filter(is_active=True)
        cast(forms.ModelChoiceField, self.fields["location"]).queryset = Location.objects.filter(is_active=True)


class RescheduleForm(_TimesMixin, forms.Form):
    practitioner = forms.ModelChoiceField(queryset=Practitioner.objects.all_organizations().none())

    field_order = ["practitioner", "date", "start_time", "duration"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["practitioner"]).queryset = Practitioner.objects.filter(is_active=True)


def _reasons(allowed: frozenset[str]) -> list[tuple[str, str]]:
    """The reasons that fit, in StatusReason's order (most common first, "other" last)."""
    return [(value, label) for value, label in StatusReason.choices if value in allowed]


class CancelForm(forms.Form):
    """Cancelling asks why: no reason is chosen for the user, so a slip of the mouse cancels nothing."""

    reason = forms.ChoiceField(
        choices=[("", "Choose a reason…"), *_reasons(CANCEL_REASONS)],
        label="Why is the visit cancelled?",
        error_messages={"required": "Choose why the visit is cancelled."},
    )


class NoShowForm(forms.Form):
    reason = forms.ChoiceField(
        choices=_reasons(NO_SHOW_REASONS), initial=StatusReason.UNKNOWN, required=False, label="Why (if known)"
    )


class CalendarFilterForm(forms.Form):
    """The calendar's query string; a value that does not parse falls back to its default."""

    date = forms.DateField(required=False)
    view = forms.ChoiceField(choices=[("week", "week"), ("day", "day")], required=False)
    # Querysets are set per request (the tenant manager refuses at import).
    practitioner: forms.ModelChoiceField[Practitioner] = forms.ModelChoiceField(queryset=None, required=False)
    location: forms.ModelChoiceField[Location] = forms.ModelChoiceField(queryset=None, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["practitioner"]).queryset = Practitioner.objects.all()
        cast(forms.ModelChoiceField, self.fields["location"]).queryset = Location.objects.all()

    def clean_date(self) -> Any:
        day = self.cleaned_data["date"]
        # A week is shown around the day: keep a week's margin from date's own limits.
        if day is not None and not (1 < day.year < 9999):
            raise forms.ValidationError("Choose a date between the years 2 and 9998.")
        return day

    def value(self, name: str) -> Any:
        """The cleaned value of a field, or None where it was missing or did not parse."""
        self.is_valid()
        return None if name in self.errors else self.cleaned_data.get(name)
