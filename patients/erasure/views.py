"""Compliance's erasure pages: the pending requests and open holds, and one patient's page to
record a request, carry it out or decline it, and place or release legal holds.

Who: compliance officers (`patients.view_erasurerequest`, `change_erasurerequest`, `add_legalhold`,
`change_legalhold`); every other role 403, another organization's patient 404. Each page is
access-logged; each POST is one change row of the patient.
"""

from __future__ import annotations

from typing import TypeVar

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render

from compliance.access import access_recorder
from compliance.decorators import staff_view
from compliance.models import AccessAction
from healthcrm.http import TenantRequest
from patients.erasure.forms import DecisionForm, HoldForm
from patients.erasure.services import (
    erasure_request_create,
    erasure_request_decline,
    erasure_request_execute,
    legal_hold_place,
    legal_hold_release,
)
from patients.models import ErasureRequest, ErasureStatus, LegalHold, Patient
from patients.selectors import get_patient_for_user

VIEW = "patients.view_erasurerequest"
DECIDE = "patients.change_erasurerequest"
REQUEST = "patients.add_erasurerequest"
HOLD = "patients.add_legalhold"
RELEASE = "patients.change_legalhold"

_Row = TypeVar("_Row", bound=Model)


@staff_view(access=AccessAction.LIST, perm=VIEW)
def erasure_overview_view(request: TenantRequest) -> HttpResponse:
    """Pending requests (oldest first: the 30-day clock) and open holds."""
    pending = list(ErasureRequest.objects.filter(status=ErasureStatus.PENDING).order_by("requested_at", "id")[:200])
    holds = list(LegalHold.objects.filter(released_at__isnull=True).order_by("-placed_at", "-id")[:200])
    access_recorder(request).saw(
        Patient.objects.filter(pk__in={r.patient_id for r in pending} | {h.patient_id for h in holds})
    )
    return render(request, "patients/erasure/overview.html", {"pending": pending, "holds": holds, "section": "erasure"})


def _page(request: TenantRequest, patient: Patient, hold_form: HoldForm, decision_form: DecisionForm) -> HttpResponse:
    context = {
        "patient": patient,
        "requests": ErasureRequest.objects.filter(patient=patient).order_by("-requested_at", "-id"),
        "holds": LegalHold.objects.filter(patient=patient).order_by("-placed_at", "-id"),
        "hold_form": hold_form,
        "decision_form": decision_form,
        "section": "erasure",
    }
    errors = hold_form.errors or decision_form.errors
    return render(request, "patients/erasure/patient.html", context, status=400 if errors else 200)


@staff_view(access=AccessAction.VIEW, perm=VIEW)
def patient_erasure_view(request: TenantRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk, perm=VIEW)
    hold_form, decision_form = HoldForm(), DecisionForm()
    if request.method != "POST":
        return _page(request, patient, hold_form, decision_form)
    action = request.POST.get("action", "")
    try:
        if action == "hold":
            _require(request, HOLD)
            hold_form = HoldForm(request.POST)
            if hold_form.is_valid():
                legal_hold_place(patient=patient, reason=hold_form.cleaned_data["reason"], actor=request.user)
                messages.success(request, "Legal hold placed.")
                return redirect("patients:erasure", pk=patient.pk)
        elif action == "release":
            _require(request, RELEASE)
            hold = _one(LegalHold.objects.filter(patient=patient), request.POST.get("hold"))
            legal_hold_release(hold=hold, actor=request.user)
            messages.success(request, "Legal hold released.")
            return redirect("patients:erasure", pk=patient.pk)
        elif action == "request":
            _require(request, REQUEST)
            erasure_request_create(patient=patient, actor=request.user)
            messages.success(request, "Erasure request recorded.")
            return redirect("patients:erasure", pk=patient.pk)
        elif action in ("execute", "decline"):
            _require(request, DECIDE)
            decision_form = DecisionForm(request.POST)
            erasure = _one(ErasureRequest.objects.filter(patient=patient), request.POST.get("request"))
            if decision_form.is_valid():
                note = decision_form.cleaned_data["decision_note"]
                if action == "execute":
                    erasure_request_execute(request=erasure, actor=request.user, note=note)
                    messages.success(request, "The patient's data was erased; clinical records are kept.")
                else:
                    erasure_request_decline(request=erasure, actor=request.user, note=note)
                    messages.success(request, "Request declined.")
                return redirect("patients:erasure", pk=patient.pk)
        else:
            decision_form = DecisionForm(request.POST)
            decision_form.is_valid()
            decision_form.add_error(None, "Choose an action.")
    except ValidationError as exc:
        decision_form = DecisionForm(request.POST)
        decision_form.is_valid()
        decision_form.add_error(None, " ".join(exc.messages))
    return _page(request, patient, hold_form, decision_form)


def _require(request: TenantRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _one(rows: QuerySet[_Row], raw: str | None) -> _Row:
    """The row of this patient named in the form (a forged id of another patient: 404)."""
    try:
        pk = int(raw or "")
    except ValueError:
        raise Http404("No such row.") from None
    found = rows.filter(pk=pk).first()
    if found is None:
        raise Http404("No such row.")
    return found
