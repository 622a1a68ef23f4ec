from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from compliance.access import phi_free
from compliance.guards import require_perm
from compliance.models import AccessAction
from compliance.selectors import access_log_list, security_event_list
from healthcrm.decorators import organization_required


@phi_free  # shows who looked at which record id, never the record
@login_required
@organization_required
def access_log_view(request: HttpRequest) -> HttpResponse:
    require_perm(request, "compliance.view_accesslog")
    entries = access_log_list(
        action=request.GET.get("action", ""),
        actor_label=request.GET.get("actor", ""),
        object_id=request.GET.get("object", ""),
    )
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    template = "compliance/partials/access_log_table.html" if request.htmx else "compliance/access_log.html"
    return render(request, template, {"page": page, "actions": AccessAction.choices, "filters": request.GET})


@phi_free  # security settings and credentials changes, secrets redacted; no patient data
@login_required
@organization_required
def security_events_view(request: HttpRequest) -> HttpResponse:
    require_perm(request, "compliance.view_accesslog")
    page = Paginator(security_event_list(), 50).get_page(request.GET.get("page"))
    return render(request, "compliance/security_events.html", {"page": page})
