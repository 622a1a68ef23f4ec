"""The care-gap pages: the worklist (patients: clinical roles, access-logged, CSV export), its two
actions (log a call, send the recall now), and the gap-closure rate (PHI-free aggregate).

Analysts have view_aggregates but not view_worklists: the worklist answers them 403, the closure
rate does not. The actions are plain POST + redirect back to the worklist (no script needed).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from analytics.charts import line_chart, trend_reading
from analytics.export import csv_response
from analytics.gap_forms import CallForm, ClosureForm, GapFilterForm
from analytics.gaps import gap_closure, patients_of, worklist, worklist_rows
from analytics.models import CareGap
from analytics.views import AGGREGATES, export_or_page, page_context
from compliance.access import access_recorder
from compliance.decorators import PHI_FREE, staff_view
from compliance.guards import get_object_for_user
from compliance.models import AccessAction
from engagement.models import CallOutcome
from engagement.recalls import RECALLS
from engagement.services import call_log_create, recall_send
from healthcrm.http import TenantRequest
from healthcrm.pagination import paginate_by_pk

WORKLISTS = "analytics.view_worklists"
PAGE_SIZE = 25
EXPORT_LIMIT = 5000

SEND_MESSAGES = {
    "queued": "Recall queued ({slot}); it goes in the patient's sending hours, within their message limits.",
    "already_sent": "A recall for this gap was already sent this period ({slot}): not sent again.",
    "no_rule": "No active recall rule for this gap: add one under Outreach rules to send recalls.",
    "unreachable": "This patient cannot be messaged (no consent or no address on file): call instead.",
}


def _can_log_calls(request: Any) -> None:
    if not (request.user.has_perm(WORKLISTS) and request.user.has_perm("engagement.add_calllog")):
        raise PermissionDenied


def get_gap_for_user(request: TenantRequest, pk: object, perm: str = WORKLISTS) -> CareGap:
    """The guarded fetch for gaps: 404 across organizations, 403 without `perm`; the gap and its
    patient are recorded on the access log."""
    gap = get_object_for_user(request, CareGap.objects.all(), pk, perm)
    access_recorder(request).saw([gap])
    return gap


def _tabs(request: TenantRequest) -> dict[str, Any]:
    return page_context(request, None, None)


@staff_view(access=AccessAction.LIST, perm=WORKLISTS)
def gap_worklist_view(request: TenantRequest) -> Any:
    filters = GapFilterForm(request.GET or None)
    page = paginate_by_pk(worklist(**filters.selection()), request.GET.get("page"), PAGE_SIZE)
    gaps = list(page.object_list)
    access_recorder(request).saw(gaps)  # each gap and its patient
    patients = patients_of(gaps)
    rows = [(row, patients.get(row.gap.patient_id)) for row in worklist_rows(gaps)]
    context = {
        **_tabs(request),
        "gap_filters": filters,
        "page": page,
        "rows": rows,
        "call_form": CallForm(),
        "outcomes": CallOutcome.choices,
        "can_log_calls": request.user.has_perm("engagement.add_calllog"),
        "here": request.get_full_path(),
    }
    return render(request, "analytics/gaps.html", context)


@staff_view(access=AccessAction.EXPORT, perm=WORKLISTS)
def gap_worklist_export_view(request: TenantRequest) -> Any:
    filters = GapFilterForm(request.GET or None)
    gaps = list(worklist(**filters.selection())[:EXPORT_LIMIT])
    access_recorder(request).saw(gaps)
    patients = patients_of(gaps)

    def lines() -> Any:
        yield ["Patient", "MRN", "Gap", "Open since", "Messages sent", "Calls", "Last call outcome"]
        for row in worklist_rows(gaps):
            patient = patients.get(row.gap.patient_id)
            last = row.calls[0].get_outcome_display() if row.calls else ""
            name = f"{patient.given_name} {patient.family_name}" if patient else ""
            mrn = patient.mrn if patient else ""
            yield [name, mrn, row.name, row.gap.opened_on.isoformat(), len(row.messages), len(row.calls), last]

    return csv_response(lines(), "care-gaps")


def _back(request: TenantRequest, wanted: str) -> Any:
    home = reverse("analytics:gaps")
    ok = url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}, require_https=False)
    return redirect(wanted if ok and wanted.startswith(home) else home)


@staff_view(access=AccessAction.VIEW, perm=_can_log_calls)
@require_POST
def gap_call_view(request: TenantRequest, pk: int) -> Any:
    gap = get_gap_for_user(request, pk)
    form = CallForm(request.POST)
    if form.is_valid():
        call_log_create(
            patient=gap.patient,
            recall_key=gap.recall_key,
            outcome=form.cleaned_data["outcome"],
            note=form.cleaned_data["note"],
            actor=request.user,
        )
        messages.success(request, "Call logged.")
    else:
        messages.error(request, "Choose the call's outcome (the note may be at most 2,000 characters).")
    return _back(request, request.POST.get("next", ""))


@staff_view(access=AccessAction.VIEW, perm=WORKLISTS)
@require_POST
def gap_recall_view(request: TenantRequest, pk: int) -> Any:
    gap = get_gap_for_user(request, pk)
    if gap.closed_on is not None:
        messages.warning(request, "This gap is closed: no recall sent.")
        return _back(request, request.POST.get("next", ""))
    result = recall_send(patient=gap.patient, recall_key=gap.recall_key, actor=request.user)
    level = messages.success if result.outcome == "queued" else messages.warning
    level(request, SEND_MESSAGES[result.outcome].format(slot=result.slot))
    return _back(request, request.POST.get("next", ""))


@staff_view(access=PHI_FREE, perm=AGGREGATES)
def gap_closure_view(request: TenantRequest) -> Any:
    today = timezone.localtime(timezone.now(), request.organization.zone).date()
    data = request.GET if {"start", "end", "kind", "within"} & set(request.GET) else None
    form = ClosureForm(data, today=today)
    filters = form.filters()
    kind, within = form.chosen()
    result = gap_closure(
        start=filters.period.start, end=filters.period.end, within_days=within, recall_key=kind, today=today
    )
    table = result.table
    shown = [row for row in table.display_rows() if not row["is_total"]]
    labels = [row["label"] for row in shown]
    values = [rate[0] if (rate := row["rates"][0]) else None for row in shown]
    what = f"Gaps closed within {within} days"
    chart = line_chart(
        f"{what}, by month opened",
        trend_reading(what, labels, values),
        labels,
        [("Closure rate", values)],
        slug="closure",
    )
    maturing = [label for row, label in zip(shown, labels, strict=True) if row["key"] in result.maturing]
    if maturing:
        chart.notes.append(f"Gaps opened in {', '.join(maturing)} have not all had {within} days yet.")
    context = page_context(
        request,
        form,
        filters,
        page_slug="gap-closure",
        charts=[chart],
        tables=[("closure", table)],
        kind_name=RECALLS[kind].name if kind else "",
        maturing=maturing,
        within=within,
    )
    return export_or_page(request, {"closure": table, "closure-chart": chart}, "analytics/gap_closure.html", context)
