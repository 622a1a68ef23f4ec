"""Issue #11 in real Chromium, "a one-off SMS from the record": a nurse opens a patient, goes to the
Messages tab (a page of the record: layout, tabs, a way back; it was a bare fragment), sends an SMS
that goes once through the outbox to (fake) Twilio, and sees it in the history. axe-core finds no
violation on the pages visited; the header's bell is an SVG icon with a text label, and the CSP
refuses nothing on the way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from engagement.models import OutboundMessage
from healthcrm.tenancy import organization_context
from tests.axe import axe_violations
from tests.engagement.conftest import configure
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = "+13125550142"


@dataclass
class Clinic:
    organization: Any
    nurse: Any
    patient: Any


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="UTC", require_mfa=False)
    nurse = UserFactory(username="nurse@north.example")
    MembershipFactory(user=nurse, organization=organization, role="nurse")
    # Quiet hours off: the browser runs on the real clock, and the message must go whatever the hour.
    configure(organization, quiet_start="00:00", quiet_end="00:00")
    with organization_context(organization):
        patient = PatientFactory(
            given_name="Rosalind", family_name="Quenby", phone_mobile=PHONE, preferred_channel="sms", timezone=""
        )
    return Clinic(organization, nurse, patient)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def _no_violations(page: Any) -> None:
    violations = axe_violations(page)
    assert violations == [], violations


def test_a_one_off_sms_from_the_record(
    live_server: Any, page: Any, clinic: Clinic, fake_twilio: Any, monkeypatch: Any
) -> None:
    from playwright.sync_api import expect

    from engagement import tasks

    # No worker here: the send task the view schedules after commit runs in the server thread.
    monkeypatch.setattr(
        tasks.outbox_send_task,
        "delay",
        lambda organization_id, message_id: tasks.outbox_send_task.apply(args=(organization_id, message_id)),
    )
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)

    # The bell: an icon that is drawn (not an empty emoji box) and a word that says what it is.
    bell = page.get_by_test_id("notification-bell")
    expect(bell).to_have_text("Notifications")
    icon = bell.locator("svg")
    box = icon.bounding_box()
    assert box is not None and box["width"] >= 12 and box["height"] >= 12
    assert icon.get_attribute("aria-hidden") == "true"

    # The record, then its Messages tab (htmx), which is a page of the record with its own address.
    record = f"{base}/patients/{clinic.patient.pk}/"
    messages_url = f"{base}/engagement/patients/{clinic.patient.pk}/communications/"
    page.goto(record)
    tabs = page.get_by_role("navigation", name="Patient record")
    tabs.get_by_role("link", name="Messages").click()
    page.wait_for_url(messages_url)
    expect(page.get_by_role("heading", name="Send a message")).to_be_visible()
    expect(tabs.get_by_role("link", name="Messages")).to_have_attribute("aria-current", "page")
    _no_violations(page)
    page.reload()  # opened directly: the whole page, with layout and title
    expect(page).to_have_title("Patient · North Clinic")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rosalind Quenby")
    _no_violations(page)

    # Send a one-off SMS.
    expect(page.get_by_test_id("message-channels")).to_contain_text("Can send")
    page.get_by_label("SMS").check()
    page.get_by_role("textbox", name="Message").fill("Your forms are ready at the front desk.")
    page.get_by_role("button", name="Send message").click()
    page.wait_for_url(messages_url)
    expect(page.get_by_role("status")).to_contain_text("SMS queued: it goes now")
    history = page.get_by_test_id("communication-history")
    expect(history.locator("li", has_text="Staff message")).to_contain_text("Sent")
    _no_violations(page)

    # It went once, through the outbox, with the clinic's name before the text.
    [sent] = fake_twilio.accepted
    assert (sent.to, sent.body) == (PHONE, "North Clinic: Your forms are ready at the front desk.")
    with organization_context(clinic.organization):
        [message] = OutboundMessage.objects.all()
        assert (message.subject_type, message.status, message.sent_by_id) == ("staff_message", "sent", clinic.nurse.pk)

    # The way back: the Summary tab of the same record.
    tabs.get_by_role("link", name="Summary").click()
    page.wait_for_url(record)
    expect(page.get_by_role("heading", name="Demographics")).to_be_visible()
    assert refused == [], refused


def test_a_long_unbroken_name_does_not_widen_the_record_or_the_list(
    live_server: Any, page: Any, clinic: Clinic
) -> None:
    """#11 item 8: the longest given name the form takes (100 letters, no space) wraps; the patient
    page and the patient list keep the window's width."""
    with organization_context(clinic.organization):
        clinic.patient.given_name = "Q" * 100
        clinic.patient.save()
    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    for path in (f"/patients/{clinic.patient.pk}/", "/patients/"):
        page.goto(base + path)
        widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], (path, widths)
