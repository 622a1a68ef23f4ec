"""Break-the-glass: the reason form a clinical user fills in, and compliance's review pages."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import F
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse

from compliance.access import access_recorder
from compliance.decorators import staff_view
from compliance.guards import get_object_for_user
from compliance.models import AccessAction
from healthcrm.http import TenantRequest
from healthcrm.security import safe_next_url
from patients.breakglass.forms import BreakGlassForm, BreakGlassReviewForm
from patients.breakglass.policy import break_glass_settings, needs_break_glass
from patients.breakglass.services import break_glass_grant, break_glass_review
from patients.models import BreakGlassEvent, Patient
from patients.policies import require_clinical

PAGE_SIZE = 25


def _back_to(request: TenantRequest, detail: str) -> str:
    """The page the user was opening (`next`, a path on this site), else the record."""
    target = safe_next_url(request, detail)
    return target if target.startswith("/") else detail


@staff_view(access=AccessAction.VIEW, perm="patients.view_patient")
def break_glass_view(request: TenantRequest, pk: int) -> HttpResponse:
    """The reason form (GET) and the grant (POST); a user who needs no grant goes to the record."""
    # The plain guarded fetch, not get_patient_for_user: this page is the way past its check.
    patient = get_object_for_user(request, Patient.objects.select_related("organization"), pk, "patients.view_patient")
    require_clinical(request, patient)
    detail = reverse("patients:detail", args=[patient.pk])
    # A restricted note or document asks for a grant even from the care team (policy.require_unrestricted).
    restricted = (request.POST if request.method == "POST" else request.GET).get("restricted") in ("True", "1", "on")
    if not restricted and not needs_break_glass(request.user, patient):
        return HttpResponseRedirect(_back_to(request, detail))
    initial = {"next": request.GET.get("next", "")[:500], "restricted": restricted}
    form = BreakGlassForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        break_glass_grant(
            user=request.user, patient=patient, reason=form.cleaned_data["reason"], note=form.cleaned_data["note"]
        )
        return HttpResponseRedirect(_back_to(request, detail))
    context = {
        "patient_pk": patient.pk,
        "form": form,
        "grant_minutes": break_glass_settings(patient.organization).grant_minutes,
        "restricted": restricted,
    }
    return render(request, "patients/break_glass.html", context)


@staff_view(access=AccessAction.LIST, perm="patients.view_breakglassevent")
def break_glass_events_view(request: TenantRequest) -> HttpResponse:
    """Compliance's list: unreviewed events first, newest first within each group."""
    events = BreakGlassEvent.objects.order_by(F("reviewed_at").asc(nulls_first=True), "-granted_at", "-id")
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    access_recorder(request).saw(page.object_list)
    return render(request, "patients/break_glass_events.html", {"page": page, "section": "break_glass"})


@staff_view(access=AccessAction.VIEW, perm="patients.change_breakglassevent")
def break_glass_review_view(request: TenantRequest, pk: int) -> HttpResponse:
    event = get_object_for_user(request, BreakGlassEvent.objects.all(), pk, "patients.change_breakglassevent")
    initial = {"outcome": event.outcome, "review_note": event.review_note} if event.reviewed_at else None
    form = BreakGlassReviewForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        break_glass_review(
            event=event,
            reviewer=request.user,
            outcome=form.cleaned_data["outcome"],
            note=form.cleaned_data["review_note"],
        )
        return redirect("patients:break_glass_events")
    return render(request, "patients/break_glass_review.html", {"event": event, "form": form, "section": "break_glass"})
