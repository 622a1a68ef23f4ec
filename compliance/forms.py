"""The access-log page's filters: parsed by a form, so a hostile query string is ignored, never a 500."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator

from compliance.models import ALERT_NOTE_MAX_LENGTH, AccessAction, AnomalyOutcome, AnomalyRule

RECORD = RegexValidator(r"^(?:[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*:)?\d{1,19}$", "A record id, or app.model:id.")


class AccessLogFilterForm(forms.Form):
    """Filter values that do not parse (a NUL, an unknown action, a record id that is not a number,
    a date that is no date) fall back to no filter. `patient` is a patient's id, chosen through the
    POSTed patient search (names and MRNs never go in the URL)."""

    action = forms.ChoiceField(choices=AccessAction.choices, required=False)
    actor = forms.CharField(max_length=254, required=False, label="User")  # CharField refuses NUL characters
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="Until", widget=forms.DateInput(attrs={"type": "date"}))
    patient = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput)
    object = forms.CharField(max_length=140, required=False, validators=[RECORD])

    def values(self) -> dict[str, Any]:
        self.is_valid()
        values = {name: (None if name in self.errors else self.cleaned_data.get(name)) for name in self.fields}
        if values["since"] and values["until"] and values["since"] > values["until"]:
            values["since"], values["until"] = values["until"], values["since"]
        return {name: "" if value is None else value for name, value in values.items()}


class AccessLogPatientForm(forms.Form):
    """The patient search of the access log (POSTed): an MRN or a name."""

    patient_query = forms.CharField(
        max_length=120, label="Patient", help_text="MRN or name (at least 3 letters of a name)."
    )


class AuditSearchFilterForm(AccessLogFilterForm):
    """The audit search's filters (reads and writes): the access log's, plus the source, the IP and
    the write actions. Values that do not parse fall back to no filter."""

    SOURCES = [("", "Reads and writes"), ("access", "Reads (access log)"), ("write", "Writes (change log)")]
    WRITE_ACTIONS = [("create", "Created a record"), ("update", "Updated a record"), ("delete", "Deleted a record")]

    action = forms.ChoiceField(choices=[*AccessAction.choices, *WRITE_ACTIONS], required=False)
    source = forms.ChoiceField(choices=SOURCES, required=False)
    ip = forms.GenericIPAddressField(required=False, label="IP address")


class AnomalyFilterForm(forms.Form):
    rule = forms.ChoiceField(choices=AnomalyRule.choices, required=False)
    reviewed = forms.ChoiceField(choices=[("", "All"), ("no", "Awaiting review"), ("yes", "Reviewed")], required=False)

    def values(self) -> dict[str, str]:
        self.is_valid()
        return {name: ("" if name in self.errors else self.cleaned_data.get(name) or "") for name in self.fields}


class AnomalyReviewForm(forms.Form):
    outcome = forms.ChoiceField(choices=AnomalyOutcome.choices)
    review_note = forms.CharField(
        label="Review note",
        max_length=ALERT_NOTE_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Stored encrypted. What you checked and what you decided.",
    )


class WeekForm(forms.Form):
    week = forms.DateField(required=False)
