"""Population health pages: prevalence and risk tiers (aggregates), and the saved cohorts.

All PHI-free: counts and rates through analytics.suppression, cohort sizes suppressed below 11 for
users who may not see patient lists (analytics.view_worklists).
"""

from __future__ import annotations

import inspect
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render

from analytics import cohorts, population
from analytics.charts import bar_chart
from analytics.forms import CohortForm
from analytics.models import AgeBand, Cohort
from analytics.navigation import TABS
from analytics.refresh import last_refresh
from analytics.stats import percent
from analytics.suppression import TOTAL, CountTable
from analytics.views import AGGREGATES, export_or_page
from compliance.decorators import PHI_FREE, staff_view
from compliance.guards import get_object_for_user, require_perm
from healthcrm.http import TenantRequest, form_add_service_errors

VIEW_COHORT, ADD_COHORT, CHANGE_COHORT = "analytics.view_cohort", "analytics.add_cohort", "analytics.change_cohort"


class ConditionForm(forms.Form):
    condition = forms.ChoiceField(choices=population.condition_choices, required=False, label="Condition")

    def chosen(self) -> str:
        if self.is_valid():
            return self.cleaned_data.get("condition") or population.ANY
        return population.ANY


def _context(request: TenantRequest, **extra: Any) -> dict[str, Any]:
    tabs = [(name, label) for name, label, perm in TABS if request.user.has_perm(perm)]
    return {"tabs": tabs, "refreshed": last_refresh(), **extra}


def _rates(table: CountTable) -> list[tuple[str, float | None]]:
    """The rows' rates for a chart; rows with no patients at all are left out (not drawn as hidden)."""
    return [
        (row["label"], rate[0] if (rate := row["rates"][0]) else None)
        for row in table.display_rows()
        if not row["is_total"] and table.values[(row["key"], TOTAL)] != 0
    ]


def _prevalence_reading(label: str, items: list[tuple[str, float | None]]) -> str:
    shown = [(name, v) for name, v in items if v is not None]
    if not shown:
        return "No group has enough patients to show."
    high = max(shown, key=lambda i: i[1])
    return f"{label} is most common among {high[0]} ({percent(high[1])})."


def _overview_reading(items: list[tuple[str, float | None]]) -> str:
    shown = [(name, v) for name, v in items if v is not None]
    if not shown:
        return "No condition has enough patients to show."
    high = max(shown, key=lambda i: i[1])
    return f"The most common chronic condition is {high[0].lower()} ({percent(high[1])} of active patients)."


def _overview() -> tuple[list[tuple[str, float | None]], int]:
    """Per condition of the catalogue, its prevalence among active patients (None when suppressed)."""
    active, per_condition = population.condition_counts()
    items = []
    for key, condition in population.CONDITIONS.items():
        table = CountTable(
            title=condition.label,
            row_header="",
            columns=population.PREVALENCE_COLUMNS,
            rows=[("all", "All")],
            counts={
                ("all", population.WITH): per_condition[key],
                ("all", population.WITHOUT): active - per_condition[key],
            },
            rates=population.PREVALENCE_RATES,
        )
        rate = table.rate("all", population.PREVALENCE_RATES[0])
        items.append((condition.label, rate[0] if rate else None))
    return items, active


@staff_view(access=PHI_FREE, perm=AGGREGATES)
def population_view(request: TenantRequest) -> HttpResponse:
    form = ConditionForm(request.GET if "condition" in request.GET else None)
    condition = form.chosen()
    label = dict(population.condition_choices())[condition]
    overview, active = _overview()
    overview_chart = bar_chart(
        "Prevalence by chronic condition", _overview_reading(overview), overview, slug="conditions"
    )
    tables: dict[str, Any] = {key: population.prevalence_table(condition, key) for key in population.DIMENSIONS}
    band_items = _rates(tables["age_band"])
    band_chart = bar_chart(
        f"{label}: prevalence by age band", _prevalence_reading(label, band_items), band_items, slug="bands"
    )
    tiers = population.tier_table()
    tier_totals = next(row for row in tiers.display_rows() if row["is_total"])
    tier_items = [
        (column.label, float(v) if isinstance(v, int) else None)
        for column, v in zip(tiers.columns, tier_totals["cells"], strict=True)
    ]
    tier_chart = bar_chart("Active patients by risk tier", _tier_reading(tiers), tier_items, unit="", slug="tier_chart")
    tables.update({"tiers": tiers, "conditions": overview_chart, "bands": band_chart, "tier_chart": tier_chart})
    context = _context(
        request,
        page_slug="population",
        condition_form=form,
        condition_label=label,
        active=active,
        charts=[overview_chart, band_chart, tier_chart],
        tables=[(key, tables[key]) for key in [*population.DIMENSIONS, "tiers"]],
        rules=inspect.getdoc(population.risk_points),
    )
    return export_or_page(request, tables, "analytics/population.html", context)


def _tier_reading(tiers: CountTable) -> str:
    rate = tiers.rate(TOTAL, tiers.rates[0])
    if rate is None:
        return "Too few patients in the high tier to show its share."
    return f"{percent(rate[0])} of active patients are in the high tier (4)."


# -- Cohorts ----------------------------------------------------------------------------------------


def _describe(definition: dict[str, Any]) -> list[str]:
    parts = []
    if definition.get("conditions"):
        names = [population.CONDITIONS[k].label for k in definition["conditions"] if k in population.CONDITIONS]
        parts.append("Any of: " + ", ".join(names))
    if definition.get("age_bands"):
        labels = dict(AgeBand.choices)
        parts.append("Age " + ", ".join(str(labels.get(b, b)) for b in definition["age_bands"]))
    if definition.get("sex"):
        parts.append("Sex: " + ", ".join(population.SEX_LABELS.get(s, s) for s in definition["sex"]))
    if definition.get("languages"):
        parts.append("Language: " + ", ".join(definition["languages"]))
    if definition.get("risk_tiers"):
        parts.append("Risk tier " + ", ".join(str(t) for t in definition["risk_tiers"]))
    if definition.get("uncontrolled") is not None:
        parts.append("Uncontrolled measure" if definition["uncontrolled"] else "No uncontrolled measure")
    return parts or ["All active patients"]


@staff_view(access=PHI_FREE, perm=VIEW_COHORT)
def cohort_list_view(request: TenantRequest) -> HttpResponse:
    exact = request.user.has_perm("analytics.view_worklists")
    listed = list(cohorts.cohort_list())
    sizes = cohorts.cohort_sizes(listed)  # one query for the whole list
    rows = [
        {
            "cohort": cohort,
            "description": _describe(cohort.definition),
            "size": cohorts.cohort_size_display(sizes[cohort.pk], exact=exact),
        }
        for cohort in listed
    ]
    return render(request, "analytics/cohorts.html", _context(request, rows=rows, exact=exact))


@staff_view(access=PHI_FREE)
def cohort_edit_view(request: TenantRequest, pk: int | None = None) -> HttpResponse:
    cohort = get_object_for_user(request, Cohort.objects.all(), pk, CHANGE_COHORT) if pk else None
    if cohort is None:
        require_perm(request, ADD_COHORT)
    initial = {"name": cohort.name, "definition": cohort.definition} if cohort else {"definition": {}}
    form = CohortForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            cohort = cohorts.cohort_save(
                cohort=cohort,
                name=form.cleaned_data["name"],
                definition=form.cleaned_data["definition"],
                user=request.user,
            )
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            messages.success(request, "Cohort saved.")
            return redirect("analytics:cohorts")
    status = 400 if request.method == "POST" else 200
    context = _context(
        request,
        form=None,
        cohort_form=form,
        cohort=cohort,
        conditions=list(population.CONDITIONS.values()),
        age_bands=AgeBand.choices,
    )
    return render(request, "analytics/cohort_form.html", context, status=status)
