"""What scheduling refuses (issue 11, item 5) and the coded reasons of cancellations and no-shows
(issue 10, item 1): a patient in two visits at once, a start that has passed, a time outside the
location's opening hours, a no-show before the visit, a check-in days ahead; a cancel that asks why.

Every test that books runs on one frozen instant, NOW: Monday 3 March 2031, 10:07 in Chicago
(organization A's zone), so "the past" and "today" are fixed whatever the wall clock.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from healthcrm.models import Location
from healthcrm.opening_hours import parse_opening_hours
from healthcrm.tenancy import organization_context
from patients.models import Appointment, AppointmentStatus
from patients.scheduling import services
from patients.scheduling.services import (
    DOUBLE_BOOKED,
    PATIENT_BUSY,
    appointment_book,
    appointment_cancel,
    appointment_import_upsert,
    appointment_reschedule,
    appointment_set_status,
)
from tests.factories import LocationFactory, MembershipFactory, PatientFactory, PractitionerFactory, UserFactory

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2031, 3, 3, 10, 7, tzinfo=CHICAGO)  # a Monday
PAST = "That time has passed: it is now Mon 3 Mar 2031, 10:07 (America/Chicago). Choose a later time."
LUNCH = "Main Street is open 08:00–12:00, 13:00–17:00 on Mondays (America/New_York): choose a time inside those hours."


def _at(hour: int, minute: int = 0, day: int = 3) -> datetime:
    """A time in March 2031, in Chicago (day 3 is NOW's Monday, day 10 the next one)."""
    return datetime(2031, 3, day, hour, minute, tzinfo=CHICAGO)


@pytest.fixture
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def clinic(org_a: Any, frozen: Any) -> dict[str, Any]:
    with organization_context(org_a):
        return {
            "patient": PatientFactory(given_name="Ottilie", family_name="Rulesworth"),
            "other_patient": PatientFactory(),
            "dr": PractitionerFactory(display_name="Dr. Alpha"),
            "dr2": PractitionerFactory(display_name="Dr. Beta"),
            # An hour ahead of the organization: its hours are New York times.
            "main_street": LocationFactory(
                name="Main Street",
                timezone="America/New_York",
                opening_hours={"mon": [["13:00", "17:00"], ["08:00", "12:00"]], "tue": [["08:00", "17:00"]], "sat": []},
            ),
            "annex": LocationFactory(name="Annex"),  # no opening hours: never refuses
        }


def _book(clinic: dict[str, Any], start: datetime, minutes: int = 30, **kwargs: Any) -> Appointment:
    defaults = {"patient": clinic["patient"], "practitioner": clinic["dr"]}
    return appointment_book(**{**defaults, **kwargs}, starts_at=start, ends_at=start + timedelta(minutes=minutes))


# -- A patient is in one visit at a time ---------------------------------------------------------


def test_the_same_patient_cannot_be_booked_at_an_overlapping_time_with_another_practitioner(org_a, clinic) -> None:
    with organization_context(org_a):
        first = _book(clinic, _at(11))  # 11:00–11:30 with Dr. Alpha
        with pytest.raises(ValidationError) as refused:
            _book(clinic, _at(11, 15), practitioner=clinic["dr2"])  # 11:15–11:45 with Dr. Beta
        assert refused.value.message_dict == {"starts_at": [PATIENT_BUSY]}
        _book(clinic, _at(11, 30), practitioner=clinic["dr2"])  # back to back is fine
        appointment_cancel(appointment=first, reason="conflict")  # a cancelled visit holds no time
        _book(clinic, _at(11), practitioner=clinic["dr2"])
        # Active now: 11:30 and 11:00 with Dr. Beta (the cancelled 11:00 with Dr. Alpha is not).
        assert Appointment.objects.filter(status="booked").count() == 2


def test_a_reschedule_onto_the_patients_other_visit_is_refused_and_changes_nothing(org_a, clinic) -> None:
    with organization_context(org_a):
        _book(clinic, _at(14))
        moving = _book(clinic, _at(16), practitioner=clinic["dr2"])
        with pytest.raises(ValidationError, match=PATIENT_BUSY):
            appointment_reschedule(appointment=moving, starts_at=_at(14, 15), ends_at=_at(14, 45))
        moving.refresh_from_db()
        assert moving.starts_at == _at(16)


def test_the_database_refuses_a_patient_overlap_the_service_did_not_see(org_a, clinic, monkeypatch) -> None:
    with organization_context(org_a):
        _book(clinic, _at(14))
        clash = Appointment(
            patient=clinic["patient"], practitioner=clinic["dr2"], starts_at=_at(14, 10), ends_at=_at(14, 40)
        )
        with pytest.raises(IntegrityError, match="appointment_patient_no_overlap"), transaction.atomic():
            clash.save()
        # A race (both checks passed, the other insert committed first) still reads as the form's message.
        monkeypatch.setattr(services, "_schedule_errors", lambda appointment, now: {})
        monkeypatch.setattr(Appointment, "full_clean", lambda self, *args, **kwargs: None)
        with pytest.raises(ValidationError) as refused:
            _book(clinic, _at(14, 10), practitioner=clinic["dr2"])
        assert refused.value.message_dict == {"starts_at": [PATIENT_BUSY]}


def test_the_service_itself_refuses_a_double_booking_before_any_write(org_a, clinic, monkeypatch) -> None:
    """The service's own check, with the two layers behind it out of the way: the model's constraint
    validation (full_clean) is switched off, and no INSERT or UPDATE may reach the database (where the
    exclusion constraints would answer with the same message)."""
    with organization_context(org_a):
        _book(clinic, _at(14))  # 14:00-14:30, the patient with Dr. Alpha
        moving = _book(clinic, _at(16), practitioner=clinic["dr2"], patient=clinic["other_patient"])
        monkeypatch.setattr(Appointment, "validate_constraints", lambda self, exclude=None: None)
        attempts = [
            # The same practitioner and the same patient: both reasons at once (only the service says both).
            (lambda: _book(clinic, _at(14, 10)), [DOUBLE_BOOKED, PATIENT_BUSY]),
            # Another patient moved onto Dr. Alpha's visit: the practitioner is busy.
            (
                lambda: appointment_reschedule(
                    appointment=moving, starts_at=_at(14, 10), ends_at=_at(14, 40), practitioner=clinic["dr"]
                ),
                [DOUBLE_BOOKED],
            ),
        ]
        for attempt, reasons in attempts:
            with CaptureQueriesContext(connection) as queries, pytest.raises(ValidationError) as refused:
                attempt()
            assert refused.value.message_dict == {"starts_at": reasons}
            writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
            assert [sql for sql in writes if "patients_appointment" in sql] == []


# -- Not in the past ---------------------------------------------------------------------------


def test_a_visit_cannot_be_booked_or_moved_to_a_time_that_has_passed(org_a, clinic) -> None:
    with organization_context(org_a):
        with pytest.raises(ValidationError) as refused:
            _book(clinic, _at(10, 5))  # two minutes ago
        assert refused.value.message_dict == {"starts_at": [PAST]}
        booked = _book(clinic, _at(10, 10))  # three minutes from now
        with pytest.raises(ValidationError, match="That time has passed"):
            appointment_reschedule(appointment=booked, starts_at=_at(15, day=2), ends_at=_at(15, 30, day=2))
        booked.refresh_from_db()
        assert booked.starts_at == _at(10, 10)
        assert Appointment.objects.count() == 1


def test_an_imported_past_visit_is_history_and_not_refused(org_a, clinic) -> None:
    with organization_context(org_a):
        appointment = appointment_import_upsert(
            source_system="https://ehr.example/fhir",
            source_id="old-1",
            patient_id=clinic["patient"].pk,
            practitioner_id=clinic["dr"].pk,
            # A year ago, on a Saturday: in the past, and when Main Street is closed now.
            starts_at=datetime(2030, 3, 2, 9, 0, tzinfo=CHICAGO),
            ends_at=datetime(2030, 3, 2, 9, 30, tzinfo=CHICAGO),
            status="completed",
            location_id=clinic["main_street"].pk,
        )
        assert Appointment.objects.get().pk == appointment.pk


# -- Opening hours -----------------------------------------------------------------------------


def test_a_visit_must_fit_the_locations_opening_hours_in_the_locations_zone(org_a, clinic) -> None:
    main_street = clinic["main_street"]
    with organization_context(org_a):
        # 07:30 in Chicago is 08:30 in New York: open (read in Chicago it would be before 08:00).
        _book(clinic, _at(7, 30, day=10), location=main_street)
        for start, minutes, message in (
            (_at(11, day=10), 30, LUNCH),  # 12:00–12:30 New York: the lunch break
            (_at(15, 45, day=10), 30, LUNCH),  # 16:45–17:15 New York: runs past closing
            (_at(9, day=8), 30, "Main Street is closed on Saturdays."),  # "sat": []
            (_at(9, day=9), 30, "Main Street is closed on Sundays."),  # a day left out is closed
        ):
            with pytest.raises(ValidationError) as refused:
                _book(clinic, start, minutes, location=main_street)
            assert refused.value.message_dict == {"starts_at": [message]}, start
        # A location without opening hours, and a visit without a location, are never refused.
        _book(clinic, _at(23, day=9), location=clinic["annex"])
        _book(clinic, _at(22, day=9), kind="telehealth")
        # The three that fitted: Monday 07:30 (Main Street), Sunday 23:00 (Annex), Sunday 22:00 (telehealth).
        assert Appointment.objects.count() == 3


def test_a_reschedule_outside_the_opening_hours_is_refused(org_a, clinic) -> None:
    with organization_context(org_a):
        booked = _book(clinic, _at(9, day=10), location=clinic["main_street"])
        with pytest.raises(ValidationError, match="closed on Saturdays"):
            appointment_reschedule(appointment=booked, starts_at=_at(9, day=8), ends_at=_at(9, 30, day=8))
        booked.refresh_from_db()
        assert booked.starts_at == _at(9, day=10)


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        (["mon"], "an object of days"),
        ({"monday": [["08:00", "18:00"]]}, "Unknown day monday"),
        ({"mon": "08:00-18:00"}, "list of [open, close] pairs"),
        ({"mon": [["8:00", "18:00"]]}, "24-hour clock"),
        ({"mon": [["08:00", "25:00"]]}, "24-hour clock"),
        ({"mon": [["18:00", "08:00"]]}, "closes before it opens"),
        ({"mon": [["08:00", "12:00"], ["11:00", "13:00"]]}, "intervals overlap"),
    ],
)
def test_opening_hours_that_make_no_sense_are_refused(org_a, hours, message) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        parse_opening_hours(hours)
    with organization_context(org_a):
        location = Location(name="Odd Hours", opening_hours=hours)
        with pytest.raises(ValidationError) as refused:
            location.full_clean()
        assert list(refused.value.message_dict) == ["opening_hours"]


def test_opening_hours_accept_a_day_closing_at_midnight_and_nothing_at_all() -> None:
    assert parse_opening_hours({"fri": [["18:00", "24:00"]]})["fri"] == [(18 * 60, 24 * 60)]
    assert parse_opening_hours({}) == {} and parse_opening_hours(None) == {}


def test_an_administrator_sets_opening_hours_in_the_admin(client_for, org_a) -> None:
    admin = UserFactory(username="admin@north.example", is_staff=True)
    MembershipFactory(user=admin, organization=org_a, role="admin")
    with organization_context(org_a):
        location = LocationFactory(name="Clinic Row")
    url = reverse("admin:healthcrm_location_change", args=[location.pk])
    form = {"name": "Clinic Row", "address": "", "phone": "", "timezone": "", "is_active": "on"}
    client = client_for(admin)
    refused = client.post(url, {**form, "opening_hours": '{"mon": [["18:00", "08:00"]]}'})
    assert refused.status_code == 200 and "closes before it opens" in refused.content.decode()
    assert client.post(url, {**form, "opening_hours": '{"mon": [["08:00", "18:00"]]}'}).status_code == 302
    with organization_context(org_a):
        location.refresh_from_db()
        assert location.opening_hours == {"mon": [["08:00", "18:00"]]}
    # An emptied box is "no restriction", stored as {} (the column is not nullable).
    assert client.post(url, {**form, "opening_hours": ""}).status_code == 302
    with organization_context(org_a):
        location.refresh_from_db()
        assert location.opening_hours == {}


# -- Status changes that time refuses ------------------------------------------------------------


def test_a_no_show_is_refused_before_the_visit_starts(org_a, clinic) -> None:
    with organization_context(org_a):
        later = _book(clinic, _at(10, 30))  # today, in 23 minutes
        with pytest.raises(ValidationError, match="too early for a no-show"):
            appointment_set_status(appointment=later, status="no_show")
        later.refresh_from_db()
        assert (later.status, later.status_reason) == ("booked", "")
    with time_machine.travel(_at(10, 45), tick=False), organization_context(org_a):  # a quarter past its start
        appointment_set_status(appointment=later, status="no_show")
        later.refresh_from_db()
        assert (later.status, later.status_reason) == ("no_show", "unknown")  # no reason given: unknown


def test_a_check_in_or_completion_is_refused_before_the_visits_day(org_a, clinic) -> None:
    with organization_context(org_a):
        tomorrow = _book(clinic, _at(8, day=4))
        today = _book(clinic, _at(16), patient=clinic["other_patient"])  # six hours ahead, but today
        with pytest.raises(ValidationError, match="can be checked in from its day on"):
            appointment_set_status(appointment=tomorrow, status="checked_in")
        appointment_set_status(appointment=today, status="checked_in")  # early arrival: fine
        appointment_set_status(appointment=today, status="completed")
        tomorrow.refresh_from_db()
        assert tomorrow.status == "booked"
        # Completed needs a check-in first; a checked-in visit of a later day (an import) cannot complete.
        Appointment.objects.filter(pk=tomorrow.pk).update(status="checked_in")
        tomorrow.refresh_from_db()
        with pytest.raises(ValidationError, match="can be completed from its day on"):
            appointment_set_status(appointment=tomorrow, status="completed")


# -- Reasons -----------------------------------------------------------------------------------


def test_a_cancellation_keeps_its_coded_reason_and_refuses_one_that_does_not_fit(org_a, clinic, nurse_user) -> None:
    with organization_context(org_a):
        appointment = _book(clinic, _at(13))
        with pytest.raises(ValidationError, match="Choose why the visit is cancelled"):
            appointment_cancel(appointment=appointment, reason="")
        with pytest.raises(ValidationError, match="Choose a reason for the cancellation"):
            appointment_cancel(appointment=appointment, reason="forgot")  # a no-show reason, not a cancel's
        with pytest.raises(ValidationError, match="kept only for a cancellation or a no-show"):
            appointment_set_status(appointment=appointment, status="confirmed", reason="illness")
        appointment.refresh_from_db()
        assert (appointment.status, appointment.status_reason) == ("booked", "")
        appointment_cancel(appointment=appointment, actor=nurse_user, reason="illness")
        appointment.refresh_from_db()
        assert (appointment.status, appointment.status_reason, appointment.status_changed_by) == (
            "cancelled",
            "illness",
            nurse_user,
        )


def test_the_database_refuses_a_reason_that_does_not_fit_the_status(org_a, clinic) -> None:
    with organization_context(org_a):
        appointment = _book(clinic, _at(13))
        for status, reason in (("booked", "illness"), ("cancelled", "forgot"), ("no_show", "rescheduled")):
            with pytest.raises(IntegrityError, match="appointment_status_reason_fits"), transaction.atomic():
                Appointment.objects.filter(pk=appointment.pk).update(status=status, status_reason=reason)


def test_a_reimport_that_uncancels_a_visit_drops_the_reason(org_a, clinic) -> None:
    fields: dict[str, Any] = {
        "source_system": "https://ehr.example/fhir",
        "source_id": "a-9",
        "starts_at": _at(9, day=5),
        "ends_at": _at(9, 30, day=5),
    }
    with organization_context(org_a):
        ids: dict[str, Any] = {"patient_id": clinic["patient"].pk, "practitioner_id": clinic["dr"].pk}
        appointment = appointment_import_upsert(**fields, **ids, status="booked")
        appointment_cancel(appointment=appointment, reason="weather")
        appointment_import_upsert(appointment=appointment, **fields, **ids, status="booked")
        appointment.refresh_from_db()
        assert (appointment.status, appointment.status_reason) == ("booked", "")


# -- Screens -----------------------------------------------------------------------------------

BOOKING = {"kind": "in_person", "appointment_type": "follow_up", "duration": 30, "reason": "Knee review"}


@pytest.mark.parametrize(
    ("date", "start", "where", "message"),
    [
        ("2031-03-03", "10:00", "annex", "That time has passed: it is now Mon 3 Mar 2031, 10:07"),
        ("2031-03-10", "11:00", "main_street", "Main Street is open 08:00–12:00, 13:00–17:00 on Mondays"),
        ("2031-03-10", "09:15", "annex", PATIENT_BUSY),  # the patient sees Dr. Beta 09:00–09:30
    ],
)
def test_the_booking_form_says_why_it_refuses_and_keeps_what_was_typed(
    client_for, frontdesk_user, org_a, clinic, date, start, where, message
) -> None:
    with organization_context(org_a):
        _book(clinic, _at(9, day=10), practitioner=clinic["dr2"], location=clinic["annex"])
    url = reverse("patients:appointment_create", args=[clinic["patient"].pk])
    data = {**BOOKING, "practitioner": clinic["dr"].pk, "location": clinic[where].pk, "date": date, "start_time": start}
    response = client_for(frontdesk_user).post(url, data)
    content = response.content.decode()
    assert response.status_code == 400
    assert message in content
    assert "Knee review" in content and f'value="{start}"' in content  # nothing typed is lost
    with organization_context(org_a):
        assert Appointment.objects.count() == 1  # only the one made above


def test_the_reschedule_form_refuses_a_past_time(client_for, frontdesk_user, org_a, clinic) -> None:
    with organization_context(org_a):
        booked = _book(clinic, _at(15))
    url = reverse("patients:appointment_reschedule", args=[booked.pk])
    data = {"practitioner": clinic["dr"].pk, "date": "2031-03-03", "start_time": "08:00", "duration": 30}
    response = client_for(frontdesk_user).post(url, data)
    assert response.status_code == 400 and "That time has passed" in response.content.decode()
    with organization_context(org_a):
        booked.refresh_from_db()
    assert booked.starts_at == _at(15)


def test_the_status_screen_refuses_a_no_show_before_the_start_and_records_its_reason_after(
    client_for, frontdesk_user, org_a, clinic
) -> None:
    with organization_context(org_a):
        booked = _book(clinic, _at(10, 10))  # in three minutes
    client = client_for(frontdesk_user)
    detail = reverse("patients:appointment_detail", args=[booked.pk])
    status_url = reverse("patients:appointment_status", args=[booked.pk])
    assert 'value="no_show"' not in client.get(detail).content.decode()  # not offered before the start
    response = client.post(status_url, {"status": "no_show", "reason": "transport"}, follow=True)
    assert "too early for a no-show" in response.content.decode()
    with time_machine.travel(_at(10, 12), tick=False):  # two minutes late (a longer jump ends the session)
        assert 'value="no_show"' in client.get(detail).content.decode()
        assert client.post(status_url, {"status": "no_show", "reason": "cost"}).status_code == 302
        response = client.post(status_url, {"status": "no_show", "reason": "transport"}, follow=True)
        page = client.get(detail).content.decode()
    with organization_context(org_a):
        booked.refresh_from_db()
    # "cost" is a cancellation's reason, not a no-show's: refused; "transport" kept and shown.
    assert (booked.status, booked.status_reason) == ("no_show", "transport")
    assert "No-show" in page and "No transport" in page


def test_cancelling_asks_for_a_reason_and_the_page_shows_it(client_for, frontdesk_user, org_a, clinic) -> None:
    with organization_context(org_a):
        booked = _book(clinic, _at(15))
    client = client_for(frontdesk_user)
    detail = reverse("patients:appointment_detail", args=[booked.pk])
    cancel = reverse("patients:appointment_cancel", args=[booked.pk])
    page = client.get(detail).content.decode()
    assert 'value="cancelled"' not in page and cancel in page  # no one-click cancel: a link to ask
    # The old one-click POST now leads to the question, and cancels nothing.
    response = client.post(reverse("patients:appointment_status", args=[booked.pk]), {"status": "cancelled"})
    assert response.status_code == 302 and response["Location"] == cancel
    question = client.get(cancel).content.decode()
    assert "Why is the visit cancelled?" in question and 'value="illness"' in question
    assert 'value="forgot"' not in question  # a no-show reason
    refused = client.post(cancel, {"reason": ""})
    assert refused.status_code == 400 and "Choose why the visit is cancelled." in refused.content.decode()
    with organization_context(org_a):
        booked.refresh_from_db()
    assert booked.status == "booked"
    assert client.post(cancel, {"reason": "illness"}).status_code == 302
    page = client.get(detail).content.decode()
    with organization_context(org_a):
        booked.refresh_from_db()
    assert (booked.status, booked.status_reason, booked.status_changed_by) == ("cancelled", "illness", frontdesk_user)
    assert "Cancelled" in page and "Patient unwell" in page and "(illness)" in page
    # Final now: the question is not asked again.
    again = client.get(cancel, follow=True).content.decode()
    assert "cannot be cancelled" in again


def test_the_cancel_screen_answers_404_across_organizations_and_403_without_the_permission(
    client_for, analyst_user, other_org_user, org_a, clinic
) -> None:
    with organization_context(org_a):
        booked = _book(clinic, _at(15))
    cancel = reverse("patients:appointment_cancel", args=[booked.pk])
    assert client_for(other_org_user).get(cancel).status_code == 404
    assert client_for(other_org_user).post(cancel, {"reason": "clinic"}).status_code == 404
    assert client_for(analyst_user).get(cancel).status_code == 403
    assert client_for(analyst_user).post(cancel, {"reason": "clinic"}).status_code == 403
    with organization_context(org_a):
        booked.refresh_from_db()
    assert (booked.status, booked.status_reason) == (AppointmentStatus.BOOKED, "")
