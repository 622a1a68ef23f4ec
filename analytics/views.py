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

from analytics import adherence, reminders, satisfaction
from analytics import engagement as engagement_figures
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
    counts = adherence.adherence_counts(filters)
    current = adherence.summary(filters, counts=counts)
    previous = adherence.summary(filters, period=filters.comparison) if filters.comparison else None

    labels, values, grain = adherence.trend(filters, counts=counts)
    trend_chart = line_chart(
        f"No-show rate by {grain}",
        trend_reading("No-show rate", labels, values),
        labels,
        [("No-show rate", values)],
        slug="trend",
    )
    tables: dict[str, Any] = {key: adherence.outcome_table(filters, key, counts=counts) for key in adherence.DIMENSIONS}
    by_provider = tables["provider"]
    provider_items = [
        (row["label"], rate[0] if (rate := row["rates"][0]) else None)
        for row in by_provider.display_rows()
        if not row["is_total"]
    ]
    provider_chart = bar_chart(
        "No-show rate by provider", _spread_reading(provider_items), provider_items, slug="provider"
    )
    days, hours, grid, worst = adherence.heat(filters, counts=counts)
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
    tables["reasons"] = adherence.reason_table(filters, counts=counts)
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
def reminders_view(request: TenantRequest) -> HttpResponse:
    form, filters = period_filters(request)
    counts = reminders.reminder_counts(filters)
    exposure = reminders.by_exposure(filters, counts=counts)
    show = {row["key"]: row["rates"][0] for row in exposure.display_rows()}
    exposure_items = [(label, rate[0] if (rate := show.get(key)) else None) for key, label in exposure.rows]
    exposure_chart = bar_chart(
        "Show rate by reminder exposure", _exposure_reading(exposure_items), exposure_items, top=1.0, slug="exposure"
    )
    by_rule = reminders.funnel(filters, "rule")
    stages = reminders.funnel_stages(by_rule)
    scheduled = stages[0][1]
    funnel_chart = bar_chart(
        "Outreach funnel",
        _funnel_reading(stages),
        [(label, (value / scheduled) if value is not None and scheduled else None) for label, value in stages],
        top=1.0,
        slug="funnel",
    )
    confirmations = reminders.confirmation_by_rule(filters, counts=counts)
    tables: dict[str, Any] = {
        "exposure": exposure,
        "channel": reminders.by_channel(filters, counts=counts),
        "offset": reminders.by_offset(filters, counts=counts),
        "confirmation": confirmations,
        "funnel-rule": by_rule,
        "funnel-channel": reminders.funnel(filters, "channel"),
        "funnel-language": reminders.funnel(filters, "language"),
        "exposure-chart": exposure_chart,
        "funnel": funnel_chart,
    }
    context = page_context(
        request,
        form,
        filters,
        page_slug="reminders",
        charts=[exposure_chart, funnel_chart],
        tables=[
            (key, tables[key])
            for key in (
                "exposure",
                "channel",
                "offset",
                "confirmation",
                "funnel-rule",
                "funnel-channel",
                "funnel-language",
            )
        ],
    )
    return export_or_page(request, tables, "analytics/reminders.html", context)


def _exposure_reading(items: list[tuple[str, float | None]]) -> str:
    values = dict(items)
    none, confirmed = values.get("No reminder delivered"), values.get("Confirmed by reply or link")
    if none is None or confirmed is None:
        return "Too few visits in some groups to compare reminder exposure."
    return (
        f"Visits the patient confirmed were attended {percent(confirmed)} of the time, "
        f"against {percent(none)} with no reminder delivered."
    )


def _funnel_reading(stages: list[tuple[str, int | None]]) -> str:
    scheduled, delivered = stages[0][1], stages[2][1]
    if not scheduled or delivered is None:
        return "Too few messages in the period to show the funnel."
    return f"{percent(delivered / scheduled)} of the {scheduled} messages scheduled in the period reached the patient."


@staff_view(access=PHI_FREE, perm=AGGREGATES)
def satisfaction_view(request: TenantRequest) -> HttpResponse:
    """NPS, mean CSAT and response rate of the post-visit surveys; scores only, never comments."""
    form, filters = period_filters(request)
    current = satisfaction.summary(filters)
    previous = satisfaction.summary(filters, period=filters.comparison) if filters.comparison else None

    labels, promoters, detractors, scores = satisfaction.trend(filters)
    trend_chart = line_chart(
        "Promoters and detractors by month (share of answers)",
        _nps_reading(labels, scores),
        labels,
        [("Promoters", promoters), ("Detractors", detractors)],
        slug="trend",
    )
    tables: dict[str, Any] = {key: satisfaction.satisfaction_table(filters, key) for key in satisfaction.DIMENSIONS}
    by_provider = tables["provider"]
    rate_items = [
        (row["label"], rate[0] if (rate := row["response_rate"]) else None)
        for row in by_provider.display_rows()
        if not row["is_total"]
    ]
    rate_chart = bar_chart(
        "Survey response rate by provider", _response_reading(rate_items), rate_items, top=1.0, slug="response"
    )
    tables["trend"] = trend_chart
    tables["response"] = rate_chart
    context = page_context(
        request,
        form,
        filters,
        page_slug="satisfaction",
        current=current.display_rows()[0],
        previous=previous.display_rows()[0] if previous else None,
        csat_questions=satisfaction.CSAT_QUESTIONS,
        charts=[trend_chart, rate_chart],
        tables=[(key, tables[key]) for key in satisfaction.DIMENSIONS],
    )
    return export_or_page(request, tables, "analytics/satisfaction.html", context)


def _nps_reading(labels: list[str], scores: list[float | None]) -> str:
    shown = [(label, v) for label, v in zip(labels, scores, strict=True) if v is not None]
    if not shown:
        return "No month has enough answers to show."
    last_label, last = shown[-1]
    if len(shown) == 1:
        return f"The NPS was {last:+.0f} in {last_label}, the only month with enough answers to show."
    first_label, first = shown[0]
    verb = "held at" if round(first) == round(last) else "rose to" if last > first else "fell to"
    return f"The NPS {verb} {last:+.0f} in {last_label}, from {first:+.0f} in {first_label}."


def _response_reading(items: list[tuple[str, float | None]]) -> str:
    shown = [(label, v) for label, v in items if v is not None]
    if len(shown) < 2:
        return "Too few providers with enough surveys to compare."
    low, high = min(shown, key=lambda i: i[1]), max(shown, key=lambda i: i[1])
    return f"Response rates range from {percent(low[1])} ({low[0]}) to {percent(high[1])} ({high[0]})."


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


@staff_view(access=PHI_FREE, perm=AGGREGATES)
def engagement_view(request: TenantRequest) -> HttpResponse:
    """Education reach (sent, opened; by content, condition and language) and questionnaire
    completion, through engagement's selectors; counts only, small cells suppressed."""
    form, filters = period_filters(request)
    start, end = engagement_figures.period_bounds(filters.period.start, filters.period.end, request.organization.zone)
    reach = engagement_figures.reach_rows(start, end)
    tables: dict[str, Any] = {key: engagement_figures.reach_table(reach, key) for key in engagement_figures.DIMENSIONS}
    completion = engagement_figures.completion_rows(start, end)
    tables["completion"] = engagement_figures.completion_table(completion)
    context = page_context(
        request,
        form,
        filters,
        page_slug="engagement",
        sent=sum(r.sent for r in reach),
        tables=list(tables.items()),
        has_questionnaires=any(r.answerable and r.sent for r in completion),
    )
    return export_or_page(request, tables, "analytics/engagement.html", context)
