"""Issue #11 flow in real Chromium: the front desk adds a patient who is already on file and is
warned (with links) before creating anyway; an administrator merges two duplicate records through
the UI and the surviving record shows the moved appointment and problem. axe-core finds no
violation on any page visited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from patients import services
from tests.axe import axe_violations
from tests.factories import (
    PASSWORD,
    AppointmentFactory,
    MembershipFactory,
    OrganizationFactory,
    PatientFactory,
    PractitionerFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass
class Clinic:
    frontdesk: Any
    admin: Any
    nurse: Any
    original: Any
    duplicate: Any


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)
    people = {}
    for role in ("frontdesk", "admin", "nurse"):
        people[role] = UserFactory(username=f"{role}@north.example")
        MembershipFactory(user=people[role], organization=organization, role=role)
    with organization_context(organization):
        born = date(1958, 7, 14)
        original = PatientFactory(given_name="Rosalind", family_name="Quenby", mrn="Q-1", date_of_birth=born)
        duplicate = PatientFactory(given_name="Rosalind", family_name="Quenby", mrn="Q-2", date_of_birth=born)
        AppointmentFactory(patient=duplicate, practitioner=PractitionerFactory(display_name="Dr. Ada Flow"))
        services.condition_add(patient=duplicate, code="44054006", display="Type 2 diabetes mellitus")
    return Clinic(people["frontdesk"], people["admin"], people["nurse"], original, duplicate)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def _no_axe_violations(page: Any) -> None:
    assert axe_violations(page) == [], page.url


def test_duplicate_warning_at_create_then_an_administrator_merges(live_server: Any, page: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic.frontdesk.username)
    page.goto(base + "/patients/new/")
    page.get_by_label("MRN").fill("Q-3")
    page.get_by_label("Given name").fill("rosalind")
    page.get_by_label("Family name").fill("QUENBY")
    page.get_by_label("Date of birth").fill("1958-07-14")
    page.get_by_role("button", name="Save patient").click()
    warning = page.get_by_test_id("possible-duplicates")
    expect(warning).to_contain_text("Possible duplicate")
    expect(warning.get_by_role("link")).to_have_count(2)  # both records on file, each a link
    expect(warning.get_by_role("link", name="Quenby, Rosalind · MRN Q-1 · born 1958-07-14")).to_be_visible()
    _no_axe_violations(page)
    page.get_by_label("Create anyway").check()
    page.get_by_role("button", name="Save patient").click()
    expect(page.locator(".messages")).to_contain_text("Patient created.")
    expect(page.locator("main h1")).to_contain_text("rosalind QUENBY")  # as typed
    expect(page.get_by_role("link", name="Merge into…")).to_have_count(0)  # the front desk does not merge

    _sign_in(page, base, clinic.admin.username)
    page.goto(f"{base}/patients/{clinic.duplicate.pk}/")
    page.get_by_role("link", name="Merge into…").click()
    expect(page.get_by_role("heading", name="Merge this record into another")).to_be_visible()
    _no_axe_violations(page)
    page.get_by_label("Find the record to keep").fill("Q-1")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.get_by_role("button", name="Search").click()
    assert "Q-1" not in page.url  # search terms are posted, never in the address
    expect(page.get_by_role("heading", name="Search results")).to_be_visible()
    _no_axe_violations(page)
    page.get_by_role("button", name="Keep this record (MRN Q-1)").first.click()
    plan = page.get_by_test_id("merge-plan")
    expect(plan.get_by_role("row", name="Appointments")).to_contain_text("1")
    expect(plan.get_by_role("row", name="Conditions")).to_be_visible()
    _no_axe_violations(page)
    page.get_by_role("button", name="Merge the records").click()  # not confirmed: refused
    expect(page.locator(".field.has-error")).to_contain_text("Tick the box")
    page.get_by_label("I checked that both records are the same person").check()
    page.get_by_role("button", name="Merge the records").click()
    expect(page.locator(".messages")).to_contain_text("Record merged.")
    assert page.url == f"{base}/patients/{clinic.original.pk}/"
    expect(page.locator("section", has_text="Appointments").locator("tbody tr")).to_have_count(1)
    expect(page.locator("section", has_text="Appointments")).to_contain_text("Dr. Ada Flow")
    _no_axe_violations(page)

    page.goto(f"{base}/patients/{clinic.duplicate.pk}/")
    notice = page.get_by_test_id("merged-into")
    expect(notice).to_contain_text("Merged into")
    expect(page.get_by_role("link", name="Merge into…")).to_have_count(0)
    _no_axe_violations(page)
    notice.get_by_role("link").click()
    assert page.url == f"{base}/patients/{clinic.original.pk}/"

    _sign_in(page, base, clinic.nurse.username)
    page.goto(f"{base}/patients/{clinic.original.pk}/")
    expect(page.locator("section", has_text="Problems")).to_contain_text("Type 2 diabetes mellitus")
    _no_axe_violations(page)
