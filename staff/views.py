"""The staff-facing shell: dashboard, second factor at sign-in, organization switch, health probe."""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.image.svg
import redis
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_otp import login as otp_login
from django_otp.models import Device

from compliance.access import access_recorder, phi_free
from compliance.audit import platform_admin_entered
from compliance.decorators import PHI_FREE, staff_view
from compliance.models import AccessAction
from healthcrm.celery import app as celery_app
from healthcrm.http import TenantRequest, public_base_url
from healthcrm.models import Organization
from healthcrm.tenancy import SESSION_KEY
from patients.models import Patient
from staff.dashboard import dashboard_for
from staff.forms import ReauthForm, SecondFactorForm, TOTPForm
from staff.models import AuthenticatorDevice, MFAEnrolment, RecoveryCodes
from staff.reauth import has_recent_auth, mark_recent_auth, reauth_redirect
from staff.services import (
    authenticator_confirm,
    authenticator_pending,
    enrolment_link_issue,
    enrolment_link_redeem,
    has_confirmed_device,
    recovery_code_used,
)


def _check_token(device: Device, token: str) -> str | None:
    """None when the code is right, else what to tell the user (wrong, or too soon after a wrong one)."""
    allowed, data = device.verify_is_allowed()
    if not allowed and data and data.get("locked_until"):
        seconds = max(1, int((data["locked_until"] - timezone.now()).total_seconds() + 0.999))
        return f"Too many wrong codes: wait {seconds} second{'s' if seconds != 1 else ''}, then try again."
    if device.verify_token(token):
        return None
    return "That code is not valid. Check your authenticator app's clock and try again."


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


@staff_view(access=AccessAction.VIEW)
def dashboard(request: TenantRequest) -> HttpResponse:
    """The role's panels (staff/dashboard.py). Access-logged when a panel names patients (their
    records); a dashboard of counts and rates only writes no access-log row."""
    can_see_patients = request.user.has_perm("patients.view_patient")
    board = dashboard_for(request)
    access_recorder(request).saw(board.patients_shown)
    context = {
        "patient_count": Patient.objects.filter(is_active=True).count() if can_see_patients else None,
        "can_see_patients": can_see_patients,
        "panels": board.panels,
    }
    return render(request, "staff/dashboard.html", context)


@staff_view(access=PHI_FREE, organization=False)
@require_POST
def organization_switch(request: TenantRequest) -> HttpResponse:
    try:
        wanted = int(request.POST.get("organization", ""))
    except ValueError:
        wanted = None
    allowed = {m.organization_id for m in request.memberships}
    if wanted not in allowed and wanted and request.user.is_superuser:
        # A platform administrator entering a clinic it is no member of: the same audited entry as
        # the admin's "organization to work in" page.
        entered = Organization.objects.filter(pk=wanted, is_active=True).first()
        if entered is not None:
            platform_admin_entered(request, entered)
            allowed.add(entered.pk)
    if wanted in allowed:
        request.session[SESSION_KEY] = wanted
        # Permissions are per organization: the cached set belongs to the old one.
        request.user.__dict__.pop("_healthcrm_role_perms", None)
        return redirect("dashboard")
    messages.error(request, "You are not a member of that organization.")
    return redirect("dashboard")


# The session holds the enrolment link the user opened (its id), for the set-up page that follows.
_ENROLMENT_SESSION_KEY = "healthcrm_mfa_enrolment"


def _enrolment_open(request: HttpRequest) -> bool:
    """Whether this session redeemed an enrolment link of its user that has not expired."""
    pk = request.session.get(_ENROLMENT_SESSION_KEY)
    return (
        pk is not None
        and MFAEnrolment.objects.filter(
            pk=pk, user_id=int(request.user.pk or 0), expires_at__gt=timezone.now()
        ).exists()
    )


@phi_free
@never_cache
@login_required
def mfa_verify(request: HttpRequest) -> HttpResponse:
    """Confirm the second factor (authenticator code or a recovery code); users without a device
    set one up first."""
    device = AuthenticatorDevice.objects.filter(user=request.user, confirmed=True).first()
    if device is None:
        return redirect(f"{reverse('mfa_setup')}?next={_safe_next(request, reverse('dashboard'))}")
    form = SecondFactorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if form.is_recovery_code:
            codes = RecoveryCodes.objects.filter(user=request.user, confirmed=True).first()
            problem = _check_token(codes, form.cleaned_data["token"]) if codes is not None else "not valid"
            if problem is not None and not problem.startswith("Too many"):
                problem = "That recovery code is not valid (each works once)."
            if problem is None and codes is not None:
                otp_login(request, codes)
                mark_recent_auth(request)
                recovery_code_used(device=codes)
                messages.warning(request, "You signed in with a recovery code. Set up your authenticator again soon.")
                return redirect(_safe_next(request, reverse("dashboard")))
        else:
            problem = _check_token(device, form.cleaned_data["token"])
            if problem is None:
                otp_login(request, device)
                mark_recent_auth(request)
                return redirect(_safe_next(request, reverse("dashboard")))
        form.add_error("token", problem or "That code is not valid.")
    return render(
        request,
        "staff/mfa_verify.html",
        {"form": form, "next": _safe_next(request, "")},
        status=400 if form.errors else 200,
    )


@phi_free
@never_cache
@login_required
def mfa_setup(request: HttpRequest) -> HttpResponse:
    """Register a TOTP authenticator: scan the QR code, confirm with a code. Only after opening an
    enrolment link (emailed, or issued by an administrator): a password alone shows no secret."""
    if not _enrolment_open(request):
        if has_confirmed_device(request.user):
            return redirect("mfa_verify")
        return render(request, "staff/mfa_enrolment_needed.html", {"next": _safe_next(request, "")})
    if has_confirmed_device(request.user) and not has_recent_auth(request):
        # Replacing an authenticator: the link proved the mailbox; both factors prove the person.
        return reauth_redirect(request)
    device = authenticator_pending(request.user)
    form = TOTPForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        problem = _check_token(device, form.cleaned_data["token"])
        if problem is None:
            enrolled = authenticator_confirm(device=device)
            request.session.pop(_ENROLMENT_SESSION_KEY, None)
            otp_login(request, enrolled.device)
            # Shown once: only their keyed hashes are stored.
            return render(
                request,
                "staff/mfa_recovery_codes.html",
                {"codes": enrolled.recovery_codes, "next": _safe_next(request, reverse("dashboard"))},
            )
        form.add_error("token", problem)
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    buffer = io.BytesIO()
    image.save(buffer)
    qr_data_uri = "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()
    secret = base64.b32encode(device.bin_key).decode()
    return render(
        request,
        "staff/mfa_setup.html",
        {"form": form, "qr_data_uri": qr_data_uri, "secret": secret, "next": _safe_next(request, "")},
        status=400 if form.errors else 200,
    )


@phi_free
@never_cache
@login_required
def reauthenticate(request: HttpRequest) -> HttpResponse:
    """Prove both factors again (password, then authenticator or recovery code) before changing
    the password or the authenticator (staff/reauth.py). Wrong passwords count toward the
    account's lockout like sign-in failures (django-axes)."""
    device = AuthenticatorDevice.objects.filter(user=request.user, confirmed=True).first()
    form = ReauthForm(request.POST or None)
    if device is None:
        form.fields.pop("token")  # no second factor to prove yet (an organization without MFA)
    if request.method == "POST" and form.is_valid():
        user = authenticate(request, username=request.user.get_username(), password=form.cleaned_data["password"])
        if user is None or user.pk != request.user.pk:
            form.add_error("password", "That password is not right.")
        elif device is not None:
            token = form.cleaned_data["token"]
            if form.is_recovery_code:
                codes = RecoveryCodes.objects.filter(user=request.user, confirmed=True).first()
                problem = _check_token(codes, token) if codes is not None else "not valid"
                if problem is None and codes is not None:
                    otp_login(request, codes)
                    recovery_code_used(device=codes)
            else:
                problem = _check_token(device, token)
                if problem is None:
                    otp_login(request, device)  # both factors: the session is verified too
            if problem is not None:
                form.add_error("token", problem if problem.startswith(("Too many", "That code")) else "Not valid.")
        if not form.errors:
            mark_recent_auth(request)
            return redirect(_safe_next(request, reverse("dashboard")))
    return render(
        request,
        "staff/reauthenticate.html",
        {"form": form, "next": _safe_next(request, "")},
        status=400 if form.errors else 200,
    )


@phi_free
@never_cache
@login_required
@require_POST
def mfa_enrolment_send(request: HttpRequest) -> HttpResponse:
    """Email the signed-in user a fresh one-time enrolment link."""
    enrolment_link_issue(user=request.user, base_url=public_base_url(request))
    messages.info(request, "We sent an enrolment link to your email address. Open it to set up your authenticator.")
    return redirect(f"{reverse('mfa_setup')}?next={_safe_next(request, reverse('dashboard'))}")


@phi_free
@never_cache
@login_required
def mfa_enrol(request: HttpRequest, token: str) -> HttpResponse:
    """An enrolment link: used up here (once), then the set-up page shows the secret."""
    enrolment = enrolment_link_redeem(user=request.user, token=token)
    if enrolment is None:
        return render(request, "staff/mfa_enrolment_needed.html", {"invalid_link": True, "next": ""}, status=400)
    request.session[_ENROLMENT_SESSION_KEY] = enrolment.pk
    return redirect("mfa_setup")


@phi_free
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and worker status, for load balancers and operators."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {type(exc).__name__}"
    if checks["redis"] == "ok":
        try:
            replies = celery_app.control.ping(timeout=0.5)
            checks["worker"] = f"ok ({len(replies)})" if replies else "none responding"
        except Exception as exc:  # noqa: BLE001
            checks["worker"] = f"error: {type(exc).__name__}"
    else:
        checks["worker"] = "unknown (no broker)"
    healthy = checks["database"] == "ok" and checks["redis"] == "ok"
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)
