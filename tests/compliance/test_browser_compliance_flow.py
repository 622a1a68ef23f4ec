"""Issue #13's "Done when" flow, as one story in real Chromium: a nurse not on the care team opens a
record through break-the-glass; the compliance officer sees the alert (the bell), opens it, reviews
the event, then finds the patient in the access log and prints the patient's access report, where
the nurse's reads carry the break-glass reason."""

from __future__ import annotations

from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from patients.models import BreakGlassEvent
from tests.axe import axe_violations
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def test_break_the_glass_alert_review_and_printed_access_report(
    live_server: Any, page: Any, browser: Any, transactional_db: None
) -> None:
    # real-clock: the grant lasts 30 minutes from the live server's now; the flow takes seconds
    from playwright.sync_api import expect

    organization = OrganizationFactory(
        slug="north",
        name="North Clinic",
        timezone="America/Chicago",
        require_mfa=False,
        settings={"break_glass": {"required": True}},
    )
    nurse = UserFactory(username="nurse@north.example", first_name="Nora", last_name="Nurse")
    MembershipFactory(user=nurse, organization=organization, role="nurse")
    officer = UserFactory(username="compliance@north.example")
    MembershipFactory(user=officer, organization=organization, role="compliance")
    with organization_context(organization):
        patient = PatientFactory(given_name="Rosalind", family_name="Quenby", mrn="Q-1")
    base = live_server.url

    # 1. The nurse, not on the care team, is asked for a reason and opens the record.
    _sign_in(page, base, nurse.username)
    page.goto(f"{base}/patients/{patient.pk}/")
    expect(page.get_by_role("heading", name="Reason needed to open this record")).to_be_visible()
    expect(page.get_by_text("Quenby")).to_have_count(0)
    page.get_by_label("Reason").select_option("emergency")
    page.get_by_label("Details").fill("Collapsed in the waiting room")
    page.get_by_role("button", name="Open the record").click()
    page.wait_for_url(f"{base}/patients/{patient.pk}/")
    expect(page.get_by_role("heading", name="Rosalind Quenby")).to_be_visible()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        officer_page = context.new_page()
        # 2. The compliance officer sees the alert at once: the bell counts it, the list names it.
        _sign_in(officer_page, base, officer.username)
        bell = officer_page.get_by_test_id("notification-bell")
        expect(bell).to_contain_text("1 unread")
        bell.click()
        alert = officer_page.get_by_role("link", name="needs review")
        expect(alert).to_contain_text("Break-the-glass access #")
        assert "Quenby" not in officer_page.content()  # the alert carries ids only
        assert axe_violations(officer_page) == []
        alert.click()

        # 3. ... and reviews the event.
        row = officer_page.locator("tbody tr").first
        expect(row).to_contain_text("Emergency care")
        expect(row).to_contain_text("Collapsed in the waiting room")
        row.get_by_role("link", name="Review").click()
        officer_page.get_by_label("Outcome").select_option("appropriate")
        officer_page.get_by_label("Review note").fill("Emergency confirmed by the charge nurse")
        officer_page.get_by_role("button", name="Save review").click()
        expect(officer_page.locator("tbody tr").first).to_contain_text("Appropriate")

        # 4. The patient's access report, from the access log: the nurse's read and why; printed.
        officer_page.goto(base + "/compliance/access-log/")
        officer_page.get_by_label("Patient").fill("Q-1")
        officer_page.get_by_role("button", name="Find patient").click()
        officer_page.get_by_test_id("access-log-patient-report").click()
        officer_page.wait_for_url(f"**/patients/{patient.pk}/access-report/")
        expect(officer_page.get_by_role("heading", level=1)).to_contain_text("Access report: Q-1")
        rows = officer_page.get_by_test_id("access-report-table").locator("tbody tr")
        nurse_rows = rows.filter(has_text="Nora Nurse (nurse@north.example)")
        # The attempt without a relationship (refused), then the opening under the grant, with why.
        expect(nurse_rows.filter(has_text="was refused patient record")).to_have_count(1)
        read = nurse_rows.filter(has_text="Break-glass: Emergency care").filter(has_text="patient record")
        expect(read.first).to_be_visible()
        assert axe_violations(officer_page) == []
        officer_page.evaluate("window.printed = false; window.print = () => { window.printed = true; }")
        officer_page.get_by_role("button", name="Print").click()
        assert officer_page.evaluate("window.printed") is True
        officer_page.emulate_media(media="print")
        expect(officer_page.locator("header.topbar")).to_be_hidden()
        expect(officer_page.get_by_role("button", name="Print")).to_be_hidden()
        expect(read.first).to_be_visible()
        officer_page.emulate_media(media="screen")
    finally:
        context.close()

    with organization_context(organization):
        event = BreakGlassEvent.objects.get()
    assert (event.user_id, event.reason, event.outcome, event.reviewed_by_id) == (
        nurse.pk,
        "emergency",
        "appropriate",
        officer.pk,
    )
