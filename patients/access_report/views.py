"""A patient's access report: who viewed or changed the record, when, what and why.

Who: compliance officers and administrators (`compliance.view_accesslog`); every other role 403,
another organization's patient 404. The page is itself access-logged (it shows whose record it
is); its CSV export is logged as an export. Printable: base.html's print stylesheet hides the
navigation and the page's controls.
"""

from __future__ import annotations

import csv

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from compliance.access import access_recorder, record_denied_ids
from compliance.decorators import staff_view
from compliance.forms import AccessLogFilterForm
from compliance.models import AccessAction
from healthcrm.http import TenantRequest
from patients.access_report.selectors import AccessReportRow, patient_access_report
from patients.models import Patient
from patients.selectors import get_patient_for_user

PERM = "compliance.view_accesslog"
PAGE_SIZE = 50


def get_report_patient(request: TenantRequest, pk: int) -> Patient:
    """The guarded fetch, in the order every view answers: another organization's patient is 404
    for every role (its existence is not confirmed), then a role without PERM gets 403 (logged as
    denied either way). PERM is not a patient permission, so there is no per-patient grant of it."""
    if request.user.has_perm(PERM):
        return get_patient_for_user(request, pk, perm=PERM)
    record_denied_ids(request, [(Patient._meta.label_lower, pk)])
    if not Patient.objects.filter(pk=pk).exists():
        raise Http404("No patient matches the given id.")
    raise PermissionDenied


@staff_view(access=AccessAction.VIEW)
def access_report_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_report_patient(request, pk)
    filters = AccessLogFilterForm(request.GET).values()  # dates that do not parse: no filter
    rows = patient_access_report(patient=patient, since=filters["since"] or None, until=filters["until"] or None)
    zone = timezone.get_current_timezone_name()
    if request.GET.get("format") == "csv":
        return _export(request, patient, rows, zone)
    context = {
        "patient": patient,
        "page": Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page")),
        "total": len(rows),
        "filters": filters,
        "zone": zone,
    }
    return render(request, "patients/access_report/report.html", context)


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


CSV_HEADER = ["When", "Name", "Username", "Role (at the time)", "What", "Page", "Reason"]


def _export(request: TenantRequest, patient: Patient, rows: list[AccessReportRow], zone: str) -> HttpResponse:
    """The report's rows (all pages, same filters) as CSV; the download is logged as an export."""
    access_recorder(request).action = AccessAction.EXPORT
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="access-report-{patient.pk}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow([f"When ({zone})", *CSV_HEADER[1:]])
    for row in rows:
        writer.writerow(
            [
                _cell(timezone.localtime(row.when).strftime("%Y-%m-%d %H:%M:%S")),
                _cell(row.full_name),
                _cell(row.username),
                _cell(row.role),
                _cell(row.what),
                _cell(row.page),
                _cell(row.reason),
            ]
        )
    return response
