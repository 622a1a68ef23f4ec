"""Generated visit histories for the no-show model: appointments and their analytics facts, written
in bulk (the facts are what the model reads; the appointments are there for the one-to-one key)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.utils import timezone

from analytics.models import AppointmentFact
from patients.models import Appointment
from tests.factories import PatientFactory, PractitionerFactory

SLOT = timedelta(hours=3)  # one visit every three hours on one practitioner: never double-booked


@dataclass
class Visit:
    patient: Any
    starts_at: datetime
    outcome: str  # an analytics Outcome value
    lead_days: int = 7
    confirmed: bool = False
    reminded: bool = False
    appointment_type: str = "follow_up"
    age_band: str = "40-64"


def write(organization: Any, visits: list[Visit], practitioner: Any = None) -> list[Appointment]:
    """Appointments (completed / no-show / booked) and their facts; inside organization_context."""
    practitioner = practitioner or PractitionerFactory()
    status = {"attended": "completed", "no_show": "no_show", "late_cancel": "cancelled", "upcoming": "booked"}
    appointments = Appointment.objects.bulk_create(
        [
            Appointment(
                organization=organization,
                patient=v.patient,
                practitioner=practitioner,
                starts_at=v.starts_at,
                ends_at=v.starts_at + timedelta(minutes=30),
                status=status[v.outcome],
                appointment_type=v.appointment_type,
            )
            for v in visits
        ]
    )
    zone = organization.zone
    AppointmentFact.objects.bulk_create(
        [
            AppointmentFact(
                organization=organization,
                appointment=a,
                patient=v.patient,
                practitioner=practitioner,
                appointment_type=v.appointment_type,
                kind="in_person",
                starts_at=v.starts_at,
                local_date=timezone.localtime(v.starts_at, zone).date(),
                weekday=timezone.localtime(v.starts_at, zone).weekday(),
                hour=timezone.localtime(v.starts_at, zone).hour,
                lead_days=v.lead_days,
                age_band=v.age_band,
                outcome=v.outcome,
                exposure="confirmed" if v.confirmed else "delivered" if v.reminded else "none",
                sms_delivered=v.reminded,
                refreshed_at=v.starts_at,
            )
            for a, v in zip(appointments, visits, strict=True)
        ]
    )
    return appointments


def patterned_history(
    organization: Any, *, now: datetime, visits: int = 1500, patients: int = 150, seed: int = 7
) -> tuple[list[Visit], list[Any]]:
    """A history with a known pattern (seeded): the chance of a no-show rises with lead time and
    with the patient's own propensity (so with their earlier no-shows), and falls when confirmed:
        logit p = -2.6 + 0.02 x lead days + 1.3 x propensity - 1.6 x confirmed,  propensity ~ N(0, 1).
    Visits every SLOT, ending one SLOT before `now`; written (inside organization_context)."""
    rng = np.random.default_rng(seed)
    people = [PatientFactory() for _ in range(patients)]
    propensity = rng.normal(0, 1, patients)
    history = []
    first = now - SLOT * (visits + 1)
    for i in range(visits):
        who = int(rng.integers(patients))
        lead = int(rng.choice([0, 3, 14, 45, 120]))
        confirmed = bool(rng.random() < 0.4)
        logit = -2.6 + 0.02 * lead + 1.3 * propensity[who] - 1.6 * confirmed
        no_show = rng.random() < 1 / (1 + np.exp(-logit))
        history.append(
            Visit(
                patient=people[who],
                starts_at=first + SLOT * i,
                outcome="no_show" if no_show else "attended",
                lead_days=lead,
                confirmed=confirmed,
                reminded=bool(rng.random() < 0.7),
            )
        )
    write(organization, history)
    return history, people
