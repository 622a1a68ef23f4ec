from __future__ import annotations

from django import forms

from patients.models.erasure import NOTE_MAX_LENGTH


class HoldForm(forms.Form):
    reason = forms.CharField(
        label="Reason for the hold",
        max_length=NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="A matter or case reference; no clinical details.",
    )


class DecisionForm(forms.Form):
    decision_note = forms.CharField(
        label="Decision note",
        max_length=NOTE_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="How identity was checked, or why the request is declined; no clinical details.",
    )
