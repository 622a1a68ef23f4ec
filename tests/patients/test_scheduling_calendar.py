"""Issue #11 (calendar): practitioners' availability, the booking override, the day grid and the
month view, booking from an empty slot, and recurring visits. Runs under every wall clock
(tests/clocks.py); the visits are in 2031, in organization A's zone (America/Chicago)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from healthcrm.tenancy import organization_context
from patients.models import Appointment, Availability, ExceptionKind, WaitlistEntry, WaitlistStatus
from patients.scheduling.selectors import day_grid
from patients.scheduling.services import (
    appointment_book,
    appointment_series_book,
    appointment_set_status,
    availability_add,
    availability_exception_add,
    waitlist_add,
)
from tests.factories import (
    AppointmentFactory,
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")
MONDAY = date(2031, 3, 3)
SPRING_FORWARD = date(2031, 3, 9)  # a Sunday: 02:00 CST -> 03:00 CDT


def _at(hour: int, minute: int = 0, day: date = MONDAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=CHICAGO)


@pytest.fixture
def clinic(org_a):
    """Dr. Alpha sees patients at Main on Mondays 09:00-12:00 and Wednesdays 14:00-17:00; Dr. Free has
    no hours set (bookable whenever the location is open)."""
    with organization_context(org_a):
        main = LocationFactory(name="Main")
        annex = LocationFactory(name="Annex")
        alpha = PractitionerFactory(display_name="Dr. Alpha")
        free = PractitionerFactory(display_name="Dr. Free")
        availability_add(practitioner=alpha, location=main, weekday=0, start=time(9), end=time(12))
        availability_add(practitioner=alpha, location=main, weekday=2, start=time(14), end=time(17))
        return {
            "main": main,
            "annex": annex,
            "alpha": alpha,
            "free": free,
            "patient": PatientFactory(given_name="Ida", family_name="Gridley"),
            "other": PatientFactory(given_name="Otto", family_name="Parr"),
        }


def _book(clinic, start, minutes=30, **kwargs):
    defaults = {"patient": clinic["patient"], "practitioner": clinic["alpha"], "location": clinic["main"]}
    return appointment_book(**{**defaults, **kwargs}, starts_at=start, ends_at=start + timedelta(minutes=minutes))


# -- Availability: the model's validation ----------------------------------------------------------


def test_availability_refuses_end_before_start_and_overlaps_at_any_location(org_a, clinic) -> None:
    with organization_context(org_a):
        with pytest.raises(ValidationError, match="end must be after the start"):
            availability_add(
                practitioner=clinic["alpha"], location=clinic["main"], weekday=1, start=time(12), end=time(9)
            )
        # Monday 11:00-13:00 overlaps 09:00-12:00, even at another location: one place at a time.
        with pytest.raises(ValidationError, match="overlaps 09:00–12:00 at Main"):
            availability_add(
                practitioner=clinic["alpha"], location=clinic["annex"], weekday=0, start=time(11), end=time(13)
            )
        # Back to back, another weekday, another practitioner: fine.
        availability_add(
            practitioner=clinic["alpha"], location=clinic["annex"], weekday=0, start=time(12), end=time(13)
        )
        availability_add(practitioner=clinic["alpha"], location=clinic["main"], weekday=1, start=time(9), end=time(12))
        availability_add(practitioner=clinic["free"], location=clinic["main"], weekday=6, start=time(9), end=time(12))
        assert Availability.objects.filter(practitioner=clinic["alpha"]).count() == 4


def test_availability_exception_validation(org_a, clinic) -> None:
    with organization_context(org_a):
        with pytest.raises(ValidationError, match="both a start and an end"):
            availability_exception_add(practitioner=clinic["alpha"], date=MONDAY, start=time(9))
        with pytest.raises(ValidationError, match="need a location"):
            availability_exception_add(
                practitioner=clinic["alpha"], date=MONDAY, kind=ExceptionKind.EXTRA, start=time(13), end=time(14)
            )
        availability_exception_add(practitioner=clinic["alpha"], date=MONDAY, note="Conference")  # whole day off


# -- Booking: refused outside availability, accepted with an override and a reason (audited) --------


def test_booking_outside_availability_is_refused_with_the_hours(org_a, clinic) -> None:
    with organization_context(org_a):
        with pytest.raises(ValidationError) as refused:
            _book(clinic, _at(13))
        message = " ".join(refused.value.messages)
        assert "Dr. Alpha sees patients at Main 09:00–12:00 on Mondays (America/Chicago)" in message
        assert "Book outside availability" in message
        # Running past the window's end is outside too; another day with no hours says so.
        with pytest.raises(ValidationError, match="09:00–12:00"):
            _book(clinic, _at(11, 45))
        with pytest.raises(ValidationError, match="does not see patients at Main on Tue 4 Mar 2031"):
            _book(clinic, _at(10, day=MONDAY + timedelta(days=1)))
        # At the annex (no hours there) too.
        with pytest.raises(ValidationError, match="does not see patients at Annex"):
            _book(clinic, _at(10), location=clinic["annex"])
        inside = _book(clinic, _at(11, 30))
        assert inside.availability_override is False
        # A practitioner with no hours set books as before.
        _book(clinic, _at(20), practitioner=clinic["free"])
        assert Appointment.objects.count() == 2


def test_override_needs_a_reason_and_is_kept_and_audited(org_a, clinic) -> None:
    with organization_context(org_a):
        with pytest.raises(ValidationError) as no_reason:
            _book(clinic, _at(13), availability_override=True, override_reason="  ")
        assert no_reason.value.message_dict == {
            "availability_override_reason": ["Say why this visit is booked outside the practitioner's availability."]
        }
        booked = _book(clinic, _at(13), availability_override=True, override_reason="Dr. Alpha stays late for her")
        stored = Appointment.objects.get(pk=booked.pk)
        assert stored.availability_override is True
        assert stored.availability_override_reason == "Dr. Alpha stays late for her"
        entry = LogEntry.objects.get(
            content_type=ContentType.objects.get_for_model(Appointment),
            object_id=booked.pk,
            action=LogEntry.Action.CREATE,
        )
        assert entry.changes_dict["availability_override"] == ["None", "True"]
        # The reason is free text: in the audit entry only as redacted, like every encrypted field.
        assert "stays late" not in str(entry.changes)
        # An override that is not needed is not recorded.
        inside = _book(clinic, _at(9), patient=clinic["other"], availability_override=True, override_reason="x")
        assert (inside.availability_override, inside.availability_override_reason) == (False, "")


def test_time_off_refuses_even_a_practitioner_without_hours(org_a, clinic) -> None:
    with organization_context(org_a):
        availability_exception_add(
            practitioner=clinic["free"], date=MONDAY, start=time(12), end=time(14), note="Dentist"
        )
        with pytest.raises(ValidationError, match=r"Dr. Free is off 12:00–14:00 on Mon 3 Mar 2031 \(Dentist\)"):
            _book(clinic, _at(13, 30), practitioner=clinic["free"])
        _book(clinic, _at(14), practitioner=clinic["free"])
        # Extra hours open a window the week does not have.
        availability_exception_add(
            practitioner=clinic["alpha"], date=MONDAY, kind=ExceptionKind.EXTRA, location=clinic["main"],
            start=time(15), end=time(16),
        )  # fmt: skip
        _book(clinic, _at(15), patient=clinic["other"])


def test_rescheduling_checks_availability_too(org_a, clinic) -> None:
    from patients.scheduling.services import appointment_reschedule

    with organization_context(org_a):
        visit = _book(clinic, _at(9))
        with pytest.raises(ValidationError, match="09:00–12:00"):
            appointment_reschedule(appointment=visit, starts_at=_at(16), ends_at=_at(16, 30))
        moved = appointment_reschedule(
            appointment=visit, starts_at=_at(16), ends_at=_at(16, 30), availability_override=True, override_reason="Ok"
        )
        assert moved.availability_override is True


def test_booking_form_shows_the_refusal_and_books_with_the_override(client_for, frontdesk_user, org_a, clinic) -> None:
    url = reverse("patients:appointment_create", args=[clinic["patient"].pk])
    form = {
        "practitioner": clinic["alpha"].pk,
        "location": clinic["main"].pk,
        "kind": "in_person",
        "appointment_type": "follow_up",
        "date": "2031-03-03",
        "start_time": "13:00",
        "duration": "30",
    }
    client = client_for(frontdesk_user)
    refused = client.post(url, form)
    assert refused.status_code == 400
    assert "sees patients at Main 09:00–12:00 on Mondays" in refused.content.decode()
    missing = client.post(url, {**form, "availability_override": "on"})
    assert missing.status_code == 400 and "Say why this visit is booked" in missing.content.decode()
    booked = client.post(url, {**form, "availability_override": "on", "override_reason": "Agreed by phone"})
    assert booked.status_code == 302
    with organization_context(org_a):
        visit = Appointment.objects.get()
        assert visit.availability_override_reason == "Agreed by phone"
    detail = client.get(reverse("patients:appointment_detail", args=[visit.pk])).content.decode()
    assert 'Outside availability</dt><dd data-testid="availability-override">Agreed by phone' in detail


# -- Day grid -------------------------------------------------------------------------------------


def _day(client, **params):
    return client.get(reverse("patients:appointment_day"), params)


def test_day_grid_places_visits_and_computes_open_slots(org_a, clinic) -> None:
    with organization_context(org_a):
        _book(clinic, _at(10))  # 10:00-10:30: two slots
        appointment_set_status(appointment=_book(clinic, _at(11), patient=clinic["other"]), status="cancelled")
        grid = day_grid(
            day=MONDAY, zone=CHICAGO, columns=[clinic["alpha"], clinic["free"]], location=clinic["main"],
            now=timezone.now(),
        )  # fmt: skip
    labels = [row.label for row in grid.rows]
    alpha = {row.label: row.cells[0] for row in grid.rows}
    free = {row.label: row.cells[1] for row in grid.rows}
    # 09:00-12:00 in quarter hours, less the visit's two: ten open slots; the cancelled visit frees 11:00.
    assert [label for label, cell in alpha.items() if cell.state == "open"] == [
        "09:00", "09:15", "09:30", "09:45", "10:30", "10:45", "11:00", "11:15", "11:30", "11:45",
    ]  # fmt: skip
    assert alpha["10:00"].state == "visit" and alpha["10:00"].rowspan == 2 and alpha["10:15"].state == "covered"
    assert [a.patient.family_name for a in alpha["10:00"].appointments] == ["Gridley"]
    assert alpha["12:00"].state == "closed" and alpha["08:45"].state == "closed"
    # No hours set (and no opening hours at Main): every slot is open; the rows are the working day.
    assert all(cell.state == "open" for cell in free.values())
    assert labels[0] == "08:00" and labels[-1] == "17:45" and len(labels) == 40
    with organization_context(org_a):
        late = _book(clinic, _at(21), practitioner=clinic["free"])
        wider = day_grid(
            day=MONDAY, zone=CHICAGO, columns=[clinic["free"]], location=clinic["main"], now=late.created_at
        )
    assert wider.rows[-1].label == "21:15"  # widened to the visit


def test_day_grid_is_dst_correct_and_leaves_out_the_missing_hour(org_a, clinic) -> None:
    with organization_context(org_a):
        availability_add(practitioner=clinic["alpha"], location=clinic["main"], weekday=6, start=time(0), end=time(6))
        grid = day_grid(
            day=SPRING_FORWARD, zone=CHICAGO, columns=[clinic["alpha"]], location=clinic["main"], now=timezone.now()
        )
    times = [row.starts_at.strftime("%H:%M") for row in grid.rows]
    open_times = [row.starts_at.strftime("%H:%M") for row in grid.rows if row.cells[0].state == "open"]
    # 00:00-06:00 local on a 23-hour day: 20 quarter hours, 02:00-02:45 do not exist.
    assert len(open_times) == 20 and "02:15" not in times
    assert times[times.index("01:45") + 1] == "03:00"
    assert grid.rows[0].label.endswith("CST") and grid.rows[-1].label.endswith("CDT")


def test_day_view_shows_the_visit_in_the_organization_zone(client_for, frontdesk_user, org_a, clinic) -> None:
    with organization_context(org_a):
        _book(clinic, _at(9, 30))
    response = _day(client_for(frontdesk_user), date="2031-03-03", location=clinic["main"].pk)
    assert response.status_code == 200
    html = response.content.decode()
    assert "09:30–10:00" in html and "Ida Gridley" in html  # 15:30 UTC shown as 09:30 in Chicago
    grid = response.context["grid"]
    row = next(r for r in grid.rows if r.label == "09:30")
    assert row.cells[0].state == "visit"
    # The open slot links to the booking form with ids, date and time only.
    open_cell = next(r for r in grid.rows if r.label == "09:00").cells[0]
    assert open_cell.book_url == (
        f"/patients/appointments/book/?practitioner={clinic['alpha'].pk}&location={clinic['main'].pk}"
        "&date=2031-03-03&time=09%3A00"
    )
    # A past day has no open slot.
    past = _day(client_for(frontdesk_user), date="2020-03-02", location=clinic["main"].pk)
    assert 'data-testid="open-slot"' not in past.content.decode()


def test_day_view_columns_follow_the_location_and_the_practitioner(client_for, nurse_user, org_a, clinic) -> None:
    client = client_for(nurse_user)
    at_main = _day(client, date="2031-03-03", location=clinic["main"].pk).context["grid"].columns
    assert [p.display_name for p in at_main] == ["Dr. Alpha", "Dr. Free"]
    at_annex = _day(client, date="2031-03-03", location=clinic["annex"].pk).context["grid"].columns
    assert [p.display_name for p in at_annex] == ["Dr. Free"]  # Alpha has no hours at the annex
    one = _day(client, date="2031-03-03", location=clinic["main"].pk, practitioner=clinic["free"].pk)
    assert [p.display_name for p in one.context["grid"].columns] == ["Dr. Free"]


def test_day_and_month_views_personas(
    client_for, frontdesk_user, provider_user, nurse_user, analyst_user, other_org_user, org_a, org_b, clinic
) -> None:
    for user in (frontdesk_user, provider_user, nurse_user):
        assert _day(client_for(user), date="2031-03-03").status_code == 200
        assert client_for(user).get(reverse("patients:appointment_month")).status_code == 200
    assert _day(client_for(analyst_user)).status_code == 403
    assert client_for(analyst_user).get(reverse("patients:appointment_month")).status_code == 403
    other = client_for(other_org_user)
    assert _day(other).status_code == 200  # its own organization's day
    for params in ({"location": clinic["main"].pk}, {"practitioner": clinic["alpha"].pk}):
        assert _day(other, **params).status_code == 404
        assert other.get(reverse("patients:appointment_month"), params).status_code == 404
        assert other.get(reverse("patients:appointment_book"), params).status_code == 404


@pytest.mark.parametrize(
    "value", ["abc", "99999999999999999999", "-1", "\x00", "9999-12-31", "0001-01-01", "", "x" * 3000]
)
def test_day_month_and_booking_pages_survive_hostile_query_values(client_for, frontdesk_user, clinic, value) -> None:
    client = client_for(frontdesk_user)
    params = {"date": value, "location": value, "practitioner": value, "time": value}
    for name in ("appointment_day", "appointment_month", "appointment_book"):
        assert client.get(reverse(f"patients:{name}"), params).status_code == 200, name
    assert client.get(reverse("patients:appointment_book"), {"time": "25:99"}).status_code == 200


def test_month_view_counts_visits_by_local_day(client_for, frontdesk_user, org_a, clinic) -> None:
    with organization_context(org_a):
        _book(clinic, _at(9))
        _book(clinic, _at(11), patient=clinic["other"])
        # 23:30 in Chicago on Monday is Tuesday in UTC: it counts on Monday.
        _book(clinic, _at(23, 30), practitioner=clinic["free"])
        appointment_set_status(appointment=_book(clinic, _at(10), patient=clinic["other"]), status="cancelled")
    response = client_for(frontdesk_user).get(reverse("patients:appointment_month"), {"date": "2031-03-17"})
    assert response.status_code == 200
    days = {cell.day: cell.count for week in response.context["weeks"] for cell in week}
    assert days[MONDAY] == 3 and days[MONDAY + timedelta(days=1)] == 0
    assert min(days) == date(2031, 2, 24) and max(days) == date(2031, 4, 6)  # whole weeks, Monday first
    html = response.content.decode()
    assert "3 visits" in html and "Gridley" not in html  # counts only
    assert f"{reverse('patients:appointment_day')}?date=2031-03-03" in html
    only_free = client_for(frontdesk_user).get(
        reverse("patients:appointment_month"), {"date": "2031-03-17", "practitioner": clinic["free"].pk}
    )
    assert {c.day: c.count for w in only_free.context["weeks"] for c in w}[MONDAY] == 1


# -- Booking from an empty slot ---------------------------------------------------------------------


def test_book_from_a_slot_finds_the_patient_books_and_lands_on_the_day(
    client_for, frontdesk_user, org_a, clinic
) -> None:
    client = client_for(frontdesk_user)
    slot = {"practitioner": clinic["alpha"].pk, "location": clinic["main"].pk, "date": "2031-03-03", "time": "09:15"}
    url = reverse("patients:appointment_book") + "?" + "&".join(f"{k}={v}" for k, v in slot.items())
    page = client.get(url)
    assert page.status_code == 200
    initial = page.context["form"].initial
    assert (initial["practitioner"], initial["location"], str(initial["date"]), initial["start_time"]) == (
        clinic["alpha"].pk, clinic["main"].pk, "2031-03-03", time(9, 15),
    )  # fmt: skip
    fields = {
        "practitioner": clinic["alpha"].pk,
        "location": clinic["main"].pk,
        "kind": "in_person",
        "appointment_type": "new_patient",
        "date": "2031-03-03",
        "start_time": "09:15",
        "duration": "15",
    }
    found = client.post(url, {**fields, "action": "search", "q": "Gridley"})
    assert found.status_code == 200 and [p.pk for p in found.context["results"]] == [clinic["patient"].pk]
    assert found.context["form"].initial["appointment_type"] == "new_patient"  # what was typed is kept
    no_patient = client.post(url, {**fields, "action": "book"})
    assert no_patient.status_code == 400 and "Find and choose the patient first." in no_patient.content.decode()
    booked = client.post(url, {**fields, "action": "book", "patient": clinic["patient"].pk})
    assert booked.status_code == 302
    assert booked.url == f"{reverse('patients:appointment_day')}?date=2031-03-03&location={clinic['main'].pk}"
    day = client.get(booked.url)
    assert "Gridley" in day.content.decode()
    with organization_context(org_a):
        visit = Appointment.objects.get()
        assert (visit.starts_at, visit.ends_at, visit.appointment_type) == (_at(9, 15), _at(9, 30), "new_patient")


def test_book_from_a_slot_refuses_outside_availability_and_other_organizations(
    client_for, frontdesk_user, analyst_user, org_a, org_b, clinic
) -> None:
    client = client_for(frontdesk_user)
    url = reverse("patients:appointment_book")
    fields = {
        "practitioner": clinic["alpha"].pk,
        "location": clinic["main"].pk,
        "kind": "in_person",
        "appointment_type": "follow_up",
        "date": "2031-03-03",
        "start_time": "12:00",
        "duration": "15",
        "action": "book",
        "patient": clinic["patient"].pk,
    }
    refused = client.post(url, fields)
    assert refused.status_code == 400 and "09:00–12:00 on Mondays" in refused.content.decode()
    assert refused.context["chosen"] == clinic["patient"]  # still chosen, to fix the time
    with organization_context(org_b):
        stranger = PatientFactory()
    assert client.post(url, {**fields, "start_time": "09:00", "patient": stranger.pk}).status_code == 404
    assert client_for(analyst_user).get(url).status_code == 403
    with organization_context(org_a):
        assert not Appointment.objects.exists()


# -- Recurring visits -----------------------------------------------------------------------------


def test_series_books_what_it_can_and_lists_the_conflicts(org_a, clinic) -> None:
    with organization_context(org_a):
        AppointmentFactory(
            patient=clinic["other"], practitioner=clinic["alpha"], location=clinic["main"],
            starts_at=_at(9, day=MONDAY + timedelta(weeks=2)),
        )  # fmt: skip
        result = appointment_series_book(
            patient=clinic["patient"], practitioner=clinic["alpha"], location=clinic["main"],
            starts_at=_at(9), ends_at=_at(9, 30), every_weeks=1, count=4,
        )  # fmt: skip
        assert [a.starts_at for a in result.booked] == [_at(9, day=MONDAY + timedelta(weeks=n)) for n in (0, 1, 3)]
        [(when, problems)] = result.refused
        assert when == _at(9, day=MONDAY + timedelta(weeks=2))
        assert problems == ["This practitioner already has an appointment at that time."]


def test_series_keeps_the_local_time_across_dst_and_stops_at_until(org_a, clinic) -> None:
    with organization_context(org_a):
        result = appointment_series_book(
            patient=clinic["patient"], practitioner=clinic["free"], location=clinic["main"],
            starts_at=_at(9, day=date(2031, 3, 4)), ends_at=_at(9, 30, day=date(2031, 3, 4)),
            every_weeks=2, until=date(2031, 4, 1),
        )  # fmt: skip
        local = [a.starts_at.astimezone(CHICAGO) for a in result.booked]
        assert [(d.date().isoformat(), d.strftime("%H:%M")) for d in local] == [
            ("2031-03-04", "09:00"), ("2031-03-18", "09:00"), ("2031-04-01", "09:00"),
        ]  # fmt: skip
        assert local[0].utcoffset() != local[1].utcoffset()  # CST, then CDT
        # Outside availability: refused occurrence by occurrence unless overridden.
        weekly = appointment_series_book(
            patient=clinic["other"], practitioner=clinic["alpha"], location=clinic["main"],
            starts_at=_at(11, 45), ends_at=_at(12, 15), every_weeks=1, count=2,
        )  # fmt: skip
        assert weekly.booked == [] and len(weekly.refused) == 2


def test_series_from_the_form_reports_booked_and_refused(client_for, frontdesk_user, org_a, clinic) -> None:
    with organization_context(org_a):
        AppointmentFactory(
            patient=clinic["other"], practitioner=clinic["alpha"], location=clinic["main"],
            starts_at=_at(10, day=MONDAY + timedelta(weeks=1)),
        )  # fmt: skip
    url = reverse("patients:appointment_create", args=[clinic["patient"].pk])
    form = {
        "practitioner": clinic["alpha"].pk,
        "location": clinic["main"].pk,
        "kind": "in_person",
        "appointment_type": "chronic_care",
        "date": "2031-03-03",
        "start_time": "10:00",
        "duration": "30",
        "repeat": "1",
    }
    client = client_for(frontdesk_user)
    neither = client.post(url, form)
    assert neither.status_code == 400 and "Say how many visits, or until when." in neither.content.decode()
    response = client.post(url, {**form, "repeat_count": "3"}, follow=True)
    html = response.content.decode()
    assert "Series booked: 2 of 3 visits." in html
    assert "Not booked, Mon 10 Mar 2031, 10:00: This practitioner already has an appointment at that time." in html
    with organization_context(org_a):
        assert Appointment.objects.filter(patient=clinic["patient"]).count() == 2


# -- The availability page (the clinic's administrator) ----------------------------------------------


def test_availability_page_adds_validates_and_removes(
    client_for, admin_user, frontdesk_user, org_a, org_b, clinic
) -> None:
    other_admin = UserFactory(username="admin@lake.example")
    MembershipFactory(user=other_admin, organization=org_b, role="admin")
    url = reverse("patients:availability") + f"?practitioner={clinic['free'].pk}"
    client = client_for(admin_user)
    assert client.get(url).status_code == 200
    added = client.post(
        url,
        {"action": "window", "window-location": clinic["main"].pk, "window-weekday": "4", "window-start": "08:00",
         "window-end": "12:00"},
    )  # fmt: skip
    assert added.status_code == 302
    overlap = client.post(
        url,
        {"action": "window", "window-location": clinic["annex"].pk, "window-weekday": "4", "window-start": "11:00",
         "window-end": "13:00"},
    )  # fmt: skip
    assert overlap.status_code == 400 and "overlaps 08:00–12:00 at Main" in overlap.content.decode()
    backwards = client.post(
        url,
        {"action": "window", "window-location": clinic["main"].pk, "window-weekday": "1", "window-start": "13:00",
         "window-end": "12:00"},
    )  # fmt: skip
    assert backwards.status_code == 400 and "end must be after the start" in backwards.content.decode()
    off = client.post(url, {"action": "exception", "exception-kind": "off", "exception-date": "2031-03-07"})
    assert off.status_code == 302
    with organization_context(org_a):
        window = Availability.objects.get(practitioner=clinic["free"])
        assert (window.weekday, window.start, window.end) == (4, time(8), time(12))
    assert client_for(frontdesk_user).get(url).status_code == 403
    assert client_for(other_admin).get(url).status_code == 404
    assert client_for(other_admin).post(reverse("patients:availability_remove", args=[window.pk])).status_code == 404
    client = client_for(admin_user)  # one test client: sign the administrator in again
    assert client.post(reverse("patients:availability_remove", args=[window.pk])).status_code == 302
    with organization_context(org_a):
        assert not Availability.objects.filter(practitioner=clinic["free"]).exists()


def test_day_view_query_count_does_not_grow_with_visits_or_practitioners(
    client_for, frontdesk_user, org_a, clinic
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(frontdesk_user)
    params = {"date": "2031-03-03", "location": clinic["main"].pk}
    client.get(reverse("patients:appointment_day"), params)
    counts = []
    for round_ in range(2):
        with organization_context(org_a):
            doctor = PractitionerFactory(display_name=f"Dr. Extra {round_}")
            availability_add(practitioner=doctor, location=clinic["main"], weekday=0, start=time(8), end=time(16))
            for hour in range(9, 9 + 1 + round_ * 4):
                AppointmentFactory(
                    patient=PatientFactory(), practitioner=doctor, location=clinic["main"],
                    starts_at=_at(hour), ends_at=_at(hour, 30),
                )  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("patients:appointment_day"), params)
        assert response.status_code == 200
        counts.append(len(queries))
    assert len(response.context["grid"].columns) == 4 and len(response.context["grid"].appointments) == 6
    assert counts[0] == counts[1], counts


# -- Waitlist (stretch) -----------------------------------------------------------------------------


def test_waitlist_add_list_book_and_remove(
    client_for, frontdesk_user, analyst_user, other_org_user, org_a, clinic
) -> None:
    client = client_for(frontdesk_user)
    add = reverse("patients:waitlist_add", args=[clinic["patient"].pk])
    assert client.get(add).status_code == 200
    backwards = client.post(add, {"earliest": "2031-03-05", "latest": "2031-03-01"})
    assert backwards.status_code == 400 and "must not be before its start" in backwards.content.decode()
    assert (
        client.post(add, {"earliest": "2031-03-01", "practitioner": clinic["alpha"].pk, "note": "Mornings"}).status_code
        == 302
    )
    with organization_context(org_a):
        waitlist_add(patient=clinic["other"], earliest=date(2031, 3, 10))  # not yet waiting on the 3rd
        entry = WaitlistEntry.objects.get(patient=clinic["patient"])
    listed = client.get(reverse("patients:waitlist"), {"date": "2031-03-03", "location": clinic["main"].pk})
    assert listed.status_code == 200 and [e.patient for e in listed.context["entries"]] == [clinic["patient"]]
    day = _day(client, date="2031-03-03", location=clinic["main"].pk).content.decode()
    assert "1 patient waiting for this day" in day
    # Booked from the waitlist: the patient comes chosen, and the entry is closed with the visit.
    book = (
        reverse("patients:appointment_book") + f"?waitlist={entry.pk}&practitioner={clinic['alpha'].pk}&date=2031-03-03"
    )
    page = client.get(book)
    assert page.status_code == 200 and page.context["chosen"] == clinic["patient"]
    fields = {
        "practitioner": clinic["alpha"].pk, "location": clinic["main"].pk, "kind": "in_person",
        "appointment_type": "follow_up", "date": "2031-03-03", "start_time": "09:00", "duration": "15",
        "action": "book", "patient": clinic["patient"].pk,
    }  # fmt: skip
    assert client.post(book, fields).status_code == 302
    with organization_context(org_a):
        entry.refresh_from_db()
        assert entry.status == WaitlistStatus.BOOKED and entry.appointment.patient == clinic["patient"]
        other = WaitlistEntry.objects.get(patient=clinic["other"])
    assert client.post(reverse("patients:waitlist_remove", args=[other.pk])).status_code == 302
    with organization_context(org_a):
        other.refresh_from_db()
        assert other.status == WaitlistStatus.REMOVED
    # Personas: the analyst 403, the other organization 404 for its ids.
    assert client_for(analyst_user).get(reverse("patients:waitlist")).status_code == 403
    stranger = client_for(other_org_user)
    assert stranger.get(reverse("patients:waitlist")).status_code == 200
    assert stranger.get(add).status_code == 404
    assert stranger.post(reverse("patients:waitlist_remove", args=[other.pk])).status_code == 404
    assert stranger.get(reverse("patients:appointment_book"), {"waitlist": entry.pk}).status_code == 404
