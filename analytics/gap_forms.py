"""Forms of the care-gap pages: the worklist's filters (GET: codes and ids, never PHI), a logged
call, and the closure-rate page's period (the page kit's PeriodForm without provider/location)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from analytics.filters import PeriodForm
from analytics.gaps import ATTEMPTS_NONE, ATTEMPTS_SOME, gap_kinds
from engagement.models import CallOutcome

WITHIN_CHOICES = [("30", "30 days"), ("60", "60 days"), ("90", "90 days"), ("180", "180 days")]


def _choices(field: forms.Field, choices: list[tuple[str, str]]) -> None:
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


class CareTeamChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_full_name() or obj.get_username()


class GapFilterForm(forms.Form):
    kind = forms.ChoiceField(required=False, label="Gap")
    care_team = CareTeamChoice(queryset=get_user_model().objects.none(), required=False, label="Care team member")
    attempts = forms.ChoiceField(
        required=False,
        label="Contact attempts",
        choices=[("", "Any"), (ATTEMPTS_NONE, "None yet"), (ATTEMPTS_SOME, "Some")],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from patients.models import CareTeamMember

        super().__init__(*args, **kwargs)
        _choices(self.fields["kind"], [("", "Every gap"), *gap_kinds()])
        # People on an active care team of this organization (the tenant manager scopes the subquery).
        members = CareTeamMember.objects.filter(active=True).values("user_id")
        care_team = self.fields["care_team"]
        assert isinstance(care_team, forms.ModelChoiceField)
        care_team.queryset = get_user_model().objects.filter(pk__in=members).order_by("username")

    def selection(self) -> dict[str, Any]:
        """The worklist() filters; bad values are shown as errors and left out."""
        if not self.is_bound or not self.is_valid():
            return {}
        data = self.cleaned_data
        member = data.get("care_team")
        return {
            "recall_key": data.get("kind") or "",
            "care_team_user_id": member.pk if member else None,
            "attempts": data.get("attempts") or "",
        }


class CallForm(forms.Form):
    outcome = forms.ChoiceField(choices=[("", "Outcome…"), *CallOutcome.choices])
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    next = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)


class ClosureForm(PeriodForm):
    """Months opened (a date range), a gap kind and the N of "closed within N days"."""

    kind = forms.ChoiceField(required=False, label="Gap")
    within = forms.TypedChoiceField(
        choices=WITHIN_CHOICES, coerce=int, required=False, initial="90", label="Closed within"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("compare", "practitioner", "location"):
            del self.fields[name]  # a gap has no visit: provider and location do not apply
        _choices(self.fields["kind"], [("", "Every gap"), *gap_kinds()])

    def chosen(self) -> tuple[str, int]:
        if self.is_bound and self.is_valid():
            return self.cleaned_data.get("kind") or "", self.cleaned_data.get("within") or 90
        return "", 90
