"""Layout in real Chromium (issue #11 items 7 and 13): filter forms on desktop and tablet, and the
phone layout at 390x844 (a navigation menu; the patient list, the patient page, the day calendar and
the day grid without sideways scrolling: the grid scrolls inside its own box)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from django.utils import timezone

from healthcrm.tenancy import organization_context
from patients import services as patient_services
from tests.factories import (
    PASSWORD,
    AppointmentFactory,
    LocationFactory,
    MembershipFactory,
    OrganizationFactory,
    PatientFactory,
    PractitionerFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
TABLET = {"width": 768, "height": 1024}
DESKTOP = {"width": 1280, "height": 900}


@dataclass
class Clinic:
    organization: Any
    coordinator: Any
    patient: Any
    day: date


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    """A clinic whose names are long but real-world: hyphenated family names, a long practitioner
    and location name, long email addresses; a day with five visits."""
    organization = OrganizationFactory(
        slug="north", name="Northside Family Health", timezone="America/Chicago", require_mfa=False
    )
    # A care coordinator sees the most: clinical filters, outreach, tasks, scheduling.
    coordinator = UserFactory(username="coordinator.longname@northside.example")
    MembershipFactory(user=coordinator, organization=organization, role="coordinator")
    # real-clock: the clinic's own date, one day ahead (the live server runs on the real clock)
    day = timezone.now().astimezone(organization.zone).date() + timedelta(days=1)
    with organization_context(organization):
        location = LocationFactory(name="Northside Main Street Campus")
        practitioner = PractitionerFactory(display_name="Dr. Bartholomew Featherstonehaugh-Smythe")
        patients = [
            PatientFactory(
                given_name="Alexandria",
                family_name=f"Montgomery-Wellington{'abcdef'[i]}",
                email=f"alexandria.montgomerywellington{'abcdef'[i]}@example-health-mail.org",
                address_line1="12345 North Westmoreland Boulevard",
                address_city="Chicago",
                address_state="IL",
                address_postal_code="60614",
            )
            for i in range(6)
        ]
        patient = patients[0]
        patient_services.condition_add(patient=patient, code="44054006", display="Diabetes mellitus type 2 (disorder)")
        patient_services.medication_add(
            patient=patient, name="Metformin hydrochloride 500 MG Extended Release Oral Tablet", code="860975"
        )
        patient_services.allergy_add(patient=patient, substance_display="Penicillin G benzathine", reaction="Hives")
        start = datetime.combine(day, time(9, 0), tzinfo=organization.zone)
        for i, someone in enumerate(patients[:5]):
            AppointmentFactory(
                patient=someone, practitioner=practitioner, location=location, starts_at=start + timedelta(hours=i)
            )
    return Clinic(organization, coordinator, patient, day)


def _signed_in_page(browser: Any, base: str, username: str, viewport: dict[str, int], **context: Any) -> Any:
    ctx = browser.new_context(viewport=viewport, **context)
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")
    return page


def _console_errors(page: Any) -> list[str]:
    """Errors the page logs from now on (a CSP violation, such as a blocked inline script, is one)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


# Each filter field's label and control, in page coordinates.
_FILTER_GEOMETRY = """() => [...document.querySelectorAll('.filters .field')].map(field => {
  const box = field.getBoundingClientRect();
  const label = field.querySelector('label').getBoundingClientRect();
  const control = field.querySelector('input, select, textarea').getBoundingClientRect();
  return {name: field.querySelector('label').textContent.trim(), top: box.top, bottom: box.bottom,
          labelTop: label.top, labelBottom: label.bottom, controlTop: control.top,
          controlHeight: control.height};
})"""


def _filter_rows(fields: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Fields laid out side by side (their boxes overlap vertically) form a row."""
    rows: list[list[dict[str, Any]]] = []
    for field in sorted(fields, key=lambda f: f["top"]):
        if rows and field["top"] < max(f["bottom"] for f in rows[-1]):
            rows[-1].append(field)
        else:
            rows.append([field])
    return rows


@pytest.mark.parametrize("viewport", [DESKTOP, TABLET], ids=["desktop", "tablet"])
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/engagement/outbox/", {"Status", "Channel", "Rule", "Due from", "Due until"}),
        ("/patients/", {"Care team member", "Condition code", "Last visit on or after", "Last visit before"}),
    ],
    ids=["outbox", "patient-list"],
)
def test_filter_fields_are_one_line_tall_with_their_labels_in_line(
    live_server: Any, browser: Any, clinic: Clinic, viewport: dict[str, int], path: str, expected: set[str]
) -> None:
    page = _signed_in_page(browser, live_server.url, clinic.coordinator.username, viewport)
    page.goto(live_server.url + path)
    fields = page.evaluate(_FILTER_GEOMETRY)
    assert expected <= {f["name"] for f in fields}
    for field in fields:
        # One line of text in a 44 px touch target: a date input was ~260 px tall.
        assert field["controlHeight"] <= 48, field
        # The label sits right above its own control.
        assert 0 <= field["controlTop"] - field["labelBottom"] <= 12, field
    rows = _filter_rows(fields)
    assert len(rows) < len(fields), "the filters are laid out side by side at this width"
    for row in rows:
        assert max(f["labelTop"] for f in row) - min(f["labelTop"] for f in row) <= 1, row
        assert max(f["controlTop"] for f in row) - min(f["controlTop"] for f in row) <= 1, row
    page.context.close()


# How far the page and its widest parts reach past the viewport, in CSS pixels.
_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  // The day grid scrolls inside its own box: that box must fit, what scrolls inside it may not.
  const past = [...document.querySelectorAll('main *, header *')]
    .filter(el => !(el.parentElement && el.parentElement.closest('.day-grid-scroll')))
    .filter(el => el.getClientRects().length && el.getBoundingClientRect().right > width + 0.5)
    .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
  return {scrollWidth: document.documentElement.scrollWidth, clientWidth: width, past: past.slice(0, 5)};
}"""


def _assert_fits(page: Any, what: str) -> None:
    measured = page.evaluate(_OVERFLOW)
    assert measured["scrollWidth"] <= measured["clientWidth"], (what, measured)
    assert measured["past"] == [], (what, measured)


def test_phone_patient_list_patient_page_and_day_calendar_fit_the_screen(
    live_server: Any, browser: Any, clinic: Clinic
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    page = _signed_in_page(browser, base, clinic.coordinator.username, PHONE, is_mobile=True, has_touch=True)
    errors = _console_errors(page)
    _assert_fits(page, "dashboard")

    page.goto(base + "/patients/")
    expect(page.locator("#patient-results tbody tr")).to_have_count(6)
    _assert_fits(page, "patient list")
    # Each patient is one block: its name, birth date, MRN and mobile read top to bottom, labelled.
    row = page.locator("#patient-results tbody tr").first
    assert row.bounding_box()["width"] <= PHONE["width"]
    labels = row.locator("td").evaluate_all("cells => cells.map(c => getComputedStyle(c, '::before').content)")
    assert labels[1:] == ['"Date of birth: "', '"MRN: "', '"Mobile: "'], labels
    page.screenshot(path="/tmp/phone-patient-list.png", full_page=True)  # noqa: S108 - looked at after a run

    page.goto(f"{base}/patients/{clinic.patient.pk}/")
    expect(page.get_by_role("heading", name="Problems")).to_be_visible()
    _assert_fits(page, "patient summary")
    for card in page.locator("main .card").all():
        box = card.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], card.inner_text()[:40]
    page.screenshot(path="/tmp/phone-patient-page.png", full_page=True)  # noqa: S108
    page.get_by_role("link", name="Care plan", exact=True).click()  # htmx tab
    expect(page.get_by_role("heading", name="Care team")).to_be_visible()
    _assert_fits(page, "patient care plan tab")

    page.goto(f"{base}/patients/appointments/?view=day&date={clinic.day.isoformat()}")
    expect(page.get_by_test_id("appointment")).to_have_count(5)
    _assert_fits(page, "day calendar")
    page.screenshot(path="/tmp/phone-day-calendar.png", full_page=True)  # noqa: S108

    page.goto(f"{base}/patients/appointments/day/?date={clinic.day.isoformat()}")
    expect(page.get_by_test_id("grid-appointment")).to_have_count(5)
    _assert_fits(page, "day grid")
    grid = page.locator(".day-grid-scroll").bounding_box()
    assert grid["x"] >= 0 and grid["x"] + grid["width"] <= PHONE["width"], grid
    page.screenshot(path="/tmp/phone-day-grid.png", full_page=True)  # noqa: S108
    assert errors == []
    page.context.close()


def _main_nav_link(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def test_phone_navigation_is_a_menu_that_opens_and_closes(live_server: Any, browser: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    page = _signed_in_page(browser, base, clinic.coordinator.username, PHONE, is_mobile=True, has_touch=True)
    errors = _console_errors(page)
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(_main_nav_link(page, "Patients")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    for name in ("Dashboard", "Patients", "Appointments", "My tasks", "Outreach"):
        expect(_main_nav_link(page, name)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    _assert_fits(page, "open menu")
    page.keyboard.press("Escape")
    expect(_main_nav_link(page, "Patients")).to_be_hidden()
    expect(menu).to_be_focused()

    menu.click()
    _main_nav_link(page, "Appointments").click()
    page.wait_for_url(base + "/patients/appointments/")
    # A new page starts with the menu closed; the open menu marks where we are, once.
    expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "false")
    page.get_by_role("button", name="Menu").click()
    current = page.get_by_role("navigation", name="Main").locator("a[aria-current=page]")
    expect(current).to_have_count(1)
    expect(current).to_have_text("Appointments")
    assert errors == []

    # On a desktop the links are in the bar and there is no menu button.
    page.set_viewport_size(DESKTOP)
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    page.reload()
    expect(_main_nav_link(page, "Patients")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    page.context.close()


def test_phone_navigation_without_javascript_stays_open_and_fits(
    live_server: Any, browser: Any, clinic: Clinic
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    page = _signed_in_page(browser, base, clinic.coordinator.username, PHONE, java_script_enabled=False)
    page.goto(base + "/patients/")
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    for name in ("Dashboard", "Patients", "Appointments", "My tasks", "Outreach"):
        expect(_main_nav_link(page, name)).to_be_visible()
    _assert_fits(page, "patient list without JavaScript")
    page.context.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_pages_these_tests_visit_have_no_axe_violations(
    live_server: Any, browser: Any, clinic: Clinic, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    from tests.axe import axe_violations

    base = live_server.url
    page = _signed_in_page(browser, base, clinic.coordinator.username, viewport)
    found: dict[str, list[str]] = {}
    for name, path in [
        ("dashboard", "/"),
        ("patient list", "/patients/"),
        ("patient summary", f"/patients/{clinic.patient.pk}/"),
        ("patient care plan", f"/patients/{clinic.patient.pk}/care-plan/"),
        ("day calendar", f"/patients/appointments/?view=day&date={clinic.day.isoformat()}"),
        ("outbox", "/engagement/outbox/"),
    ]:
        page.goto(base + path)
        found[name] = axe_violations(page)
        if viewport is PHONE and name == "dashboard":
            page.get_by_role("button", name="Menu").click()
            expect(_main_nav_link(page, "Patients")).to_be_visible()
            found["open menu"] = axe_violations(page)
    assert found == {name: [] for name in found}
    page.context.close()


def test_the_axe_check_finds_what_it_should(browser: Any) -> None:
    """The check above can fail: an unlabelled input and an image without text are violations."""
    from tests.axe import axe_violations

    page = browser.new_page()
    page.set_content('<html lang="en"><title>t</title><main><img src="x.png"><input></main></html>')
    rules = {line.split(" ")[0] for line in axe_violations(page)}
    assert {"image-alt", "label"} <= rules, rules
    page.close()
