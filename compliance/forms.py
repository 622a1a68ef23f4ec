"""The access-log page's filters: parsed by a form, so a hostile query string is ignored, never a 500."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator

from compliance.models import AccessAction

RECORD = RegexValidator(r"^(?:[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*:)?\d{1,19}$", "A record id, or app.model:id.")


class AccessLogFilterForm(forms.Form):
    """Filter values that do not parse (a NUL, an unknown action, a record id that is not a number)
    fall back to no filter."""

    action = forms.ChoiceField(choices=AccessAction.choices, required=False)
    actor = forms.CharField(max_length=254, required=False)  # CharField refuses NUL characters
    object = forms.CharField(max_length=140, required=False, validators=[RECORD])

    def values(self) -> dict[str, Any]:
        self.is_valid()
        return {name: ("" if name in self.errors else self.cleaned_data.get(name) or "") for name in self.fields}
