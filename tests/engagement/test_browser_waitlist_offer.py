"""Issue #11 (calendar: "a waitlist that is offered a freed slot, by SMS, first to confirm gets it") in
real Chromium. The front desk cancels a visit; the two patients waiting for that day get an SMS (the
fake Twilio) carrying a link; the first opens it on a phone (390x844), takes the slot, and the front
desk's day grid shows her visit; the second's link says, politely, that the slot was taken, and the
waitlist shows each offer's status. axe-core finds nothing on any page (the patient's page included,
checked where the test opens it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from django.utils import timezone

from engagement.models import OutboundMessage, Rule
from engagement.services import template_save
from healthcrm.tenancy import organization_context
from patients.models import Appointment
from patients.scheduling.services import appointment_book, waitlist_add
from tests.axe import axe_violations
from tests.engagement.conftest import configure
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

ROSALIND, SAMUEL, BEA = "+13125550161", "+13125550162", "+13125550163"
SMS = (
    "Hi {{ first_name }}, {{ clinic_name }} has an earlier visit free: {{ appointment_time }}. "
    "First to confirm gets it: {{ slot_link }}"
)


@dataclass
class Clinic:
    organization: Any
    desk: Any
    location: Any
    visit: Any
    day: date


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)
    desk = UserFactory(username="desk@north.example")
    MembershipFactory(user=desk, organization=organization, role="frontdesk")
    # Quiet hours off: the browser runs on the real clock, and the offers must go whatever the hour.
    configure(organization, quiet_start="00:00", quiet_end="00:00")
    # real-clock: the clinic's own date, two days ahead: the visit is still to come whatever the hour
    day = timezone.now().astimezone(organization.zone).date() + timedelta(days=2)
    with organization_context(organization):
        template_save(key="waitlist_offer", language="en", channel="sms", body=SMS)
        Rule.objects.create(name="Waitlist offers", kind="waitlist_offer", template_key="waitlist_offer")
        location = LocationFactory(name="Main")
        doctor = PractitionerFactory(display_name="Dr. Ada Grid")

        def patient(given: str, family: str, phone: str) -> Any:
            return PatientFactory(
                given_name=given, family_name=family, phone_mobile=phone, preferred_channel="sms", timezone=""
            )

        starts = datetime.combine(day, time(10), tzinfo=organization.zone)
        visit = appointment_book(
            patient=patient("Bea", "Booked", BEA),
            practitioner=doctor,
            location=location,
            starts_at=starts,
            ends_at=starts + timedelta(minutes=30),
        )
        waitlist_add(patient=patient("Rosalind", "Quenby", ROSALIND), earliest=day - timedelta(days=1))
        waitlist_add(patient=patient("Samuel", "Tarrant", SAMUEL), earliest=day, practitioner=doctor)
    return Clinic(organization, desk, location, visit, day)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def _link_in(sms: str) -> str:
    found = re.search(r"(http://\S+/engagement/l/\S+/)", sms)
    assert found, sms
    return found.group(1)


def _phone(browser: Any) -> Any:
    """The patient's phone: a fresh browser context (no staff session) at 390x844."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    return context


def _fits(tab: Any) -> None:
    widths = tab.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], widths


def test_a_cancelled_visit_goes_to_the_first_waiting_patient_who_takes_it(
    live_server: Any, page: Any, browser: Any, clinic: Clinic, fake_twilio: Any, monkeypatch: Any, settings: Any
) -> None:
    from playwright.sync_api import expect

    from engagement import tasks

    # No worker here: the send tasks the cancel schedules after commit run in the server thread.
    monkeypatch.setattr(
        tasks.outbox_send_task,
        "delay",
        lambda organization_id, message_id: tasks.outbox_send_task.apply(args=(organization_id, message_id)),
    )
    base = live_server.url
    settings.PUBLIC_BASE_URL = base  # the links in the SMS point at this server
    _sign_in(page, base, clinic.desk.username)

    # The front desk cancels Bea's visit, saying why.
    page.goto(f"{base}/patients/appointments/{clinic.visit.pk}/")
    page.get_by_role("link", name="Cancel visit…").click()
    page.get_by_label("Why is the visit cancelled?").select_option(label="Patient unwell")
    page.get_by_role("button", name="Cancel the visit").click()
    expect(page.locator(".messages")).to_contain_text("Appointment cancelled.")

    # Both waiting patients got one SMS each: first name, time, clinic and a link; nothing else.
    texts = {sent.to: sent.body for sent in fake_twilio.accepted}
    assert set(texts) == {ROSALIND, SAMUEL}, texts
    assert texts[ROSALIND].startswith("Hi Rosalind, North Clinic has an earlier visit free: ")
    assert "10:00 AM" in texts[ROSALIND] and "Quenby" not in texts[ROSALIND]
    rosalind_link, samuel_link = _link_in(texts[ROSALIND]), _link_in(texts[SAMUEL])

    # The staff's waitlist shows both offers.
    page.goto(f"{base}/patients/appointments/waitlist/")
    expect(page.get_by_test_id("offer-status")).to_have_count(2)
    for cell in page.get_by_test_id("offer-status").all():
        expect(cell).to_contain_text("Offered")

    # Rosalind opens her link on her phone: no sign-in, the clinic, the time, one button.
    phone = _phone(browser)
    try:
        tab = phone.new_page()
        tab.goto(rosalind_link)
        expect(tab.get_by_role("heading", name="North Clinic")).to_be_visible()
        expect(tab.get_by_test_id("slot-when")).to_contain_text("10:00")
        assert "Quenby" not in tab.content()
        _fits(tab)
        assert axe_violations(tab) == []
        take = tab.get_by_role("button", name="Take this slot")
        box = take.bounding_box()
        assert box is not None and box["height"] >= 44  # a thumb-sized target
        take.click()
        expect(tab.get_by_role("status")).to_contain_text("This visit is yours")
        _fits(tab)
        assert axe_violations(tab) == []

        # Samuel's link, opened later: the slot was taken; he stays on the waitlist.
        tab.goto(samuel_link)
        expect(tab.get_by_role("status")).to_contain_text("this slot was taken by someone else")
        expect(tab.get_by_role("button", name="Take this slot")).to_have_count(0)
        assert axe_violations(tab) == []
    finally:
        phone.close()

    # The front desk's day grid shows Rosalind's visit in the freed slot.
    page.goto(f"{base}/patients/appointments/day/?date={clinic.day.isoformat()}&location={clinic.location.pk}")
    visit = page.get_by_test_id("grid-appointment")
    expect(visit).to_have_count(1)
    expect(visit).to_contain_text("Rosalind Quenby")
    expect(visit).to_contain_text("10:00–10:30")

    # The waitlist: Samuel still waits, his offer taken by another; the offers table says who took it.
    page.goto(f"{base}/patients/appointments/waitlist/")
    expect(page.get_by_test_id("waitlist").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("offer-status")).to_contain_text("Taken by another patient")
    expect(page.get_by_test_id("slot-offers")).to_contain_text("Quenby, Rosalind: Taken")
    with organization_context(clinic.organization):
        assert Appointment.objects.filter(status="booked").count() == 1
        assert OutboundMessage.objects.filter(subject_type="waitlist_offer", status="sent").count() == 2
