from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from compliance.decorators import PHI_FREE, staff_view
from compliance.forms import AccessLogFilterForm
from compliance.models import AccessAction
from compliance.selectors import access_log_list, security_event_list
from healthcrm.http import TenantRequest, render_partial_or_page


# Shows who looked at which record id, never the record.
@staff_view(access=PHI_FREE, perm="compliance.view_accesslog")
def access_log_view(request: TenantRequest) -> HttpResponse:
    filters = AccessLogFilterForm(request.GET).values()
    entries = access_log_list(action=filters["action"], actor_label=filters["actor"], object_id=filters["object"])
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    context = {"page": page, "actions": AccessAction.choices, "filters": filters}
    return render_partial_or_page(
        request, "compliance/access_log.html", "compliance/partials/access_log_table.html", context
    )


# Security settings and credential changes, secrets redacted; no patient data.
@staff_view(access=PHI_FREE, perm="compliance.view_accesslog")
def security_events_view(request: TenantRequest) -> HttpResponse:
    page = Paginator(security_event_list(), 50).get_page(request.GET.get("page"))
    return render(request, "compliance/security_events.html", {"page": page})
