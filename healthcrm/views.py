"""Error pages of the core: they import nothing above it and render whatever broke."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(request, "403_csrf.html", status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    # No context processors, no database: the page must render whatever broke.
    from django.template import loader

    return HttpResponse(loader.get_template("500.html").render(), status=500)
