"""Issue #4 in real Chromium: an organization admin creates an appointment-reminder rule in the rule
editor, sees tomorrow's reminders scheduled on the outbox page, then a correctly signed inbound
"STOP" reaches the Twilio webhook of the live server and the browser shows the opt-out (the STOP
keyword on the patient's communications) and that patient's pending reminders cancelled while
another patient's stay pending."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone
from twilio.request_validator import RequestValidator

from engagement.models import Consent, ConsentStatus, OutboundMessage, Rule
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import ACCOUNT, TOKEN, configure
from tests.factories import (
    PASSWORD,
    AppointmentFactory,
    MembershipFactory,
    OrganizationFactory,
    PatientFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = "+13125550142"


@dataclass
class Clinic:
    organization: Any
    admin: Any
    stopper: Any
    other: Any


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="UTC", require_mfa=False)
    admin = UserFactory(username="admin@north.example")
    MembershipFactory(user=admin, organization=organization, role="admin")
    # Quiet hours off, so the reminders' next attempt is their due time whatever the clock says.
    configure(organization, quiet_start="00:00", quiet_end="00:00")
    # Tomorrow, 24 h and 20 min from now: the 24 h reminder is due within the materialize lookahead.
    # real-clock: a day ahead of whatever now is; quiet hours are off, the zone is UTC
    starts_at = (timezone.now() + timedelta(hours=24, minutes=20)).replace(second=0, microsecond=0)
    with organization_context(organization):
        stopper = PatientFactory(
            given_name="Rosalind", family_name="Quenby", phone_mobile=PHONE, preferred_channel="sms", timezone=""
        )
        other = PatientFactory(
            given_name="Samuel", family_name="Abbott", phone_mobile="+13125550143", preferred_channel="sms", timezone=""
        )
        for patient in (stopper, other):
            AppointmentFactory(patient=patient, starts_at=starts_at, ends_at=starts_at + timedelta(minutes=30))
    return Clinic(organization, admin, stopper, other)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def _row(page: Any, name: str) -> Any:
    return page.get_by_test_id("outbox-table").locator("tbody tr", has_text=name)


def test_admin_creates_reminder_rule_sees_outbox_and_inbound_stop_opts_out(
    live_server: Any, page: Any, clinic: Clinic, settings: Any, monkeypatch: Any
) -> None:
    from playwright.sync_api import expect

    from engagement import tasks

    base = live_server.url
    # The URL the webhook validates is PUBLIC_BASE_URL + path: the live server's own address.
    settings.PUBLIC_BASE_URL = base
    # No worker here: the rule editor's after-commit materialize task runs in the server thread.
    monkeypatch.setattr(
        tasks.rule_materialize_task,
        "delay",
        lambda organization_id, rule_id: tasks.rule_materialize_task.apply(args=(organization_id, rule_id)),
    )

    _sign_in(page, base, clinic.admin.username)

    # 1. The rule editor: a 24 h appointment reminder.
    page.goto(base + "/engagement/rules/")
    expect(page.get_by_text("No rules yet.")).to_be_visible()
    page.get_by_role("link", name="New rule").click()
    page.wait_for_url(base + "/engagement/rules/new/")
    page.get_by_label("Name").fill("Day-before reminder")
    page.get_by_label("Kind").select_option("appointment_reminder")
    page.get_by_label("Template").select_option("appointment_reminder")
    page.get_by_label("Hours before the appointment").fill("24")
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url(base + "/engagement/rules/")
    expect(page.get_by_text("Rule saved; its messages are being scheduled.")).to_be_visible()
    expect(page.locator("table tbody tr", has_text="Day-before reminder")).to_contain_text("24")

    with organization_context(clinic.organization):
        rule = Rule.objects.get(name="Day-before reminder")
        assert rule.offsets_hours == [24] and rule.kind == "appointment_reminder" and rule.is_active
        # Materialized by the rule_materialize task the save scheduled after commit (no "run now" button).
        assert OutboundMessage.objects.filter(rule=rule, status="pending").count() == 2

    # 2. The outbox: one pending SMS reminder per patient with an appointment tomorrow.
    page.goto(base + "/engagement/outbox/")
    rows = page.get_by_test_id("outbox-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    for name in ("Rosalind Quenby", "Samuel Abbott"):
        row = _row(page, name)
        expect(row).to_have_attribute("data-status", "pending")
        expect(row).to_contain_text("Day-before reminder")
        expect(row).to_contain_text("SMS")

    # 3. Twilio posts the patient's "STOP", signed for the exact URL the app validates.
    path = f"/integrations/twilio/{clinic.organization.slug}/inbound/"
    params = {"From": PHONE, "To": "+13125550000", "Body": "STOP", "MessageSid": "SMbrowser1", "AccountSid": ACCOUNT}
    unsigned = requests.post(base + path, data=params, timeout=10)
    assert unsigned.status_code == 403  # the webhook refuses what Twilio did not sign
    signature = RequestValidator(TOKEN).compute_signature(settings.PUBLIC_BASE_URL + path, params)
    response = requests.post(base + path, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert response.status_code == 200, response.text
    assert "you are unsubscribed" in response.text  # the TwiML reply
    with organization_context(clinic.organization):
        consent = Consent.objects.get(patient_id=clinic.stopper.pk, kind="sms")
        assert consent.status == ConsentStatus.OPTED_OUT and consent.source == "sms_keyword"
        assert not Consent.objects.filter(patient_id=clinic.other.pk, status=ConsentStatus.OPTED_OUT).exists()

    # 4. The browser: the patient's communications show the STOP, the reminder cancelled ...
    page.goto(base + f"/engagement/patients/{clinic.stopper.pk}/communications/")
    history = page.get_by_test_id("communication-history")
    expect(history.locator("li", has_text="Received SMS")).to_contain_text("STOP")
    expect(history.locator("li", has_text="Day-before reminder")).to_contain_text("Cancelled")

    # ... and on the outbox, their pending message is cancelled (opted out); the other patient's is not.
    page.goto(base + "/engagement/outbox/")
    stopped = _row(page, "Rosalind Quenby")
    expect(stopped).to_have_attribute("data-status", "cancelled")
    expect(stopped).to_contain_text("Cancelled")
    expect(stopped).to_contain_text("The patient opted out.")
    expect(_row(page, "Samuel Abbott")).to_have_attribute("data-status", "pending")
    page.get_by_label("Status").select_option("pending")
    expect(page.get_by_test_id("outbox-table").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("outbox-table")).not_to_contain_text("Rosalind")
