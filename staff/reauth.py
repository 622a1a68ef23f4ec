"""Re-authentication before sensitive account changes (issue 13 item 6).

Changing the password or replacing the authenticator needs a *recent* proof of both factors:
the password and, for a user with an authenticator, a code from it (or a recovery code). Passing
the second factor at sign-in counts; the proof lasts `RECENT_AUTH_SECONDS` (5 minutes by default),
then the page asks again. A stolen, still-open session therefore cannot change the credentials
that would let its thief back in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

RECENT_AUTH_KEY = "healthcrm_recent_auth"


def mark_recent_auth(request: HttpRequest) -> None:
    """The session just proved both factors (sign-in's second factor, or the re-authentication page)."""
    request.session[RECENT_AUTH_KEY] = int(time.time())


def has_recent_auth(request: HttpRequest) -> bool:
    at = request.session.get(RECENT_AUTH_KEY)
    return at is not None and int(time.time()) - int(at) <= settings.RECENT_AUTH_SECONDS


def reauth_redirect(request: HttpRequest) -> HttpResponse:
    # The path only: a query string may hold search terms.
    return redirect(f"{reverse('reauthenticate')}?{urlencode({'next': request.path})}")


def recent_auth_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Send a signed-in user without a recent proof of both factors to the re-authentication page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and not has_recent_auth(request):
            return reauth_redirect(request)
        return view(request, *args, **kwargs)

    return wrapper
