"""End to end in real Chromium: sign in, switch organizations, search, and no data across clinics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = "/tmp/browser-dashboard.png"  # noqa: S108 - a fixed path people look at after a run


@dataclass
class Clinics:
    north: Any
    lake: Any
    north_patients: list[Any]
    lake_patients: list[Any]
    nurse: Any


@pytest.fixture
def clinics(transactional_db: None) -> Clinics:
    """Two clinics with three patients each, and a nurse who works in both."""
    north = OrganizationFactory(slug="north", name="North Clinic", require_mfa=False)
    lake = OrganizationFactory(slug="lake", name="Lake Clinic", require_mfa=False)
    with organization_context(north):
        north_patients = [PatientFactory(mrn=f"N-{i}", family_name=f"Northcott{'abc'[i - 1]}") for i in (1, 2, 3)]
    with organization_context(lake):
        lake_patients = [PatientFactory(mrn=f"L-{i}", family_name=f"Lakewood{'abc'[i - 1]}") for i in (1, 2, 3)]
    nurse = UserFactory(username="float.nurse@example.test")
    MembershipFactory(user=nurse, organization=north, role="nurse")
    MembershipFactory(user=nurse, organization=lake, role="nurse")
    return Clinics(north, lake, north_patients, lake_patients, nurse)


def _console_errors(page: Any) -> list[str]:
    """Errors the page logs from now on (a CSP violation, such as a blocked inline style, is one)."""
    errors: list[str] = []

    def on_console(message: Any) -> None:
        # The app has no favicon (the browser asks for /favicon.ico): cosmetic, not a failure.
        url = message.location.get("url", "")
        if message.type == "error" and not url.endswith("/favicon.ico"):
            errors.append(f"{message.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def _sign_in(page: Any, base_url: str, username: str) -> None:
    page.goto(base_url + "/")
    assert re.search(r"/accounts/login/\?next=/$", page.url), page.url
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base_url + "/")


def _heading(page: Any) -> str:
    return page.locator("main h1").inner_text().strip()


def _table_mrns(page: Any) -> set[str]:
    # The MRN is the table's third column.
    return {cell.strip() for cell in page.locator("#patient-results table tbody tr td:nth-child(3)").all_inner_texts()}


def _open_patients(page: Any, base_url: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    page.wait_for_url(base_url + "/patients/")


def test_sign_in_switch_organizations_and_see_only_that_clinics_patients(
    live_server: Any, page: Any, clinics: Clinics
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    errors = _console_errors(page)
    _sign_in(page, base, clinics.nurse.username)
    # Before any choice, the first organization by name is current: "Lake Clinic" < "North Clinic".
    assert _heading(page) == "Lake Clinic"

    # The switcher submits itself when an organization is chosen (static/js/app.js).
    with page.expect_navigation():
        page.get_by_label("Organization").select_option(label="North Clinic")
    expect(page.locator("main h1")).to_have_text("North Clinic")
    expect(page.get_by_test_id("patient-count")).to_have_text("3")
    page.screenshot(path=SCREENSHOT, full_page=True)

    _open_patients(page, base)
    assert _table_mrns(page) == {"N-1", "N-2", "N-3"}
    body = page.locator("main").inner_text()
    assert "Lakewood" not in body and "L-1" not in body

    # Back to Lake Clinic with the Switch button (keyboard and no-JS users).
    # Set the value without a change event, so only the button submits.
    page.get_by_label("Organization").evaluate(
        "select => { select.value = [...select.options].find(o => o.text.trim() === 'Lake Clinic').value; }"
    )
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url(base + "/")
    expect(page.locator("main h1")).to_have_text("Lake Clinic")

    _open_patients(page, base)
    assert _table_mrns(page) == {"L-1", "L-2", "L-3"}
    body = page.locator("main").inner_text()
    assert "Northcott" not in body and "N-1" not in body

    # An MRN of the other clinic finds nothing, with no hint that it exists there.
    page.get_by_label("Find a patient").fill("N-1")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#patient-results")).to_contain_text("No patient matches")
    assert _table_mrns(page) == set()
    assert errors == []


def test_search_as_you_type_and_no_detail_page_across_clinics(live_server: Any, page: Any, clinics: Clinics) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    errors = _console_errors(page)
    _sign_in(page, base, clinics.nurse.username)
    page.get_by_label("Organization").select_option(label="North Clinic")
    page.wait_for_url(base + "/")
    expect(page.locator("main h1")).to_have_text("North Clinic")
    _open_patients(page, base)
    assert _table_mrns(page) == {"N-1", "N-2", "N-3"}

    # A marker on window survives only if the page is not reloaded.
    page.evaluate("window.__noReload = true")
    full_page_loads: list[str] = []
    page.on("load", lambda loaded: full_page_loads.append(loaded.url))
    with page.expect_response(
        lambda r: (
            r.request.method == "POST"
            and "q=N-2" in (r.request.post_data or "")
            and r.request.headers.get("hx-request") == "true"
        )
    ):
        page.get_by_label("Find a patient").press_sequentially("N-2", delay=50)
    expect(page.locator("#patient-results tbody tr")).to_have_count(1)
    assert _table_mrns(page) == {"N-2"}
    assert page.evaluate("window.__noReload") is True
    assert "N-2" not in page.url, "search terms are posted, never put in the address"
    assert full_page_loads == [], "the search must update the table in place"

    # An org B patient's page, opened while org A is current, is the plain 404 page.
    response = page.goto(f"{base}/patients/{clinics.lake_patients[0].pk}/")
    assert response is not None and response.status == 404
    assert full_page_loads, "the load listener does see real page loads"
    expect(page.locator("main h1")).to_have_text("Not found")
    assert "Lakewood" not in page.content()
    # Its own organization's patient opens normally.
    response = page.goto(f"{base}/patients/{clinics.north_patients[0].pk}/")
    assert response is not None and response.status == 200
    expect(page.locator("main h1")).to_contain_text("Northcotta")
    # The 404 document itself is reported as a failed resource; nothing else may fail.
    assert [e for e in errors if not re.search(r"404 .*/patients/\d+/\)$", e)] == []
