"""View decorators of the tenancy core, for every app's views.

They live in the floor, not in the staff app: every feature app's views wear them, and imports
only point down.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

View = Callable[..., HttpResponse]


def organization_required(view: View) -> View:
    """Views of tenant data need a current organization; users without one see why."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request, "organization", None) is None:
            if request.user.is_superuser:
                # A platform administrator belongs to no clinic: it chooses one to work in (audited
                # there) instead of meeting a dead end, and comes back here.
                chooser = reverse("admin:choose_organization")
                return redirect(f"{chooser}?{urlencode({'next': request.get_full_path()})}")
            return render(request, "healthcrm/no_organization.html", status=403)
        return view(request, *args, **kwargs)

    return wrapped
