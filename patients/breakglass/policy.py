"""Who may open a patient's record without breaking the glass: one policy, called from the guard.

A clinical user (the clinical field group: providers, nurses, coordinators) opens a record without
friction when they are on the patient's care team, have an appointment with the patient within the
organization's window, hold an open task for the patient, or hold an unexpired break-glass grant.
Otherwise, when the organization requires a care relationship, the guard answers with the
break-the-glass form. Administrators, the front desk and analysts keep their own rules (they do not
hold the clinical field group). Lists and search are not restricted: only opening a record.

A note or document the patient asked to restrict (`restricted_at` set by staff) opens only under
an unexpired break-the-glass grant of the user for the patient, care team or not; the opening is
access-logged with the grant (`patients.breakglassevent:<id>` among the row's records).

The organization's options live in `Organization.settings["break_glass"]` (edited in the admin):
`{"required": false, "window_days_before": 30, "window_days_after": 7, "grant_minutes": 30}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from compliance.access import access_recorder, record_denied
from compliance.guards import GuardResponse
from patients.models import (
    OPEN_TASK_STATUSES,
    Appointment,
    AppointmentStatus,
    BreakGlassEvent,
    CareTask,
    CareTeamMember,
    Patient,
)
from patients.policies import can_see_clinical

MAX_GRANT_MINUTES = 60


def _bounded(value: Any, default: int, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return min(max(number, low), high)


@dataclass(frozen=True)
class BreakGlassSettings:
    required: bool = False
    window_days_before: int = 30
    window_days_after: int = 7
    grant_minutes: int = 30


def break_glass_settings(organization: Any) -> BreakGlassSettings:
    """The organization's options, defaults filled in and bounded (a grant lasts at most an hour)."""
    raw = (organization.settings or {}).get("break_glass") if organization is not None else None
    if not isinstance(raw, dict):
        return BreakGlassSettings()
    return BreakGlassSettings(
        required=raw.get("required") is True,
        window_days_before=_bounded(raw.get("window_days_before"), 30, 0, 365),
        window_days_after=_bounded(raw.get("window_days_after"), 7, 0, 365),
        grant_minutes=_bounded(raw.get("grant_minutes"), 30, 1, MAX_GRANT_MINUTES),
    )


def has_care_relationship(user: Any, patient: Patient, *, options: BreakGlassSettings | None = None) -> bool:
    """Care team, an appointment in the window, an open task, or an unexpired grant: one query."""
    options = options or break_glass_settings(patient.organization)
    now = timezone.now()
    here = OuterRef("pk")
    team = CareTeamMember.objects.filter(patient=here, user_id=user.pk, active=True)
    visit = Appointment.objects.filter(
        patient=here,
        practitioner__user_id=user.pk,
        starts_at__gte=now - timedelta(days=options.window_days_before),
        starts_at__lte=now + timedelta(days=options.window_days_after),
    ).exclude(status=AppointmentStatus.CANCELLED)
    task = CareTask.objects.filter(patient=here, assignee_id=user.pk, status__in=OPEN_TASK_STATUSES)
    grant = BreakGlassEvent.objects.filter(patient=here, user_id=user.pk, expires_at__gt=now)
    return (
        Patient.objects.filter(pk=patient.pk)
        .filter(Exists(team) | Exists(visit) | Exists(task) | Exists(grant))
        .exists()
    )


def needs_break_glass(user: Any, patient: Patient) -> bool:
    """Whether this user must give a reason before opening this patient's record."""
    options = break_glass_settings(patient.organization)
    if not options.required or not can_see_clinical(user):
        return False
    return not has_care_relationship(user, patient, options=options)


def require_care_relationship(request: HttpRequest, patient: Patient) -> None:
    """The guard's check: without a relationship, log the refusal and answer with the form."""
    if not needs_break_glass(request.user, patient):
        return
    from patients.breakglass.forms import BreakGlassForm

    record_denied(request, patient)
    if request.headers.get("HX-Request") == "true":
        # A tab or partial loaded by htmx: send the whole tab to the form instead of swapping it in.
        answer = HttpResponse()
        form_url = reverse("patients:break_glass", args=[patient.pk])
        answer["HX-Redirect"] = f"{form_url}?next={reverse('patients:detail', args=[patient.pk])}"
        raise GuardResponse(answer)
    options = break_glass_settings(patient.organization)
    context = {
        "patient_pk": patient.pk,
        "form": BreakGlassForm(initial={"next": request.get_full_path()}),
        "grant_minutes": options.grant_minutes,
    }
    raise GuardResponse(render(request, "patients/break_glass.html", context))


def active_grant(user: Any, patient: Patient) -> BreakGlassEvent | None:
    """The user's newest unexpired break-the-glass grant for the patient, if any."""
    grants = BreakGlassEvent.objects.filter(patient_id=patient.pk, user_id=user.pk, expires_at__gt=timezone.now())
    return grants.order_by("-granted_at", "-id").first()


def require_unrestricted(request: HttpRequest, record: Any, patient: Patient) -> None:
    """Opening a restricted note or document: an unexpired grant of this user, logged with it, or
    the break-the-glass form (the refusal logged). Unrestricted records pass untouched."""
    if getattr(record, "restricted_at", None) is None:
        return
    grant = active_grant(request.user, patient)
    if grant is not None:
        access_recorder(request).add(grant._meta.label_lower, grant.pk)
        return
    from patients.breakglass.forms import BreakGlassForm

    record_denied(request, record)
    options = break_glass_settings(patient.organization)
    context = {
        "patient_pk": patient.pk,
        "form": BreakGlassForm(initial={"next": request.get_full_path(), "restricted": True}),
        "grant_minutes": options.grant_minutes,
        "restricted": True,
    }
    raise GuardResponse(render(request, "patients/break_glass.html", context))
