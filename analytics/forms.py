"""Analytics forms: saved cohorts."""

from __future__ import annotations

from typing import Any

from django import forms

from analytics.cohorts import cohort_definition_clean


class CohortForm(forms.Form):
    name = forms.CharField(max_length=120)
    definition = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=(
            'As JSON; every key optional, keys combine with "and", values of a key with "or": '
            '{"conditions": ["type2_diabetes", "ckd"], "age_bands": ["40-64", "65-74"], "sex": ["female"], '
            '"languages": ["es"], "risk_tiers": [3, 4], "uncontrolled": true}.'
        ),
    )

    def clean_name(self) -> str:
        return str(self.cleaned_data["name"]).strip()

    def clean_definition(self) -> dict[str, Any]:
        value = self.cleaned_data.get("definition")
        return cohort_definition_clean({} if value is None else value)
