"""Issue 13, item 2 in real Chromium: the compliance officer finds a patient in the access log,
opens the patient's access report, filters it by dates and prints it (the print stylesheet hides
the navigation and the controls); an administrator reaches it from the patient page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine

from compliance.models import AccessLog
from healthcrm.tenancy import organization_context
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clinic(transactional_db: None) -> dict[str, Any]:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)
    officer = UserFactory(username="compliance@north.example")
    MembershipFactory(user=officer, organization=organization, role="compliance")
    admin = UserFactory(username="admin@north.example")
    MembershipFactory(user=admin, organization=organization, role="admin")
    nurse = UserFactory(username="nurse@north.example", first_name="Nora", last_name="Nurse")
    MembershipFactory(user=nurse, organization=organization, role="nurse")
    with organization_context(organization):
        patient = PatientFactory(given_name="Rosalind", family_name="Quenby", mrn="Q-1")
        other = PatientFactory(given_name="Samuel", family_name="Abbott", mrn="Q-2")
        for at, shown in (
            (datetime(2025, 3, 10, 16, 0, tzinfo=UTC), patient),
            (datetime(2025, 5, 20, 16, 0, tzinfo=UTC), patient),
            (datetime(2025, 5, 21, 16, 0, tzinfo=UTC), other),
        ):
            with time_machine.travel(at, tick=False):
                AccessLog.objects.create(
                    actor=nurse,
                    actor_label=nurse.username,
                    action="view",
                    view_name="patients:detail",
                    records=[f"patients.patient:{shown.pk}"],
                )
    return {"patient": patient, "officer": officer, "admin": admin}


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def test_the_compliance_officer_opens_filters_and_prints_a_patients_access_report(
    live_server: Any, page: Any, clinic: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic["officer"].username)
    page.goto(base + "/compliance/access-log/")
    page.get_by_label("Patient").fill("Q-1")
    page.get_by_role("button", name="Find patient").click()
    page.get_by_test_id("access-log-patient-report").click()
    page.wait_for_url(f"**/patients/{clinic['patient'].pk}/access-report/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Access report: Q-1")
    page.get_by_label("From").fill("2025-05-01")
    page.get_by_label("Until").fill("2025-05-31")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**since=2025-05-01**")
    rows = page.get_by_test_id("access-report-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("2025-05-20 11:00:00")  # the clinic's time (CDT)
    expect(rows.first).to_contain_text("Nora Nurse (nurse@north.example)")
    # Print: the button calls window.print (stubbed), and print media hides navigation and controls.
    page.evaluate("window.printed = false; window.print = () => { window.printed = true; }")
    page.get_by_role("button", name="Print").click()
    assert page.evaluate("window.printed") is True
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("header.topbar")).to_be_hidden()
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    expect(page.get_by_test_id("access-report-filters")).to_be_hidden()
    expect(rows.first).to_be_visible()
    page.emulate_media(media="screen")


def test_an_administrator_reaches_the_report_from_the_patient_page(
    live_server: Any, page: Any, clinic: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic["admin"].username)
    page.goto(f"{base}/patients/{clinic['patient'].pk}/")
    page.get_by_role("link", name="Access report").click()
    page.wait_for_url(f"**/patients/{clinic['patient'].pk}/access-report/")
    expect(page.get_by_test_id("access-report-table").locator("tbody tr").first).to_contain_text(
        "viewed patient record"
    )
