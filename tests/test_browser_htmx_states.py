"""Issue #11 ("axe-core reports 0 violations on every page the flows visit"), for the states a page
reaches only through an htmx swap: the `page` fixture re-opens each visited address to check it, which
never shows a swapped fragment. Each test here drives the swap in real Chromium and runs axe-core on
the DOM as it is afterwards: a task row completed on My tasks and on the care-plan tab (reached by
the record's htmx tabs), the patient search's results, and the Messages tab and its send result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from healthcrm.tenancy import organization_context
from patients.care.services import care_plan_start, task_assign
from tests.axe import axe_violations
from tests.engagement.conftest import configure
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass
class Clinic:
    organization: Any
    nurse: Any
    patient: Any
    queue_task: Any
    plan_task: Any


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)
    nurse = UserFactory(username="nurse@north.example", first_name="Nora", last_name="Nurse")
    MembershipFactory(user=nurse, organization=organization, role="nurse")
    configure(organization, quiet_start="00:00", quiet_end="00:00")
    # real-clock: the clinic's own date; the tasks fall due two days either side of it
    today = timezone.now().astimezone(organization.zone).date()
    with organization_context(organization):
        patient = PatientFactory(
            given_name="Rosalind", family_name="Quenby", phone_mobile="+13125550171", preferred_channel="sms"
        )
        plan = care_plan_start(patient=patient, title="Blood pressure", actor=nurse, today=today)
        queue_task = task_assign(
            patient=patient, title="Overdue callback", due_date=today - timedelta(days=2), assignee=nurse
        )
        plan_task = task_assign(
            patient=patient, title="Check readings", due_date=today + timedelta(days=2), care_plan=plan, assignee=nurse
        )
    return Clinic(organization, nurse, patient, queue_task, plan_task)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def _swapped_in_place(page: Any) -> None:
    assert page.evaluate("window.__noReload") is True, "the page reloaded: no htmx swap was checked"


def test_task_rows_after_completing_them_are_accessible(live_server: Any, page: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)

    # My tasks: complete a row; the swapped row (its own partial) passes axe.
    page.goto(base + "/patients/tasks/mine/")
    page.evaluate("window.__noReload = true")
    row = page.get_by_test_id(f"task-{clinic.queue_task.pk}")
    row.get_by_role("button", name="Complete").click()
    expect(row).to_contain_text("Done")
    _swapped_in_place(page)
    assert axe_violations(page) == []

    # The record's Care plan tab, reached through the htmx tabs, then its task completed in place.
    page.goto(f"{base}/patients/{clinic.patient.pk}/")
    page.evaluate("window.__noReload = true")
    page.get_by_role("navigation", name="Patient record").get_by_role("link", name="Care plan").click()
    plan_row = page.get_by_test_id(f"task-{clinic.plan_task.pk}")
    expect(plan_row).to_contain_text("Check readings")
    assert axe_violations(page) == []
    plan_row.get_by_role("button", name="Complete").click()
    expect(plan_row).to_contain_text("Done")
    expect(plan_row.get_by_role("button", name="Reopen")).to_be_visible()
    _swapped_in_place(page)
    assert axe_violations(page) == []


def test_patient_search_results_swapped_in_are_accessible(live_server: Any, page: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    page.goto(base + "/patients/")
    page.evaluate("window.__noReload = true")
    page.locator("#id_q").fill("Rosalind Quenby")
    expect(page.locator("#patient-results")).to_contain_text("Quenby")
    _swapped_in_place(page)
    assert axe_violations(page) == []
    page.locator("#id_q").fill("Zz")  # too short to search: the swapped message says why
    expect(page.locator("#patient-results")).to_contain_text("3 letters")
    assert axe_violations(page) == []


def test_the_messages_tab_and_its_send_result_are_accessible(
    live_server: Any, page: Any, clinic: Clinic, monkeypatch: Any
) -> None:
    from playwright.sync_api import expect

    from engagement import tasks

    monkeypatch.setattr(tasks.outbox_send_task, "delay", lambda organization_id, message_id: None)
    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    page.goto(f"{base}/patients/{clinic.patient.pk}/")
    page.evaluate("window.__noReload = true")
    page.get_by_role("navigation", name="Patient record").get_by_role("link", name="Messages").click()
    expect(page.get_by_role("heading", name="Send a message")).to_be_visible()
    _swapped_in_place(page)
    assert axe_violations(page) == []
    # An empty message: the form comes back with its error.
    page.get_by_role("button", name="Send message").click()
    expect(page.locator(".field.has-error")).to_contain_text("This field is required.")
    assert axe_violations(page) == []
    page.get_by_role("textbox", name="Message").fill("Your forms are ready at the front desk.")
    page.get_by_role("button", name="Send message").click()
    expect(page.get_by_role("status")).to_contain_text("SMS queued")
    assert axe_violations(page) == []
