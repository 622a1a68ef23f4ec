"""The staff-facing shell: dashboard, second factor at sign-in, organization switch, health probe."""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.image.svg
import redis
from django.conf import settings
from django.contrib import messages
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
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance.access import phi_free
from compliance.decorators import PHI_FREE, staff_view
from healthcrm.celery import app as celery_app
from healthcrm.http import TenantRequest
from healthcrm.tenancy import SESSION_KEY
from patients.models import Patient
from staff.forms import TOTPForm


def _check_token(device: TOTPDevice, token: str) -> str | None:
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


@staff_view(access=PHI_FREE)
def dashboard(request: TenantRequest) -> HttpResponse:
    can_see_patients = request.user.has_perm("patients.view_patient")
    context = {
        "patient_count": Patient.objects.filter(is_active=True).count() if can_see_patients else None,
        "can_see_patients": can_see_patients,
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
    if wanted in allowed or (wanted and request.user.is_superuser):
        request.session[SESSION_KEY] = wanted
        # Permissions are per organization: the cached set belongs to the old one.
        request.user.__dict__.pop("_healthcrm_role_perms", None)
        return redirect("dashboard")
    messages.error(request, "You are not a member of that organization.")
    return redirect("dashboard")


@phi_free
@never_cache
@login_required
def mfa_verify(request: HttpRequest) -> HttpResponse:
    """Confirm the second factor; users without a device set one up first."""
    device = TOTPDevice.objects.filter(user=request.user, confirmed=True).first()
    if device is None:
        return redirect(f"{reverse('mfa_setup')}?next={_safe_next(request, reverse('dashboard'))}")
    form = TOTPForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        problem = _check_token(device, form.cleaned_data["token"])
        if problem is None:
            otp_login(request, device)
            return redirect(_safe_next(request, reverse("dashboard")))
        form.add_error("token", problem)
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
    """Register a TOTP authenticator: scan the QR code, confirm with a code."""
    if TOTPDevice.objects.filter(user=request.user, confirmed=True).exists():
        return redirect("mfa_verify")
    device = TOTPDevice.objects.filter(user=request.user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=request.user, name="Authenticator", confirmed=False)
    form = TOTPForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        problem = _check_token(device, form.cleaned_data["token"])
        if problem is None:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            messages.success(request, "Two-factor authentication is set up.")
            return redirect(_safe_next(request, reverse("dashboard")))
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
