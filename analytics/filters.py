"""The filters every analytics page has: a date range, a comparison period, a provider, a location.

They travel in the query string (GET), so a page can be bookmarked and shared: ids and dates only,
never PHI. A bad value re-renders the page with the form's errors and the default period's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet

from healthcrm.models import Location
from patients.models import Practitioner

DEFAULT_DAYS = 90
MAX_DAYS = 3 * 366


COMPARE_CHOICES = [
    ("previous", "Previous period"),
    ("year", "Same period a year earlier"),
    ("none", "No comparison"),
]


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def label(self) -> str:
        return f"{self.start:%d %b %Y} – {self.end:%d %b %Y}"


@dataclass(frozen=True)
class Filters:
    period: Period
    comparison: Period | None
    practitioner: Practitioner | None
    location: Location | None

    def apply(
        self, queryset: QuerySet[Any], *, date_field: str = "local_date", period: Period | None = None
    ) -> QuerySet[Any]:
        chosen = period or self.period
        queryset = queryset.filter(**{f"{date_field}__gte": chosen.start, f"{date_field}__lte": chosen.end})
        if self.practitioner is not None:
            queryset = queryset.filter(practitioner=self.practitioner)
        if self.location is not None:
            queryset = queryset.filter(location=self.location)
        return queryset


class PeriodForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    compare = forms.ChoiceField(choices=COMPARE_CHOICES, required=False, initial="previous")
    practitioner = forms.ModelChoiceField(
        queryset=Practitioner.objects.all_organizations().none(), required=False, label="Provider"
    )
    location = forms.ModelChoiceField(queryset=Location.objects.all_organizations().none(), required=False)

    def __init__(self, data: Any = None, *, today: date, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.today = today
        # The current organization's only (the tenant manager and RLS scope these).
        practitioner = self.fields["practitioner"]
        location = self.fields["location"]
        assert isinstance(practitioner, forms.ModelChoiceField) and isinstance(location, forms.ModelChoiceField)
        practitioner.queryset = Practitioner.objects.order_by("display_name")
        location.queryset = Location.objects.order_by("name")
        self.fields["start"].widget.attrs["placeholder"] = (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat()
        self.fields["end"].widget.attrs["placeholder"] = today.isoformat()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        end = data.get("end") or self.today
        start = data.get("start") or (end - timedelta(days=DEFAULT_DAYS - 1))
        if start > end:
            self.add_error("start", "The start must be on or before the end.")
        elif (end - start).days + 1 > MAX_DAYS:
            self.add_error("start", f"Choose a range of at most {MAX_DAYS} days.")
        data["start"], data["end"] = start, end
        return data

    def filters(self) -> Filters:
        """The valid filters, or the default period (with nothing else) when the form has errors."""
        if self.is_bound and self.is_valid():
            data = self.cleaned_data
        else:
            data = {"start": None, "end": None, "compare": "previous", "practitioner": None, "location": None}
        end = data["end"] or self.today
        start = data["start"] or (end - timedelta(days=DEFAULT_DAYS - 1))
        period = Period(start, end)
        compare = data.get("compare") or "previous"
        comparison: Period | None
        if compare == "previous":
            comparison = Period(start - timedelta(days=period.days), start - timedelta(days=1))
        elif compare == "year":
            comparison = Period(_year_earlier(start), _year_earlier(end))
        else:
            comparison = None
        return Filters(period, comparison, data.get("practitioner"), data.get("location"))


def _year_earlier(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)
