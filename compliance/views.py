from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from compliance.access import access_recorder
from compliance.decorators import PHI_FREE, staff_view
from compliance.forms import (
    AccessLogFilterForm,
    AccessLogPatientForm,
    AnomalyFilterForm,
    AnomalyReviewForm,
    AuditSearchFilterForm,
    WeekForm,
)
from compliance.guards import get_object_for_user
from compliance.models import AccessAction, AccessLog, AnomalyAlert
from compliance.selectors import (
    access_log_list,
    anomaly_alert_list,
    anomaly_weekly_summary,
    audit_event_list,
    security_event_list,
)
from compliance.services import anomaly_alert_review
from healthcrm.http import TenantRequest, render_partial_or_page


def _patients(**lookup: Any) -> list[Any]:
    """Patients by id or by search entry, through the patients app (settings.ACCESS_LOG_PATIENTS)."""
    find: Callable[..., list[Any]] = import_string(settings.ACCESS_LOG_PATIENTS)
    return find(**lookup)


def _entries(filters: dict[str, Any]) -> Any:
    return access_log_list(
        action=filters["action"],
        actor_label=filters["actor"],
        object_id=filters["object"],
        patient_id=filters["patient"] or None,
        since=filters["since"] or None,
        until=filters["until"] or None,
    )


# Shows who looked at which record id. It shows a patient (MRN and name) only when filtering by
# one, and logs that; the search for one is POSTed (terms never in the URL) and logged as a search.
@staff_view(access=AccessAction.VIEW, perm="compliance.view_accesslog")
def access_log_view(request: TenantRequest) -> HttpResponse:
    filters = AccessLogFilterForm(request.GET).values()
    recorder = access_recorder(request)
    patient_form = AccessLogPatientForm(request.POST or None)
    matches: list[Any] = []
    if request.method == "POST" and patient_form.is_valid():
        query = patient_form.cleaned_data["patient_query"]
        recorder.searched(patient=query)
        matches = _patients(query=query)
        recorder.saw(matches)
        if len(matches) == 1:  # its id (not the terms) in the URL, so pages and the export keep it
            params = {k: v for k, v in request.GET.items() if k not in ("page", "patient", "format")}
            return redirect(f"{reverse('compliance:access_log')}?{urlencode({**params, 'patient': matches[0].pk})}")
        if not matches:
            patient_form.add_error("patient_query", "No patient matches; try the MRN, or at least 3 letters of a name.")
    patient = None
    if filters["patient"]:
        found = _patients(pk=filters["patient"])
        patient = found[0] if found else None
        recorder.saw(found)  # an id of another organization finds nothing: no filter shown
    entries = _entries(filters)
    if request.GET.get("format") == "csv":
        return _export(request, entries)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filter_form": AccessLogFilterForm(initial=filters),
        "filters": filters,
        "patient": patient,
        "patient_form": patient_form,
        "matches": matches if len(matches) > 1 else [],
        "zone": timezone.get_current_timezone_name(),
    }
    status = 400 if patient_form.errors else 200
    return render_partial_or_page(
        request, "compliance/access_log.html", "compliance/partials/access_log_table.html", context, status=status
    )


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _export(request: TenantRequest, entries: Any) -> HttpResponse:
    """The filtered access log as CSV (at most ACCESS_LOG_EXPORT_MAX_ROWS rows); the export is
    itself a row of the access log."""
    recorder = access_recorder(request)
    recorder.action = AccessAction.EXPORT
    recorder.searched(**{k: str(v) for k, v in request.GET.items() if k not in ("format", "page") and v})
    zone = timezone.get_current_timezone()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="access-log-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow([f"When ({zone})", "User", "Action", "Page", "Records", "Searched", "IP"])
    rows = entries.only(*_EXPORT_FIELDS)[: settings.ACCESS_LOG_EXPORT_MAX_ROWS]
    for entry in rows.iterator(chunk_size=2000):
        records = " ".join(entry.records) or f"{entry.object_type} {' '.join(entry.object_ids)}".strip()
        writer.writerow(
            [
                _cell(timezone.localtime(entry.created_at, zone).strftime("%Y-%m-%d %H:%M:%S")),
                _cell(entry.actor_label),
                _cell(entry.get_action_display()),
                _cell(entry.view_name),
                _cell(records),
                _cell(" ".join(entry.search_fields)),
                _cell(entry.ip_address),
            ]
        )
    return response


_EXPORT_FIELDS = [f.name for f in AccessLog._meta.concrete_fields if f.name not in ("search_fingerprint",)]


# Security settings and credential changes, secrets redacted; no patient data.
@staff_view(access=PHI_FREE, perm="compliance.view_accesslog")
def security_events_view(request: TenantRequest) -> HttpResponse:
    page = Paginator(security_event_list(), 50).get_page(request.GET.get("page"))
    return render(request, "compliance/security_events.html", {"page": page})


# -- Audit search: reads and writes together -------------------------------------------------------

_AUDIT_ACTIONS = {
    **dict(AccessAction.choices),
    "create": "Created a record",
    "update": "Updated a record",
    "delete": "Deleted a record",
    "access": "Accessed",
}


def _audit_rows(filters: dict[str, Any]) -> Any:
    return audit_event_list(
        source=filters["source"],
        action=filters["action"],
        actor_label=filters["actor"],
        patient_id=filters["patient"] or None,
        since=filters["since"] or None,
        until=filters["until"] or None,
        ip=filters["ip"],
    )


# Reads and writes by user, patient, action, dates and IP. Like the access log, it names a patient
# only when filtering by one (found by a POSTed search), and logs that.
@staff_view(access=AccessAction.VIEW, perm="compliance.view_accesslog")
def audit_search_view(request: TenantRequest) -> HttpResponse:
    filters = AuditSearchFilterForm(request.GET).values()
    recorder = access_recorder(request)
    patient_form = AccessLogPatientForm(request.POST or None)
    matches: list[Any] = []
    if request.method == "POST" and patient_form.is_valid():
        query = patient_form.cleaned_data["patient_query"]
        recorder.searched(patient=query)
        matches = _patients(query=query)
        recorder.saw(matches)
        if len(matches) == 1:
            params = {k: v for k, v in request.GET.items() if k not in ("page", "patient", "format")}
            return redirect(f"{reverse('compliance:audit_search')}?{urlencode({**params, 'patient': matches[0].pk})}")
        if not matches:
            patient_form.add_error("patient_query", "No patient matches; try the MRN, or at least 3 letters of a name.")
    patient = None
    if filters["patient"]:
        found = _patients(pk=filters["patient"])
        patient = found[0] if found else None
        recorder.saw(found)
    rows = _audit_rows(filters)
    if request.GET.get("format") == "csv":
        return _audit_export(request, rows)
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    for row in page.object_list:
        row["action_label"] = _AUDIT_ACTIONS.get(row["act"], row["act"])
    context = {
        "page": page,
        "filter_form": AuditSearchFilterForm(initial=filters),
        "filters": filters,
        "patient": patient,
        "patient_form": patient_form,
        "matches": matches if len(matches) > 1 else [],
        "zone": timezone.get_current_timezone_name(),
    }
    status = 400 if patient_form.errors else 200
    return render_partial_or_page(
        request, "compliance/audit_search.html", "compliance/partials/audit_table.html", context, status=status
    )


def _audit_export(request: TenantRequest, rows: Any) -> HttpResponse:
    """The filtered reads and writes as CSV (at most ACCESS_LOG_EXPORT_MAX_ROWS); logged as an export."""
    recorder = access_recorder(request)
    recorder.action = AccessAction.EXPORT
    recorder.searched(**{k: str(v) for k, v in request.GET.items() if k not in ("format", "page") and v})
    zone = timezone.get_current_timezone()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow([f"When ({zone})", "Source", "User", "Action", "Page or record", "Records or fields", "IP"])
    for row in rows[: settings.ACCESS_LOG_EXPORT_MAX_ROWS]:
        writer.writerow(
            [
                _cell(timezone.localtime(row["at"], zone).strftime("%Y-%m-%d %H:%M:%S")),
                _cell("read" if row["source"] == "access" else "write"),
                _cell(row["who"]),
                _cell(_AUDIT_ACTIONS.get(row["act"], row["act"])),
                _cell(row["what"]),
                _cell(row["detail"]),
                _cell(row["ip"]),
            ]
        )
    return response


# -- Anomaly alerts ----------------------------------------------------------------------------------

ALERTS_PAGE_SIZE = 25


# Rules, users (staff), days, counts and record ids: the review note (which may name a person) is
# shown only on the alert's own page, which is access-logged.
@staff_view(access=PHI_FREE, perm="compliance.view_anomalyalert")
def anomaly_alerts_view(request: TenantRequest) -> HttpResponse:
    filters = AnomalyFilterForm(request.GET).values()
    alerts = anomaly_alert_list(rule=filters["rule"], reviewed=filters["reviewed"]).defer("review_note")
    page = Paginator(alerts, ALERTS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "filters": filters, "filter_form": AnomalyFilterForm(initial=filters)}
    return render(request, "compliance/anomaly_alerts.html", context)


@staff_view(access=AccessAction.VIEW, perm="compliance.change_anomalyalert")
def anomaly_review_view(request: TenantRequest, pk: int) -> HttpResponse:
    alert = get_object_for_user(request, AnomalyAlert.objects.all(), pk, "compliance.change_anomalyalert")
    initial = {"outcome": alert.outcome, "review_note": alert.review_note} if alert.reviewed_at else None
    form = AnomalyReviewForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        anomaly_alert_review(
            alert=alert,
            reviewer=request.user,
            outcome=form.cleaned_data["outcome"],
            note=form.cleaned_data["review_note"],
        )
        return redirect("compliance:anomaly_alerts")
    evidence = sorted((str(k).replace("_", " "), _shown(v)) for k, v in (alert.evidence or {}).items())
    status = 400 if form.errors else 200
    return render(
        request, "compliance/anomaly_review.html", {"alert": alert, "form": form, "evidence": evidence}, status=status
    )


def _shown(value: Any) -> str:
    """An evidence value as text: lists joined, maps as "key: value" pairs."""
    if isinstance(value, dict):
        return ", ".join(f"#{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# Counts only.
@staff_view(access=PHI_FREE, perm="compliance.view_anomalyalert")
def anomaly_summary_view(request: TenantRequest) -> HttpResponse:
    form = WeekForm(request.GET)
    today = timezone.localdate()
    chosen = form.cleaned_data.get("week") if form.is_valid() else None
    day = chosen or today - timedelta(days=7)
    week_start = day - timedelta(days=day.weekday())
    summary = anomaly_weekly_summary(week_start=week_start)
    context = {
        "summary": summary,
        "previous": week_start - timedelta(days=7),
        "next": week_start + timedelta(days=7) if week_start + timedelta(days=7) <= today else None,
    }
    return render(request, "compliance/anomaly_summary.html", context)
