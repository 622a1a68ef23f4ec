"""Issue #13 item 1 in real Chromium: a nurse off the care team breaks the glass to open a record;
the compliance officer sees the event and reviews it."""

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


def test_nurse_breaks_the_glass_and_compliance_reviews(
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
    nurse = UserFactory(username="nurse@north.example")
    MembershipFactory(user=nurse, organization=organization, role="nurse")
    officer = UserFactory(username="compliance@north.example")
    MembershipFactory(user=officer, organization=organization, role="compliance")
    with organization_context(organization):
        patient = PatientFactory(given_name="Rosalind", family_name="Quenby", mrn="Q-1")
    base = live_server.url

    _sign_in(page, base, nurse.username)
    page.goto(f"{base}/patients/{patient.pk}/")
    expect(page.get_by_role("heading", name="Reason needed to open this record")).to_be_visible()
    expect(page.get_by_text("Quenby")).to_have_count(0)
    page.get_by_label("Reason").select_option("covering")
    page.get_by_label("Details").fill("Covering for Dr. Ames today")
    page.get_by_role("button", name="Open the record").click()
    page.wait_for_url(f"{base}/patients/{patient.pk}/")
    expect(page.get_by_role("heading", name="Rosalind Quenby")).to_be_visible()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        review = context.new_page()
        _sign_in(review, base, officer.username)
        review.get_by_role("link", name="Break-glass events").click()
        row = review.locator("tbody tr").first
        expect(row).to_contain_text("Covering for a colleague")
        expect(row).to_contain_text("Covering for Dr. Ames today")
        assert axe_violations(review) == []
        row.get_by_role("link", name="Review").click()
        assert axe_violations(review) == []
        review.get_by_label("Outcome").select_option("appropriate")
        review.get_by_label("Review note").fill("Rota confirms the cover")
        review.get_by_role("button", name="Save review").click()
        expect(review.locator("tbody tr").first).to_contain_text("Appropriate")
    finally:
        context.close()
    with organization_context(organization):
        event = BreakGlassEvent.objects.get()
    assert (event.user_id, event.outcome, event.reviewed_by_id) == (nurse.pk, "appropriate", officer.pk)
