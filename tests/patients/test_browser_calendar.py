"""Issue #11 (calendar) in real Chromium: the front desk opens the day grid, clicks an empty slot
inside the practitioner's hours, finds and books a patient, and sees the visit in the grid; a time
outside the hours is refused with the hours. axe-core finds nothing on the pages visited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

import pytest
from django.utils import timezone

from healthcrm.tenancy import organization_context
from patients.scheduling.services import availability_add, waitlist_add
from tests.axe import axe_violations
from tests.factories import (
    PASSWORD,
    LocationFactory,
    MembershipFactory,
    OrganizationFactory,
    PatientFactory,
    PractitionerFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass
class Clinic:
    desk: Any
    location: Any
    practitioner: Any
    day: date


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)
    desk = UserFactory(username="desk@north.example")
    MembershipFactory(user=desk, organization=organization, role="frontdesk")
    # real-clock: the clinic's own date, two days ahead: every slot of that day is still to come
    day = timezone.now().astimezone(organization.zone).date() + timedelta(days=2)
    with organization_context(organization):
        location = LocationFactory(name="Main")
        practitioner = PractitionerFactory(display_name="Dr. Ada Grid")
        availability_add(
            practitioner=practitioner, location=location, weekday=day.weekday(), start=time(9), end=time(12)
        )
        patient = PatientFactory(given_name="Rosalind", family_name="Quenby", mrn="Q-1")
        waitlist_add(patient=patient, earliest=day, practitioner=practitioner)
    return Clinic(desk, location, practitioner, day)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def test_front_desk_books_an_empty_slot_from_the_day_grid(live_server: Any, page: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic.desk.username)
    page.goto(f"{base}/patients/appointments/day/?date={clinic.day.isoformat()}&location={clinic.location.pk}")
    # 09:00-12:00 in quarter hours: twelve open slots, nothing booked yet.
    expect(page.get_by_test_id("open-slot")).to_have_count(12)
    expect(page.get_by_test_id("grid-appointment")).to_have_count(0)
    assert axe_violations(page) == []

    page.get_by_role("link", name="Book Dr. Ada Grid at 09:30").click()
    expect(page.get_by_label("Start time")).to_have_value("09:30")
    expect(page.get_by_label("Practitioner")).to_have_value(str(clinic.practitioner.pk))
    page.get_by_label("Find a patient").fill("Quenby")
    page.get_by_role("button", name="Search").click()
    patient = page.get_by_role("radio", name="Quenby, Rosalind", exact=False)
    expect(patient).to_be_checked()
    assert "Quenby" not in page.url  # the search was POSTed
    assert axe_violations(page) == []
    page.get_by_label("Type").select_option(label="New patient")
    page.get_by_role("button", name="Book").click()

    page.wait_for_url(f"**/patients/appointments/day/?date={clinic.day.isoformat()}&location={clinic.location.pk}")
    expect(page.locator(".messages")).to_contain_text("Appointment booked.")
    visit = page.get_by_test_id("grid-appointment")
    expect(visit).to_have_count(1)
    expect(visit).to_contain_text("09:30–09:45")
    expect(visit).to_contain_text("Rosalind Quenby")
    expect(page.get_by_test_id("open-slot")).to_have_count(11)

    # A time outside the practitioner's hours is refused, with the hours, until overridden.
    page.get_by_role("link", name="Book Dr. Ada Grid at 11:00").click()
    page.get_by_label("Start time").fill("13:00")
    page.get_by_label("Find a patient").fill("Quenby")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("button", name="Book").click()
    expect(page.locator(".field.has-error")).to_contain_text("Dr. Ada Grid sees patients at Main 09:00–12:00")
    assert axe_violations(page) == []
    page.get_by_label("Book outside availability").check()
    page.get_by_label("Why outside availability").fill("Agreed with Dr. Grid")
    page.get_by_role("button", name="Book").click()
    page.wait_for_url("**/patients/appointments/day/**")
    expect(page.get_by_test_id("grid-appointment")).to_have_count(2)

    # The month shows the two visits on their day, and leads back to it.
    page.get_by_role("link", name="Month", exact=True).click()
    day_link = page.get_by_test_id(f"month-day-{clinic.day.isoformat()}")
    expect(day_link).to_contain_text("2 visits")
    assert axe_violations(page) == []
    day_link.click()
    expect(page.get_by_test_id("grid-appointment")).to_have_count(2)

    # The patient was waiting for this day: the grid says so and the waitlist lists her.
    page.get_by_test_id("waiting").get_by_role("link").click()
    expect(page.get_by_test_id("waitlist").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("waitlist")).to_contain_text("Quenby, Rosalind")
    assert axe_violations(page) == []


def test_the_administrator_sets_hours_on_the_availability_page(live_server: Any, page: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    with organization_context(clinic.location.organization):
        admin = UserFactory(username="admin@north.example")
        MembershipFactory(user=admin, organization=clinic.location.organization, role="admin")
    base = live_server.url
    _sign_in(page, base, admin.username)
    page.goto(f"{base}/patients/availability/?practitioner={clinic.practitioner.pk}")
    expect(page.get_by_test_id("weekly-hours").locator("tbody tr")).to_have_count(1)
    assert axe_violations(page) == []
    weekly = page.locator("form", has=page.get_by_role("button", name="Add weekly hours"))
    weekly.get_by_label("Location").select_option(label="Main")
    weekly.get_by_label("Weekday").select_option(str((clinic.day.weekday() + 1) % 7))
    weekly.get_by_label("Start").fill("13:00")
    weekly.get_by_label("End").fill("12:00")
    page.get_by_role("button", name="Add weekly hours").click()
    expect(page.locator("form", has=page.get_by_role("button", name="Add weekly hours"))).to_contain_text(
        "The end must be after the start"
    )
    assert axe_violations(page) == []
    page.locator("form", has=page.get_by_role("button", name="Add weekly hours")).get_by_label("End").fill("17:00")
    page.get_by_role("button", name="Add weekly hours").click()
    expect(page.locator(".messages")).to_contain_text("Availability saved.")
    expect(page.get_by_test_id("weekly-hours").locator("tbody tr")).to_have_count(2)
