"""Appointments: booking without double booking, rescheduling, the status lifecycle, the calendar."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from patients.models import Appointment, AppointmentStatus
from patients.scheduling.services import appointment_book, appointment_reschedule, appointment_set_status
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")


def _at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    """A time on a fixed future day, in org A's zone (America/Chicago)."""
    return datetime(2031, 3, day, hour, minute, tzinfo=CHICAGO)


@pytest.fixture
def clinic(org_a):
    with organization_context(org_a):
        return {
            "patient": PatientFactory(family_name="Calendarson"),
            "other_patient": PatientFactory(),
            "dr": PractitionerFactory(display_name="Dr. Alpha"),
            "dr2": PractitionerFactory(display_name="Dr. Beta"),
        }


def _book(clinic, start, minutes=30, **kwargs):
    defaults = {"patient": clinic["patient"], "practitioner": clinic["dr"]}
    return appointment_book(**{**defaults, **kwargs}, starts_at=start, ends_at=start + timedelta(minutes=minutes))


def test_booking_stores_utc_and_refuses_double_booking(org_a, clinic) -> None:
    with organization_context(org_a):
        first = _book(clinic, _at(9))
        stored = Appointment.objects.get(pk=first.pk).starts_at
        assert stored == _at(9) and stored.utcoffset() == timedelta(0) and stored.hour == 15  # 09:00 CST

        with pytest.raises(ValidationError, match="already has an appointment at that time"):
            _book(clinic, _at(9, 15), patient=clinic["other_patient"])
        # Back to back is fine; another practitioner at the same time too (for another patient).
        _book(clinic, _at(9, 30))
        _book(clinic, _at(9), practitioner=clinic["dr2"], patient=clinic["other_patient"])
        assert Appointment.objects.count() == 3


def test_a_cancelled_appointment_frees_its_slot(org_a, clinic) -> None:
    with organization_context(org_a):
        first = _book(clinic, _at(11))
        with pytest.raises(ValidationError, match="already has an appointment at that time"):
            _book(clinic, _at(11), patient=clinic["other_patient"])  # taken while it stands
        appointment_set_status(appointment=first, status=AppointmentStatus.CANCELLED)
        second = _book(clinic, _at(11), patient=clinic["other_patient"])
        in_the_slot = Appointment.objects.filter(practitioner=clinic["dr"], starts_at=_at(11))
        assert sorted(in_the_slot.values_list("pk", "status")) == [
            (first.pk, AppointmentStatus.CANCELLED),
            (second.pk, AppointmentStatus.BOOKED),
        ]
        assert second.patient == clinic["other_patient"]


def test_the_database_refuses_double_booking_the_service_did_not_see(org_a, clinic) -> None:
    with organization_context(org_a):
        _book(clinic, _at(14))
        clash = Appointment(
            patient=clinic["other_patient"], practitioner=clinic["dr"], starts_at=_at(14, 10), ends_at=_at(14, 40)
        )
        with pytest.raises(IntegrityError, match="appointment_no_double_booking"), transaction.atomic():
            clash.save()


def test_end_before_start_is_refused(org_a, clinic) -> None:
    with organization_context(org_a), pytest.raises(ValidationError, match="must end after it starts"):
        appointment_book(patient=clinic["patient"], practitioner=clinic["dr"], starts_at=_at(10), ends_at=_at(9))


def test_reschedule_into_a_taken_slot_is_refused_and_changes_nothing(org_a, clinic) -> None:
    with organization_context(org_a):
        taken = _book(clinic, _at(10))
        moving = _book(clinic, _at(15), patient=clinic["other_patient"])
        with pytest.raises(ValidationError, match="already has an appointment"):
            appointment_reschedule(appointment=moving, starts_at=_at(10), ends_at=_at(10, 30))
        assert Appointment.objects.get(pk=moving.pk).starts_at == _at(15)
        appointment_set_status(appointment=taken, status="confirmed")
        appointment_reschedule(appointment=taken, starts_at=_at(16), ends_at=_at(16, 30))
        taken.refresh_from_db()
        assert (taken.starts_at, taken.status) == (_at(16), "booked")  # moved: to be confirmed again


def test_status_lifecycle(org_a, clinic, nurse_user) -> None:
    with organization_context(org_a):
        appointment = _book(clinic, _at(8))
    with time_machine.travel(_at(7, 50), tick=False), organization_context(org_a):  # the visit's day
        appointment_set_status(appointment=appointment, status="checked_in", actor=nurse_user)
        appointment_set_status(appointment=appointment, status="completed", actor=nurse_user)
        appointment.refresh_from_db()
        assert (appointment.status, appointment.status_changed_by) == ("completed", nurse_user)
        with pytest.raises(ValidationError, match="cannot become cancelled"):
            appointment_set_status(appointment=appointment, status="cancelled")
        # Setting the same status again changes nothing (replayed confirmations).
        appointment_set_status(appointment=appointment, status="completed")


def test_telehealth_appointments_get_an_unguessable_join_link(org_a, clinic) -> None:
    with organization_context(org_a):
        one = _book(clinic, _at(12), kind="telehealth")
        two = _book(clinic, _at(13), kind="telehealth")
    assert one.telehealth_url.startswith("https://telehealth.healthcrm.example/room/")
    assert one.telehealth_url != two.telehealth_url
    assert len(one.telehealth_url.rsplit("/", 1)[1]) >= 22
    assert "Calendarson" not in one.telehealth_url


# -- Views: three personas ---------------------------------------------------------------------


@pytest.fixture
def booked(org_a, clinic):
    with organization_context(org_a):
        return _book(clinic, _at(10))


def test_appointment_detail_personas(client_for, nurse_user, analyst_user, other_org_user, booked) -> None:
    url = reverse("patients:appointment_detail", args=[booked.pk])
    response = client_for(nurse_user).get(url)
    assert response.status_code == 200 and b"Calendarson" in response.content
    assert client_for(analyst_user).get(url).status_code == 403
    assert client_for(other_org_user).get(url).status_code == 404


def test_calendar_shows_the_week_in_the_organization_time_zone(
    client_for, nurse_user, other_org_user, booked, org_a
) -> None:
    response = client_for(nurse_user).get(
        reverse("patients:appointment_calendar"), {"date": "2031-03-02", "view": "week"}
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "10:00–10:30" in content and "Calendarson" in content  # Chicago time, not UTC (16:00)
    assert (
        "Calendarson"
        not in client_for(other_org_user)
        .get(reverse("patients:appointment_calendar"), {"date": "2031-03-02"})
        .content.decode()
    )
    with organization_context(org_a):
        entry = AccessLog.objects.filter(action=AccessAction.LIST, view_name="patients:appointment_calendar").get()
    assert entry.object_ids == [str(booked.pk)]


def test_calendar_query_count_is_constant(client_for, nurse_user, org_a, clinic) -> None:
    client = client_for(nurse_user)
    url = reverse("patients:appointment_calendar")
    client.get(url)
    counts = []
    for hours in ((8,), (9, 10, 11, 12, 13)):
        with organization_context(org_a):
            for hour in hours:
                AppointmentFactory(
                    patient=clinic["patient"],
                    practitioner=clinic["dr"],
                    starts_at=_at(hour, day=4),
                    ends_at=_at(hour, 30, day=4),
                )
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url, {"date": "2031-03-04"}).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_booking_form_books_in_local_time_and_shows_double_booking(client_for, nurse_user, org_a, clinic) -> None:
    url = reverse("patients:appointment_create", args=[clinic["patient"].pk])
    data = {
        "practitioner": clinic["dr"].pk,
        "kind": "in_person",
        "appointment_type": "follow_up",
        "date": "2031-03-05",
        "start_time": "09:00",
        "duration": 30,
        "reason": "Check-up",
    }
    client = client_for(nurse_user)
    response = client.post(url, data)
    assert response.status_code == 302
    with organization_context(org_a):
        appointment = Appointment.objects.get()
    assert appointment.starts_at == datetime(2031, 3, 5, 9, 0, tzinfo=CHICAGO)
    response = client.post(url, {**data, "start_time": "09:15"})
    assert response.status_code == 400
    assert "This practitioner already has an appointment at that time." in response.content.decode()
    assert "Check-up" in response.content.decode()  # nothing typed is lost


def test_booking_form_read_only_and_other_org(client_for, analyst_user, other_org_user, clinic) -> None:
    url = reverse("patients:appointment_create", args=[clinic["patient"].pk])
    assert client_for(analyst_user).get(url).status_code == 403
    assert client_for(other_org_user).get(url).status_code == 404


def test_reschedule_and_status_views(client_for, nurse_user, analyst_user, other_org_user, booked, org_a) -> None:
    url = reverse("patients:appointment_reschedule", args=[booked.pk])
    status_url = reverse("patients:appointment_status", args=[booked.pk])
    assert client_for(analyst_user).get(url).status_code == 403
    assert client_for(other_org_user).get(url).status_code == 404
    assert client_for(other_org_user).post(status_url, {"status": "confirmed"}).status_code == 404
    client = client_for(nurse_user)
    response = client.post(
        url, {"practitioner": booked.practitioner_id, "date": "2031-03-02", "start_time": "13:00", "duration": 45}
    )
    assert response.status_code == 302
    assert client.get(status_url).status_code == 405
    client.post(status_url, {"status": "confirmed"})
    with organization_context(org_a):
        booked.refresh_from_db()
    assert (booked.starts_at, booked.ends_at, booked.status) == (_at(13), _at(13, 45), "confirmed")
    response = client.post(status_url, {"status": "bogus"}, follow=True)
    assert "Choose a valid status." in response.content.decode()


def test_every_scheduling_role_can_open_the_calendar_and_analysts_cannot(client_for, org_a) -> None:
    from tests.factories import MembershipFactory, UserFactory

    for role, status in (
        ("admin", 200),
        ("provider", 200),
        ("frontdesk", 200),
        ("coordinator", 200),
        ("analyst", 403),
        ("compliance", 403),
    ):
        user = UserFactory(username=f"{role}@cal.example")
        MembershipFactory(user=user, organization=org_a, role=role)
        assert client_for(user).get(reverse("patients:appointment_calendar")).status_code == status, role
