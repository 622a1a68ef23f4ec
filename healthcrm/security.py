"""Session lifetime, client IP and second-factor enforcement."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from auditlog.middleware import AuditlogMiddleware as _AuditlogMiddleware
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme

_LAST_SEEN = "healthcrm_last_seen"
_SIGNED_IN_AT = "healthcrm_signed_in_at"


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or the right-most untrusted X-Forwarded-For hop when the peer is a trusted proxy.

    X-Forwarded-For is whatever the client sent plus what each proxy appended; only the part our
    own proxies appended can be believed.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    trusted = set(settings.TRUSTED_PROXIES)
    if remote is None or remote not in trusted:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop in trusted:
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return remote
    return remote


def safe_next_url(request: HttpRequest, fallback: str) -> str:
    """The request's `next` (POST, then GET) when it points into this site, else `fallback`.

    Every redirect to a `next` goes through here: an absolute URL to another host, a
    scheme-relative `//evil.example` or a `javascript:` URL is an open redirect. Only a path or an
    http(s) URL is followed: `redirect()` takes a bare word as a view name (a 500 when none).
    """
    target = request.POST.get("next") or request.GET.get("next") or ""
    if not target.startswith(("/", "http://", "https://")):
        return fallback
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


class ClientIPMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.client_ip = client_ip(request)  # type: ignore[attr-defined]
        return self.get_response(request)


class NoStoreMiddleware:
    """`Cache-Control: no-store` (and Django's other never-cache headers) on every page we render.

    Pages show PHI to signed-in staff and to patients opening their links: no browser cache, shared
    computer's history or proxy may keep a copy. Static files (served by WhiteNoise before this, or
    under STATIC_URL) stay cacheable; they hold none.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(self.static_prefix):
            add_never_cache_headers(response)
        return response


class SessionTimeoutMiddleware:
    """Sign out after SESSION_IDLE_TIMEOUT seconds without a request, and SESSION_COOKIE_AGE after sign-in.

    Both are enforced on the server; the session's own expiry date moves with every save, so it
    cannot be the absolute limit. The last-seen time is saved at most every 30 s, to spare a
    session write on every request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            session = request.session
            last_seen = session.get(_LAST_SEEN)
            signed_in_at = session.setdefault(_SIGNED_IN_AT, now)
            if last_seen is not None and now - int(last_seen) > settings.SESSION_IDLE_TIMEOUT:
                return self._sign_out(request, "You were signed out after a period of inactivity.")
            if now - int(signed_in_at) > settings.SESSION_COOKIE_AGE:
                return self._sign_out(request, "Your session has ended. Please sign in again.")
            if last_seen is None or now - int(last_seen) >= 30:
                session[_LAST_SEEN] = now
            # The session index (healthcrm.sessions): at most one write a minute.
            from healthcrm.sessions import user_session_touch

            user_session_touch(request, now)
        return self.get_response(request)

    @staticmethod
    def _sign_out(request: HttpRequest, message: str) -> HttpResponse:
        return sign_out(request, message)


def sign_out(request: HttpRequest, message: str) -> HttpResponse:
    """End the request's session now (its key is deleted from the session store) and send the
    browser to the sign-in page, telling the user why."""
    logout(request)
    messages.info(request, message)
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("login")
        return response
    # The path only: a query string may hold search terms.
    return redirect_to_login(request.path)


@receiver(user_logged_in)
def _stamp_sign_in(sender: object, request: HttpRequest | None, user: object, **kwargs: object) -> None:
    if request is not None and hasattr(request, "session"):
        now = int(time.time())
        request.session[_SIGNED_IN_AT] = now
        request.session[_LAST_SEEN] = now


# Paths a signed-in user may reach before confirming the second factor: signing in and out, the
# second factor itself (verify, set-up, enrolment links), a staff invitation, the reset-by-email
# flow, static files and the probe. Not the password change: a stolen password must not be enough
# to replace itself.
_MFA_EXEMPT_PREFIXES = (
    "/accounts/login/",
    "/accounts/logout/",
    "/accounts/mfa/",
    "/accounts/invitation/",
    "/accounts/password_reset/",
    "/accounts/reset/",
    "/static/",
    "/healthz",
    "/organization/switch",
)


def mfa_required_for(user: object, organization: object | None) -> bool:
    """Platform staff and superusers always need the second factor (Django admin included,
    organization or not); everyone else when the current organization requires it."""
    if getattr(user, "is_superuser", False) or getattr(user, "is_staff", False):
        return True
    return organization is not None and bool(getattr(organization, "require_mfa", False))


class MFARequiredMiddleware:
    """Require a verified second factor from staff and superusers everywhere, and from everyone in
    an organization that requires it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and not user.is_verified()  # type: ignore[union-attr]
            and not request.path.startswith(_MFA_EXEMPT_PREFIXES)
            and mfa_required_for(user, getattr(request, "organization", None))
        ):
            return redirect_to_login(request.path, reverse("mfa_verify"))
        return self.get_response(request)


class AuditlogMiddleware(_AuditlogMiddleware):
    """django-auditlog's middleware, with the client IP from `client_ip`.

    Upstream copies the first X-Forwarded-For hop as sent, which any client can forge.
    """

    @staticmethod
    def _get_remote_addr(request: HttpRequest) -> str | None:  # type: ignore[override]
        return client_ip(request)
