"""Issue #15 item 1 in real Chromium: a nurse sends an education item from the record's Engagement
tab; it goes once through the outbox to (fake) Twilio; the patient opens the SMS's link on a phone
(no sign-in, a phone-sized window, no sideways scrolling, axe-core finds nothing) and reads it in
Spanish; the nurse then sees it opened on the tab."""

from __future__ import annotations

from typing import Any

import pytest

from engagement.education.services import education_item_save, education_version_save
from healthcrm.tenancy import organization_context
from tests.axe import axe_violations
from tests.engagement.conftest import configure
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = "+13125550142"


@pytest.fixture
def clinic(transactional_db: None) -> dict[str, Any]:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="UTC", require_mfa=False)
    nurse = UserFactory(username="nurse@north.example")
    MembershipFactory(user=nurse, organization=organization, role="nurse")
    # Quiet hours off: the browser runs on the real clock, and the message must go whatever the hour.
    configure(organization, quiet_start="00:00", quiet_end="00:00")
    with organization_context(organization):
        patient = PatientFactory(
            given_name="Lucía",
            family_name="Ferrando",
            phone_mobile=PHONE,
            preferred_channel="sms",
            preferred_language="es",
            timezone="",
        )
        item = education_item_save(key="asthma-inhaler", format="video", reading_level="easy")
        education_version_save(
            item=item,
            language="en",
            title="Using your inhaler",
            body="<p>Shake it, breathe out, press once as you breathe in slowly.</p>",
            video_url="https://video.example.org/inhaler",
        )
        education_version_save(
            item=item,
            language="es",
            title="Cómo usar su inhalador",
            body="<p>Agítelo, saque el aire y presione una vez al inhalar despacio.</p>",
            video_url="https://video.example.org/inhaler-es",
        )
    return {"organization": organization, "nurse": nurse, "patient": patient}


def test_a_nurse_sends_education_and_the_patient_opens_it_on_a_phone(
    live_server: Any, page: Any, browser: Any, clinic: dict[str, Any], fake_twilio: Any, monkeypatch: Any
) -> None:
    from playwright.sync_api import expect

    from engagement import tasks

    monkeypatch.setattr(
        tasks.outbox_send_task,
        "delay",
        lambda organization_id, message_id: tasks.outbox_send_task.apply(args=(organization_id, message_id)),
    )
    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(clinic["nurse"].username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")

    patient = clinic["patient"]
    tab_url = f"{base}/engagement/patients/{patient.pk}/engagement/"
    page.goto(f"{base}/patients/{patient.pk}/")
    tabs = page.get_by_role("navigation", name="Patient record")
    tabs.get_by_role("link", name="Engagement").click()
    page.wait_for_url(tab_url)
    expect(page.get_by_role("heading", name="Send education")).to_be_visible()
    page.get_by_label("Education to send").select_option(label="Using your inhaler (video)")
    page.get_by_role("button", name="Send education").click()
    page.wait_for_url(tab_url)
    expect(page.get_by_role("status")).to_contain_text("Education queued by sms")

    [sms] = fake_twilio.accepted
    assert sms.to == PHONE and "inhal" not in sms.body.lower()  # no topic on a lock screen
    # The link as sent (PUBLIC_BASE_URL), opened on the live server.
    link = base + sms.body[sms.body.index("/engagement/l/") :].split()[0]

    phone = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        reader = phone.new_page()
        reader.goto(link)
        expect(reader.get_by_role("heading", level=1)).to_have_text("Cómo usar su inhalador")
        expect(reader.get_by_role("link", name="Ver el video")).to_have_attribute(
            "href", "https://video.example.org/inhaler-es"
        )
        assert "Ferrando" not in reader.content()
        widths = reader.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], widths
        violations = axe_violations(reader)
        assert violations == [], violations
    finally:
        phone.close()

    page.reload()
    row = page.get_by_test_id("engagement-row")
    expect(row).to_contain_text("Cómo usar su inhalador")
    expect(row.locator("td").nth(4)).not_to_have_text("—")  # opened, with the time
