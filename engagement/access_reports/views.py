"""The access report for the patient: staff send the link; the patient opens it, asks for a code,
types it, and sees the report.

The patient's pages need no sign-in: the signed link and the one-time code are the credential,
and the code opens the report in that browser (its session) for VERIFIED_FOR. A tampered,
unknown or expired link, and a wrong code, show a polite page and nothing of the record; a wrong
code writes only the attempt counters. The report itself is access-logged as a view of the
patient by the patient (`services.patient_report_viewed`); these views are `@phi_free` for the
staff access log (no staff user is reading), like engagement's other patient links.
"""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.contrib import messages
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from compliance.access import phi_free
from compliance.decorators import staff_view
from compliance.models import AccessAction
from engagement.access_reports import services, tokens
from engagement.models import AccessReportRequest, AccessReportRequestSource, MessageChannel
from healthcrm.http import TenantRequest
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from patients.access_report.selectors import patient_access_report
from patients.access_report.views import get_report_patient

SESSION_KEY = "access_report_verified"
TEMPLATE = "engagement/access_reports/link.html"


@staff_view(access=AccessAction.VIEW)
@require_POST
def access_report_request_view(request: TenantRequest, patient_pk: int) -> HttpResponse:
    """Compliance officers and administrators send the patient the link (on the channel chosen,
    else the patient's preferred reachable one), from the staff access report's page."""
    patient = get_report_patient(request, patient_pk)
    channel = request.POST.get("channel") or None
    if channel not in (None, *MessageChannel.values):
        channel = None
    source = request.POST.get("source")
    source = source if source in AccessReportRequestSource.values else AccessReportRequestSource.STAFF
    try:
        services.access_report_request_create(
            patient=patient, channel=channel, actor=request.user, source=source, now=timezone.now()
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "The link to the access report is on its way to the patient.")
    return redirect("patients:access_report", pk=patient.pk)


def _polite(request: HttpRequest, state: str, clinic: str = "", status: int = 410) -> HttpResponse:
    return render(request, TEMPLATE, {"state": state, "clinic": clinic}, status=status)


def _open(request: HttpRequest, token: str, now: datetime) -> tuple[Organization, tokens.ReportClaims] | HttpResponse:
    """The organization and claims of a valid link, or the polite page (nothing read or written)."""
    try:
        claims = tokens.read_token(token, now=now)
    except signing.SignatureExpired:
        return _polite(request, "expired")
    except signing.BadSignature:
        return _polite(request, "invalid", status=404)
    organization = Organization.objects.filter(pk=claims.organization_id, is_active=True).first()
    if organization is None:
        return _polite(request, "invalid", status=404)
    return organization, claims


def _verified(request: HttpRequest, access: AccessReportRequest, now: datetime) -> bool:
    stamp = request.session.get(SESSION_KEY, {}).get(str(access.pk)) if hasattr(request, "session") else None
    if not stamp or access.verified_at is None:
        return False
    try:
        verified_at = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return False
    return verified_at == access.verified_at and now - verified_at < services.VERIFIED_FOR


@phi_free  # shows no record: a code form; the code goes to the contact on file
def access_report_link_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET: the code page (sends nothing: link previewers fetch GETs). POST `send` sends a code to
    the chosen contact on file; POST `verify` checks one and opens the report."""
    now = timezone.now()
    opened = _open(request, token, now)
    if isinstance(opened, HttpResponse):
        return opened
    organization, claims = opened
    with organization_context(organization):
        access = services.request_for_token(claims)
        if access is None:
            return _polite(request, "invalid", status=404)
        if now >= access.link_expires_at:
            return _polite(request, "expired", organization.name)
        if services.is_locked(access):
            return _polite(request, "locked", organization.name)
        if request.method == "GET" and _verified(request, access, now):
            return redirect("engagement:access_report_patient", token=token)
        notice, error, status = "", "", 200
        if request.method == "POST" and request.POST.get("action") == "send":
            try:
                services.code_send(request=access, channel=request.POST.get("channel", ""), now=now)
            except ValidationError as exc:
                error, status = " ".join(exc.messages), 400
            else:
                notice = "We sent you a code. It works for 10 minutes."
        elif request.method == "POST" and request.POST.get("action") == "verify":
            check = services.code_verify(request=access, code=request.POST.get("code", ""), now=now)
            if check.ok:
                verified = dict(request.session.get(SESSION_KEY, {}))
                verified[str(access.pk)] = access.verified_at.isoformat() if access.verified_at else ""
                request.session[SESSION_KEY] = verified
                return redirect("engagement:access_report_patient", token=token)
            error, status = check.message, 400
            if services.is_locked(access):
                return _polite(request, "locked", organization.name, status=400)
        channels = services.channels_on_file(access.patient)
        context = {
            "state": "ask",
            "clinic": organization.name,
            "channels": [(c, "A text message to the mobile phone" if c == "sms" else "An email") for c in channels],
            "code_active": services.code_active(access, now),
            "notice": notice,
            "error": error,
        }
        return render(request, TEMPLATE, context, status=status)


@phi_free  # the patient's own report; logged by the service as the patient's view of their record
def access_report_patient_view(request: HttpRequest, token: str) -> HttpResponse:
    """The report, for a browser that typed the right code within VERIFIED_FOR: the staff report's
    rows (who by name and role, when, what, why), no page names, nothing of any other patient."""
    now = timezone.now()
    opened = _open(request, token, now)
    if isinstance(opened, HttpResponse):
        return opened
    organization, claims = opened
    with organization_context(organization):
        access = services.request_for_token(claims)
        if access is None:
            return _polite(request, "invalid", status=404)
        if now >= access.link_expires_at:
            return _polite(request, "expired", organization.name)
        if not _verified(request, access, now):
            return redirect("engagement:access_report_link", token=token)
        ip = getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR")
        services.patient_report_viewed(request=access, now=now, ip_address=ip)
        rows = patient_access_report(patient=access.patient)
        context = {
            "clinic": organization.name,
            "patient": access.patient,
            "rows": rows,
            "zone": organization.timezone,
            "generated_at": now,
        }
        with timezone.override(organization.zone):  # no staff session: the clinic's zone, said in the header
            return render(request, "engagement/access_reports/report.html", context)


class AccessReportAskForm(forms.Form):
    date_of_birth = forms.DateField(label="Your date of birth", widget=forms.DateInput(attrs={"type": "date"}))
    contact = forms.CharField(label="Your mobile number or email, as the clinic has it", max_length=254, strip=True)


@phi_free  # shows nothing of any record, and the same page whether or not the details match
def access_report_ask_view(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """The patient's own request: birth date and the mobile number or email on file. A match gets
    the link at that contact; the answer is the same for a match and for no match."""
    organization = Organization.objects.filter(slug=organization_slug, is_active=True).first()
    if organization is None:
        return _polite(request, "invalid", status=404)
    form = AccessReportAskForm(request.POST if request.method == "POST" else None)
    sent = False
    if form.is_bound and form.is_valid():
        with organization_context(organization):
            services.patient_request_submit(
                date_of_birth=form.cleaned_data["date_of_birth"],
                contact=form.cleaned_data["contact"],
                now=timezone.now(),
            )
        sent = True
    context = {"clinic": organization.name, "form": form, "sent": sent}
    return render(request, "engagement/access_reports/ask.html", context, status=400 if form.errors else 200)
