"""The analyst's flow in real Chromium: open analytics, filter by provider and dates, see a suppressed
cell, export the CSV of what the page shows."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from analytics.refresh import refresh_run
from healthcrm.tenancy import organization_context
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


@pytest.fixture
def clinic(transactional_db: None) -> dict[str, Any]:
    """Dr Busy: 48 visits over the last 30 days (30 attended, 6 no-shows, 12 cancelled); Dr Quiet: 4."""
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)
    analyst = UserFactory(username="analyst@north.example")
    MembershipFactory(user=analyst, organization=organization, role="analyst")
    now = timezone.now()  # real-clock: the live server runs on the real clock; visits are laid out before it
    with organization_context(organization):
        busy, quiet = PractitionerFactory(display_name="Dr Busy"), PractitionerFactory(display_name="Dr Quiet")
        patient = PatientFactory(family_name="Nevershownname")
        start = (now - timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
        statuses = ["completed"] * 30 + ["no_show"] * 6 + ["cancelled"] * 12
        for i, status in enumerate(statuses):
            AppointmentFactory(
                patient=patient, practitioner=busy, starts_at=start + timedelta(hours=14 * i), status=status
            )
        for i in range(4):
            AppointmentFactory(
                patient=patient, practitioner=quiet, starts_at=start + timedelta(hours=14 * i + 7), status="completed"
            )
        refresh_run(full=True)
    return {"organization": organization, "analyst": analyst, "busy": busy, "quiet": quiet, "start": start}


def test_analyst_filters_sees_a_suppressed_cell_and_exports_csv(
    live_server: Any, page: Any, clinic: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(clinic["analyst"].username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")
    page.get_by_role("link", name="Analytics", exact=True).click()
    expect(page.locator("main h1")).to_have_text("Attendance")

    day = timezone.localtime(clinic["start"], clinic["organization"].zone).date()  # real-clock: see the fixture
    filters = page.get_by_test_id("analytics-filters")
    filters.get_by_label("Start").fill(day.isoformat())
    filters.get_by_label("Provider").select_option(label="Dr Busy")
    filters.get_by_role("button", name="Show").click()
    expect(page.locator("main")).to_contain_text("Dr Busy")
    assert f"practitioner={clinic['busy'].pk}" in page.url and "Nevershownname" not in page.url

    provider_table = page.get_by_test_id("table-provider")
    row = provider_table.locator("tr", has_text="Dr Busy")
    # 30 attended shows; the 6 no-shows are below 11 ("<11"); the row total (48) shows, so the next
    # smallest cell, the 12 cancellations, is withheld with them ("hidden").
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("30")
    expect(cells.nth(1)).to_have_text("<11")
    expect(cells.nth(3)).to_have_text("hidden")
    expect(cells.nth(4)).to_have_text("48")
    expect(provider_table).not_to_contain_text("Dr Quiet")  # filtered out

    with page.expect_download() as download_info:
        page.get_by_test_id("csv-provider").click()
    content = open(download_info.value.path(), encoding="utf-8").read()  # noqa: SIM115
    rows = {r[0]: r for r in csv.reader(io.StringIO(content))}
    assert rows["Dr Busy"][1:6] == ["30", "<11", "0", "hidden", "48"]
    assert "Nevershownname" not in content


def test_provider_sees_risk_flags_on_tomorrows_calendar(live_server: Any, page: Any, transactional_db: None) -> None:
    """A trained model flags tomorrow's risky visit (booked 120 days ahead by a patient who missed 3 of
    4 visits, unconfirmed) on the provider's calendar, with its reasons; the safe visit has no flag."""
    from playwright.sync_api import expect

    from analytics import risk
    from tests.analytics.history import Visit, patterned_history, write

    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)
    provider = UserFactory(username="provider@north.example")
    MembershipFactory(user=provider, organization=organization, role="provider")
    now = timezone.now()  # real-clock: the live server runs on the real clock; history ends before it
    with organization_context(organization):
        patterned_history(organization, now=now, visits=600, patients=80)
        tomorrow = []
        for risky, hour in ((True, 1), (False, 2)):
            patient = PatientFactory(family_name="Riskyperson" if risky else "Safeperson")
            past = [
                Visit(patient, now - timedelta(days=40 + 7 * k, hours=k), "no_show" if risky and k < 3 else "attended")
                for k in range(4)
            ]
            coming = Visit(
                patient,
                now + timedelta(days=1, hours=hour),
                "upcoming",
                lead_days=120 if risky else 0,
                confirmed=not risky,
            )
            tomorrow.append(write(organization, [*past, coming])[-1])  # writes the visits' facts too
        assert risk.risk_train().status == "trained"
        risk.risk_score()

    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(provider.username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")
    day = timezone.localtime(tomorrow[0].starts_at, organization.zone).date()  # real-clock: see above
    page.goto(f"{base}/patients/appointments/?view=day&date={day.isoformat()}")
    risky_card = page.get_by_test_id("appointment").filter(has_text="Riskyperson")
    expect(risky_card).to_be_visible()
    badges = page.get_by_test_id("appointment-badge")
    expect(badges).to_have_count(1)
    expect(badges.first).to_contain_text("no-show risk")
    expect(page.get_by_test_id("appointment").filter(has_text="Safeperson")).to_be_visible()
