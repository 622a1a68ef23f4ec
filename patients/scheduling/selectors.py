"""Reads on practitioners and appointments, always within the current organization."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.http import HttpRequest

from compliance.guards import get_object_for_user
from healthcrm.models import Location
from patients.models import Appointment, Patient, Practitioner


def practitioner_get_by_npi(*, npi: str) -> Practitioner | None:
    """The organization's practitioner with this NPI (unique per organization), or None."""
    if not npi:
        return None
    return Practitioner.objects.filter(npi=npi).first()


def appointment_calendar(
    *, start: datetime, end: datetime, practitioner: Practitioner | None = None, location: Location | None = None
) -> list[Appointment]:
    """Appointments starting in [start, end), with what the calendar shows, in two queries at most."""
    appointments = Appointment.objects.filter(starts_at__gte=start, starts_at__lt=end).select_related(
        "patient", "practitioner", "location"
    )
    if practitioner is not None:
        appointments = appointments.filter(practitioner=practitioner)
    if location is not None:
        appointments = appointments.filter(location=location)
    return list(appointments.order_by("starts_at", "id"))


def appointment_list_for_patient(*, patient: Patient, limit: int | None = None) -> QuerySet[Appointment]:
    """The patient's appointments, newest first (a queryset: paginate it, or give a limit)."""
    appointments = (
        Appointment.objects.filter(patient=patient).select_related("practitioner", "location").order_by("-starts_at")
    )
    return appointments[:limit] if limit else appointments


def get_appointment_for_user(request: HttpRequest, pk: object, perm: str = "patients.view_appointment") -> Appointment:
    """The guarded fetch for appointments: 404 across organizations, 403 without `perm`."""
    queryset = Appointment.objects.select_related("patient", "practitioner", "location", "status_changed_by")
    return get_object_for_user(request, queryset, pk, perm)
