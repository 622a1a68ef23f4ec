"""Analytics pages: aggregates only (suppressed), each with charts, a reading, tables and CSV.

Every page here is PHI-free (`access=PHI_FREE`): counts and rates from the fact tables, small
cells hidden by analytics.suppression. Patient lists (worklists, drill-downs) are separate views
with their own permission and the access log.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from analytics import adherence
from analytics.charts import bar_chart, heatmap, line_chart, trend_reading
from analytics.export import csv_response, table_csv_rows
from analytics.filters import Filters, PeriodForm
from analytics.navigation import TABS
from analytics.refresh import last_refresh
from analytics.stats import percent
from compliance.decorators import PHI_FREE, staff_view
from healthcrm.http import TenantRequest

AGGREGATES = "analytics.view_aggregates"


def period_filters(request: TenantRequest) -> tuple[PeriodForm, Filters]:
    """The page's filter form (bound to the query string when it has any) and its filters."""
    today = timezone.localtime(timezone.now(), request.organization.zone).date()
    keys = {"start", "end", "compare", "practitioner", "location"}
    data = request.GET if keys & set(request.GET) else None
    form = PeriodForm(data, today=today)
    return form, form.filters()


def page_context(
    request: TenantRequest, form: PeriodForm | None, filters: Filters | None, **extra: Any
) -> dict[str, Any]:
    tabs = [(name, label) for name, label, perm in TABS if request.user.has_perm(perm)]
    return {"form": form, "filters": filters, "tabs": tabs, "refreshed": last_refresh(), **extra}


def export_or_page(
    request: TenantRequest, tables: dict[str, Any], template: str, context: dict[str, Any]
) -> HttpResponse:
    """`?export=<key>` answers the CSV of that table (the page's own cells), else the page."""
    wanted = request.GET.get("export")
    if wanted:
        if wanted not in tables:
            raise Http404("No such table.")
        return csv_response(table_csv_rows(tables[wanted]), f"{context['page_slug']}-{wanted}")
    return render(request, template, context)


@staff_view(access=PHI_FREE, perm=AGGREGATES)
def index(request: TenantRequest) -> HttpResponse:
    return redirect("analytics:adherence")


@staff_view(access=PHI_FREE, perm=AGGREGATES)
def adherence_view(request: TenantRequest) -> HttpResponse:
    form, filters = period_filters(request)
    current = adherence.summary(filters)
    previous = adherence.summary(filters, period=filters.comparison) if filters.comparison else None

    labels, values, grain = adherence.trend(filters)
    trend_chart = line_chart(
        f"No-show rate by {grain}",
        trend_reading("No-show rate", labels, values),
        labels,
        [("No-show rate", values)],
        slug="trend",
    )
    by_provider = adherence.outcome_table(filters, "provider")
    provider_items = [
        (row["label"], rate[0] if (rate := row["rates"][0]) else None)
        for row in by_provider.display_rows()
        if not row["is_total"]
    ]
    provider_chart = bar_chart(
        "No-show rate by provider", _spread_reading(provider_items), provider_items, slug="provider"
    )
    days, hours, grid, worst = adherence.heat(filters)
    heat_chart = heatmap(
        "No-show rate by weekday and hour",
        f"The worst slot is {worst[0][0]} at {percent(worst[0][1])}."
        if worst
        else "No slot has enough visits to show.",
        days,
        hours,
        grid,
        slug="heat",
    )
    tables = {key: adherence.outcome_table(filters, key) for key in adherence.DIMENSIONS}
    tables["reasons"] = adherence.reason_table(filters)
    tables["trend"] = trend_chart
    tables["heat"] = heat_chart
    context = page_context(
        request,
        form,
        filters,
        page_slug="attendance",
        current=current.display_rows()[0],
        previous=previous.display_rows()[0] if previous else None,
        columns=adherence.OUTCOME_COLUMNS,
        rates=adherence.RATES,
        charts=[trend_chart, provider_chart, heat_chart],
        worst=worst,
        tables=[(key, tables[key]) for key in [*adherence.DIMENSIONS, "reasons"]],
    )
    return export_or_page(request, tables, "analytics/adherence.html", context)


def _spread_reading(items: list[tuple[str, float | None]]) -> str:
    shown = [(label, v) for label, v in items if v is not None]
    if len(shown) < 2:
        return "Too few providers with enough visits to compare."
    low, high = min(shown, key=lambda i: i[1]), max(shown, key=lambda i: i[1])
    return f"No-show rates range from {percent(low[1])} ({low[0]}) to {percent(high[1])} ({high[0]})."


@staff_view(access=PHI_FREE, perm=AGGREGATES)
def risk_view(request: TenantRequest) -> HttpResponse:
    """The no-show model: too little history, or its hold-out figures (AUC, Brier, calibration) and
    coefficients. Model figures only: no visit, no patient."""
    from analytics import risk

    status = risk.risk_status()
    tables: dict[str, Any] = {}
    charts = []
    if status["state"] == "trained":
        calibration = risk.calibration_count_table(status["model"])
        observed = [row["rates"][0][0] if row["rates"][0] else None for row in calibration.display_rows()[:-1]]
        predicted = [row["mean_score"] for row in status["calibration"]]
        labels = [f"Band {row['band']}" for row in status["calibration"]]
        chart = line_chart(
            "Predicted and observed no-show rate by score band",
            _calibration_reading(predicted, observed),
            labels,
            [("Predicted (mean score)", predicted), ("Observed", observed)],
            slug="calibration-chart",
        )
        tables = {"calibration": calibration, "calibration-chart": chart}
        charts = [chart]
    context = page_context(
        request,
        None,
        None,
        page_slug="no-show-risk",
        status=status,
        charts=charts,
        tables=[(key, table) for key, table in tables.items() if key == "calibration"],
        coefficients=[(label, value, math.exp(value)) for label, value in status.get("coefficients", [])],
        high=settings.ANALYTICS_RISK_HIGH,
        elevated=settings.ANALYTICS_RISK_ELEVATED,
    )
    return export_or_page(request, tables, "analytics/risk.html", context)


def _calibration_reading(predicted: list[float], observed: list[float | None]) -> str:
    pairs = [(p, o) for p, o in zip(predicted, observed, strict=True) if o is not None]
    if not pairs:
        return "Every band has too few no-shows to show its observed rate."
    gap = max(abs(p - o) for p, o in pairs)
    return (
        f"Across the bands shown, predicted and observed rates differ by at most {percent(gap)}; "
        f"the highest band's visits were missed at {percent(pairs[-1][1])}."
    )
