from __future__ import annotations

from typing import Any

from django import forms

from patients.models import BreakGlassOutcome, BreakGlassReason
from patients.models.breakglass import NOTE_MAX_LENGTH


class BreakGlassForm(forms.Form):
    reason = forms.ChoiceField(choices=BreakGlassReason.choices)
    note = forms.CharField(
        label="Details",
        max_length=NOTE_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required when the reason is Other. Compliance reviews every break-the-glass access.",
    )
    next = forms.CharField(max_length=500, required=False, widget=forms.HiddenInput)
    # Set when the form answers a restricted note or document: a grant even with a care relationship.
    restricted = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        if data.get("reason") == BreakGlassReason.OTHER and not (data.get("note") or "").strip():
            self.add_error("note", "Say why you need the record.")
        return data


class BreakGlassReviewForm(forms.Form):
    outcome = forms.ChoiceField(choices=BreakGlassOutcome.choices)
    review_note = forms.CharField(
        label="Review note", max_length=NOTE_MAX_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
