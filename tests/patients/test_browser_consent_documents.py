"""Issue #11 "Patient record" in real Chromium: a nurse opens a patient's Consent tab, records an SMS
opt-out with a reason and sees it in the history; then uploads a PDF on the Documents tab and
downloads it back, byte for byte. axe-core finds no violation on the pages visited."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compliance.models import AccessLog
from engagement.models import ConsentChange
from healthcrm.tenancy import organization_context
from tests.axe import axe_violations
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


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
    with organization_context(organization):
        patient = PatientFactory(given_name="Beatrix", family_name="Lindqvist", phone_mobile="+13125550143")
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


def test_a_nurse_records_an_sms_opt_out_and_files_a_document(
    live_server: Any, page: Any, clinic: Clinic, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    record = f"{base}/patients/{clinic.patient.pk}/"
    page.goto(record)
    tabs = page.get_by_role("navigation", name="Patient record")

    # Consent: nothing recorded yet; the nurse records an SMS opt-out with a reason.
    tabs.get_by_role("link", name="Consent").click()
    page.wait_for_url(f"{base}/engagement/patients/{clinic.patient.pk}/consent/")
    expect(tabs.get_by_role("link", name="Consent")).to_have_attribute("aria-current", "page")
    expect(page.get_by_test_id("consent-current")).to_contain_text("Nothing recorded")
    _no_violations(page)
    page.get_by_label("Consent to").select_option("sms")
    page.get_by_label("Opted out").check()
    page.get_by_label("How the patient told us").select_option("staff")
    page.get_by_label("Note (optional)").fill("Patient asked by phone: no texts")
    page.get_by_role("button", name="Record consent").click()
    expect(page.get_by_role("status")).to_contain_text("SMS consent recorded.")
    current = page.get_by_test_id("consent-current").get_by_role("row", name="SMS")
    expect(current).to_contain_text("Opted out")
    expect(current).to_contain_text("Recorded by staff")
    row = page.get_by_test_id("consent-history").locator("tbody tr").first
    expect(row).to_contain_text("Opted out")
    expect(row).to_contain_text("Patient asked by phone: no texts")
    expect(row).to_contain_text(clinic.nurse.username)
    _no_violations(page)
    with organization_context(clinic.organization):
        [change] = ConsentChange.objects.all()
        assert (change.channel, change.status, change.actor_id) == ("sms", "opted_out", clinic.nurse.pk)

    # Documents: upload a PDF, see it listed, download it back.
    tabs.get_by_role("link", name="Documents").click()
    page.wait_for_url(f"{base}/patients/{clinic.patient.pk}/documents/")
    expect(page.get_by_text("No documents yet.")).to_be_visible()
    _no_violations(page)
    source = tmp_path / "referral letter.pdf"
    source.write_bytes(PDF)
    page.get_by_role("textbox", name="Title").fill("Cardiology referral")
    page.get_by_role("combobox", name="Type").select_option("referral")
    page.locator("input[type=file][name=file]").set_input_files(str(source))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text("Document uploaded.")
    listed = page.get_by_test_id("documents")
    expect(listed).to_contain_text("Cardiology referral")
    expect(listed).to_contain_text("Referral")
    _no_violations(page)
    with page.expect_download() as info:
        listed.get_by_role("link", name="Cardiology referral").click()
    download = info.value
    assert download.suggested_filename == "referral_letter.pdf"
    assert Path(download.path()).read_bytes() == PDF
    with organization_context(clinic.organization):
        assert AccessLog.objects.filter(view_name="patients:document_download", actor=clinic.nurse).count() == 1
