"""View decorators of the tenancy core, for every app's views.

They live in the floor, not in the staff app: every feature app's views wear them, and imports
only point down.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

View = Callable[..., HttpResponse]


def organization_required(view: View) -> View:
    """Views of tenant data need a current organization; users without one see why."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request, "organization", None) is None:
            return render(request, "healthcrm/no_organization.html", status=403)
        return view(request, *args, **kwargs)

    return wrapped
