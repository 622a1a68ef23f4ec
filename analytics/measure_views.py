"""The quality-measures page (aggregates, PHI-free) and its drill-down worklist (patients, access-logged).

The page follows the attendance page: filters in the query string (a 12-month period by its last
month, a provider), a tile per measure, a trend line and provider bars per measure, every table
through CountTable with a CSV of the same cells. The drill-down names patients: only roles with
analytics.view_worklists (analysts get 403), and each patient shown is in the access log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from django import forms
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from analytics.charts import bar_chart, line_chart, trend_reading
from analytics.filters import Period
from analytics.measure_selectors import (
    Effectiveness,
    GroupChange,
    measure_clinic_table,
    measure_gap_patient_ids,
    measure_periods,
    measure_provider_tables,
    measure_trend_tables,
    treatment_effectiveness,
)
from analytics.measures import MEASURES, Measure
from analytics.measures import Period as MeasurePeriod
from analytics.navigation import TABS
from analytics.refresh import last_refresh
from analytics.views import AGGREGATES, export_or_page
from compliance.access import access_recorder
from compliance.decorators import PHI_FREE, staff_view
from compliance.models import AccessAction
from healthcrm.http import TenantRequest
from patients.models import Patient, Practitioner

WORKLISTS = "analytics.view_worklists"
PAGE_SIZE = 50


@dataclass(frozen=True)
class MeasureFilters:
    """What base.html's "Showing ..." line reads: the period, no comparison, the provider."""

    period: Period
    practitioner: Practitioner | None
    comparison: None = None
    location: None = None


class MeasureFilterForm(forms.Form):
    period = forms.ChoiceField(required=False, label="12 months to")
    practitioner = forms.ModelChoiceField(
        queryset=Practitioner.objects.all_organizations().none(), required=False, label="Provider"
    )

    def __init__(self, data: Any = None, *, periods: list[date], **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.periods = periods
        cast(forms.ChoiceField, self.fields["period"]).choices = [(end.isoformat(), f"{end:%B %Y}") for end in periods]
        cast(forms.ModelChoiceField, self.fields["practitioner"]).queryset = Practitioner.objects.order_by(
            "display_name"
        )

    def chosen(self) -> tuple[date | None, Practitioner | None]:
        """The period end (default: the newest) and provider; the defaults when the form has errors."""
        newest = self.periods[0] if self.periods else None
        if not (self.is_bound and self.is_valid()):
            return newest, None
        period = self.cleaned_data.get("period")
        return (date.fromisoformat(period) if period else newest), self.cleaned_data.get("practitioner")


class GapFilterForm(MeasureFilterForm):
    measure = forms.ChoiceField(choices=[(m.slug, f"{m.id} {m.title}") for m in MEASURES.values()], required=False)

    def chosen_measure(self) -> Measure:
        slug = self.cleaned_data.get("measure") if self.is_bound and self.is_valid() else ""
        return next((m for m in MEASURES.values() if m.slug == slug), next(iter(MEASURES.values())))


def _period(end: date) -> Period:
    return Period(MeasurePeriod(end).start, end)


def _context(request: TenantRequest, form: forms.Form | None, filters: MeasureFilters | None, **extra: Any) -> Any:
    """As analytics.views.page_context, for this page's own form and filters."""
    tabs = [(name, label) for name, label, perm in TABS if request.user.has_perm(perm)]
    return {"form": form, "filters": filters, "tabs": tabs, "refreshed": last_refresh(), **extra}


def _today(request: TenantRequest) -> date:
    return timezone.localtime(timezone.now(), request.organization.zone).date()


def _rates(table: Any) -> dict[str, Any]:
    return {row["key"]: row["rates"][0] for row in table.display_rows()}


def _measure_charts(measure: Measure, ends: list[date], trend: Any, providers: Any) -> dict[str, Any]:
    """A measure's trend line and provider bars, from its (suppressed) tables."""
    trend_rates = _rates(trend)
    labels = [f"{end:%b %y}" for end in ends]  # short: 12 labels share the axis
    values = [rate[0] if (rate := trend_rates.get(end.isoformat())) else None for end in ends]
    trend_chart = line_chart(
        f"{measure.id}: rate over 12-month periods",
        trend_reading(f"{measure.id} rate", labels, values),
        labels,
        [("Rate", values)],
        slug=f"{measure.slug}-trend-chart",
    )
    items = [(row["label"], row["rates"][0][0] if row["rates"][0] else None) for row in providers.display_rows()]
    provider_chart = bar_chart(
        f"{measure.id} by provider",
        _spread(items[:-1], measure),
        items[:-1],
        top=1.0,
        slug=f"{measure.slug}-provider-chart",
    )
    return {"trend": trend, "providers": providers, "trend_chart": trend_chart, "provider_chart": provider_chart}


def _spread(items: list[tuple[str, float | None]], measure: Measure) -> str:
    from analytics.stats import percent

    shown = [(label, v) for label, v in items if v is not None]
    if len(shown) < 2:
        return "Too few providers with enough patients to compare."
    low, high = min(shown, key=lambda i: i[1]), max(shown, key=lambda i: i[1])
    better = " (lower is better)" if measure.inverse else ""
    return f"Rates range from {percent(low[1])} ({low[0]}) to {percent(high[1])} ({high[0]}){better}."


@staff_view(access=PHI_FREE, perm=AGGREGATES)
def measures_view(request: TenantRequest) -> HttpResponse:
    periods = measure_periods(_today(request))
    form = MeasureFilterForm(request.GET if {"period", "practitioner"} & set(request.GET) else None, periods=periods)
    period_end, practitioner = form.chosen()
    filters = MeasureFilters(_period(period_end), practitioner) if period_end else None
    sections: list[dict[str, Any]] = []
    tables: dict[str, Any] = {}
    tiles: list[dict[str, Any]] = []
    if period_end is not None:
        clinic = measure_clinic_table(period_end, practitioner.pk if practitioner else None)
        tables["clinic"] = clinic
        current = _rates(clinic)
        older = [end for end in periods if end < period_end]
        previous = _rates(measure_clinic_table(older[0], practitioner.pk if practitioner else None)) if older else {}
        ends = sorted([end for end in periods if end <= period_end][:12])
        trends = measure_trend_tables(ends, practitioner.pk if practitioner else None)
        providers = measure_provider_tables(period_end)
        for measure in MEASURES.values():
            charts = _measure_charts(measure, ends, trends[measure.id], providers[measure.id])
            tables[f"{measure.slug}-trend"] = charts["trend"]
            tables[f"{measure.slug}-providers"] = charts["providers"]
            tables[charts["trend_chart"].slug] = charts["trend_chart"]
            tables[charts["provider_chart"].slug] = charts["provider_chart"]
            tiles.append(
                {
                    "measure": measure,
                    "rate": current.get(measure.id),
                    "previous": previous.get(measure.id),
                    "previous_end": older[0] if older else None,
                }
            )
            sections.append({"measure": measure, **charts})
    context = _context(
        request,
        form,
        filters,
        page_slug="quality-measures",
        period_end=period_end,
        tiles=tiles,
        sections=sections,
        clinic=tables.get("clinic"),
        can_drill=request.user.has_perm(WORKLISTS),
    )
    return export_or_page(request, tables, "analytics/measures.html", context)


@staff_view(access=PHI_FREE, perm=AGGREGATES)
def effectiveness_view(request: TenantRequest) -> HttpResponse:
    """Treatment effectiveness: mean change of the goal measure, care plan vs no plan (n < 11 hidden)."""
    rows = treatment_effectiveness()
    table = _effectiveness_table(rows)
    context = _context(request, None, None, page_slug="treatment-effectiveness", rows=rows, table=table)
    return export_or_page(request, {"effectiveness": table}, "analytics/effectiveness.html", context)


@dataclass
class EffectivenessTable:
    """The effectiveness figures as the page shows them, and as its CSV writes them."""

    headers: list[str]
    rows: list[list[Any]]

    def csv_rows(self) -> Iterator[list[Any]]:
        yield self.headers
        yield from self.rows


def _effectiveness_table(rows: list[Effectiveness]) -> EffectivenessTable:
    def mean(group: GroupChange) -> str:
        return "" if group.mean is None else f"{group.mean:+.1f}"

    def interval(group: GroupChange) -> str:
        return "" if group.low is None or group.high is None else f"{group.low:+.1f} to {group.high:+.1f}"

    headers = [
        "Condition",
        "Measure",
        "On a care plan: patients",
        "On a care plan: mean change",
        "On a care plan: 95% CI",
        "No plan: patients",
        "No plan: mean change",
        "No plan: 95% CI",
        "Difference (plan minus no plan)",
    ]
    body = [
        [
            r.condition.label,
            f"{r.goal.label} ({r.goal.unit})",
            r.plan.n_display,
            mean(r.plan),
            interval(r.plan),
            r.comparison.n_display,
            mean(r.comparison),
            interval(r.comparison),
            "" if r.difference is None else f"{r.difference:+.1f}",
        ]
        for r in rows
    ]
    return EffectivenessTable(headers, body)


@staff_view(access=AccessAction.LIST, perm=WORKLISTS)
def measure_gaps_view(request: TenantRequest) -> HttpResponse:
    """Patients not meeting a measure in a period (CMS122: in its numerator), for worklist roles."""
    periods = measure_periods(_today(request))
    form = GapFilterForm(request.GET or None, periods=periods)
    period_end, practitioner = form.chosen()
    measure = form.chosen_measure()
    ids = measure_gap_patient_ids(measure, period_end, practitioner.pk if practitioner else None) if period_end else []
    page = Paginator(Patient.objects.filter(pk__in=ids).order_by("pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    access_recorder(request).saw(page.object_list)
    context = {"form": form, "measure": measure, "period_end": period_end, "page": page, "count": len(ids)}
    return render(request, "analytics/measure_gaps.html", context)
