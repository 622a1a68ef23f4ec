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
    Availability,
    AvailabilityException,
    Practitioner,
    StatusReason,
    WaitlistEntry,
)

DURATIONS = [
    (10, "10 minutes"),
    (15, "15 minutes"),
    (20, "20 minutes"),
    (30, "30 minutes"),
    (45, "45 minutes"),
    (60, "1 hour"),
    (90, "1½ hours"),
]


class _TimesMixin(forms.Form):
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    start_time = forms.TimeField(
        label="Start time", widget=forms.TimeInput(format="%H:%M", attrs={"type": "time", "step": 300})
    )
    duration = forms.TypedChoiceField(choices=DURATIONS, coerce=int, initial=30)

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        if data.get("date") and data.get("start_time") and data.get("duration"):
            zone = require_current_organization().zone
            starts = datetime.combine(data["date"], data["start_time"]).replace(tzinfo=zone)
            data["starts_at"] = starts
            data["ends_at"] = starts + timedelta(minutes=data["duration"])
        return data


class _OverrideMixin(forms.Form):
    """Booking outside the practitioner's availability is possible, on purpose and with a reason."""

    availability_override = forms.BooleanField(
        required=False,
        label="Book outside availability",
        help_text="Only when the practitioner agreed: the reason is kept with the visit and audited.",
    )
    override_reason = forms.CharField(
        required=False, max_length=500, label="Why outside availability", widget=forms.TextInput()
    )


MAX_OCCURRENCES = 52
REPEATS = [
    ("", "Does not repeat"),
    ("1", "Every week"),
    ("2", "Every 2 weeks"),
    ("3", "Every 3 weeks"),
    ("4", "Every 4 weeks"),
]


class _RecurrenceMixin(forms.Form):
    """A series: every N weeks, M times or until a date (whichever comes first), at the same local time."""

    repeat = forms.TypedChoiceField(choices=REPEATS, coerce=int, empty_value=None, required=False, label="Repeat")
    repeat_count = forms.IntegerField(
        required=False,
        min_value=2,
        max_value=MAX_OCCURRENCES,
        label="Number of visits",
        help_text="In all, this one included.",
    )
    repeat_until = forms.DateField(required=False, label="Repeat until", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        every = data.get("repeat") or 0
        if every and not data.get("repeat_count") and not data.get("repeat_until"):
            self.add_error("repeat_count", "Say how many visits, or until when.")
        until = data.get("repeat_until")
        if every and until and data.get("date"):
            if until <= data["date"]:
                self.add_error("repeat_until", "Choose a date after the first visit.")
            elif (until - data["date"]).days > 366:
                self.add_error("repeat_until", "A series can run a year at most.")
        return data


class AppointmentForm(_RecurrenceMixin, _OverrideMixin, _TimesMixin, forms.Form):
    practitioner = forms.ModelChoiceField(queryset=Practitioner.objects.all_organizations().none())
    location = forms.ModelChoiceField(queryset=Location.objects.all_organizations().none(), required=False)
    kind = forms.ChoiceField(choices=AppointmentKind.choices, initial=AppointmentKind.IN_PERSON, label="Visit")
    appointment_type = forms.ChoiceField(choices=AppointmentType.choices, initial="follow_up", label="Type")
    reason = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}), label="Reason for visit"
    )

    field_order = [
        "practitioner",
        "location",
        "kind",
        "appointment_type",
        "date",
        "start_time",
        "duration",
        "reason",
        "repeat",
        "repeat_count",
        "repeat_until",
        "availability_override",
        "override_reason",
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["practitioner"]).queryset = Practitioner.objects.filter(is_active=True)
        cast(forms.ModelChoiceField, self.fields["location"]).queryset = Location.objects.filter(is_active=True)


class SlotBookingForm(AppointmentForm):
    """Booking from an empty slot of the day view: the patient is chosen on the page (found with a
    POSTed search), sent as an id and fetched through the guarded helper by the view."""

    patient = forms.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        widget=forms.HiddenInput,
        error_messages={"required": "Find and choose the patient first."},
    )


class RescheduleForm(_OverrideMixin, _TimesMixin, forms.Form):
    practitioner = forms.ModelChoiceField(queryset=Practitioner.objects.all_organizations().none())

    field_order = ["practitioner", "date", "start_time", "duration", "availability_override", "override_reason"]

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


class _ClinicChoicesMixin(forms.Form):
    """Practitioner and location selects of the current organization (set per request)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "practitioner" in self.fields:
            cast(forms.ModelChoiceField, self.fields["practitioner"]).queryset = Practitioner.objects.filter(
                is_active=True
            )
        if "location" in self.fields:
            cast(forms.ModelChoiceField, self.fields["location"]).queryset = Location.objects.filter(is_active=True)


class AvailabilityForm(_ClinicChoicesMixin, forms.ModelForm):
    location = forms.ModelChoiceField(queryset=Location.objects.all_organizations().none())

    class Meta:
        model = Availability
        fields = ["location", "weekday", "start", "end"]
        widgets = {
            "start": forms.TimeInput(format="%H:%M", attrs={"type": "time", "step": 300}),
            "end": forms.TimeInput(format="%H:%M", attrs={"type": "time", "step": 300}),
        }


class AvailabilityExceptionForm(_ClinicChoicesMixin, forms.ModelForm):
    location = forms.ModelChoiceField(
        queryset=Location.objects.all_organizations().none(), required=False, help_text="Empty: everywhere."
    )

    class Meta:
        model = AvailabilityException
        fields = ["kind", "date", "location", "start", "end", "note"]
        widgets = {
            "date": forms.DateInput(attrs={"type": "date"}),
            "start": forms.TimeInput(format="%H:%M", attrs={"type": "time", "step": 300}),
            "end": forms.TimeInput(format="%H:%M", attrs={"type": "time", "step": 300}),
        }

    def clean_date(self) -> Any:
        day = self.cleaned_data["date"]
        if day is not None and not (1 < day.year < 9999):
            raise forms.ValidationError("Choose a date between the years 2 and 9998.")
        return day


def query_id(raw: str | None) -> int | None:
    """An id from the query string: a positive number that fits a bigint, else None (ignored)."""
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        return None
    return int(raw)


class DayViewForm(forms.Form):
    """The day and month views' query string: a date (ids are read with `query_id` and fetched guarded)."""

    date = forms.DateField(required=False)

    def clean_date(self) -> Any:
        day = self.cleaned_data["date"]
        if day is not None and not (1 < day.year < 9999):
            raise forms.ValidationError("Choose a date between the years 2 and 9998.")
        return day

    def day(self) -> Any:
        return self.cleaned_data.get("date") if self.is_valid() else None


class WaitlistForm(_ClinicChoicesMixin, forms.ModelForm):
    practitioner = forms.ModelChoiceField(
        queryset=Practitioner.objects.all_organizations().none(), required=False, help_text="Empty: anyone."
    )
    location = forms.ModelChoiceField(
        queryset=Location.objects.all_organizations().none(), required=False, help_text="Empty: anywhere."
    )

    class Meta:
        model = WaitlistEntry
        fields = ["practitioner", "location", "earliest", "latest", "note"]
        widgets = {
            "earliest": forms.DateInput(attrs={"type": "date"}),
            "latest": forms.DateInput(attrs={"type": "date"}),
            "note": forms.Textarea(attrs={"rows": 2}),
        }

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        for name in ("earliest", "latest"):
            day = data.get(name)
            if day is not None and not (1 < day.year < 9999):
                self.add_error(name, "Choose a date between the years 2 and 9998.")
        return data
