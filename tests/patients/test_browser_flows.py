"""Issue #3 flows in real Chromium: find a patient, start a care plan and assign a task, book and
reschedule (with the double-booking error), complete a task from "My tasks"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from healthcrm.tenancy import organization_context
from patients.care.defaults import care_plan_templates_install
from patients.models import CareTask
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
    organization: Any
    nurse: Any
    patient: Any
    other: Any
    practitioner: Any


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)
    nurse = UserFactory(username="nurse@north.example")
    MembershipFactory(user=nurse, organization=organization, role="nurse")
    with organization_context(organization):
        care_plan_templates_install()
        patient = PatientFactory(given_name="Rosalind", family_name="Quenby", mrn="Q-1", phone_mobile="+13125550142")
        other = PatientFactory(given_name="Samuel", family_name="Abbott", mrn="Q-2", phone_mobile="+13125550143")
        practitioner = PractitionerFactory(display_name="Dr. Ada Flow")
    return Clinic(organization, nurse, patient, other, practitioner)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def _results(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#patient-results tbody tr td:nth-child(3)").all_inner_texts()]


def _posted_query(response: Any) -> str | None:
    """The search term an htmx POST of the patient search carried (htmx encodes with encodeURIComponent)."""
    from urllib.parse import parse_qs

    if response.request.method != "POST" or response.request.headers.get("hx-request") != "true":
        return None
    return (parse_qs(response.request.post_data or "").get("q") or [None])[0]


def test_find_a_patient_by_partial_name_and_by_phone(live_server: Any, page: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    page.goto(base + "/patients/")
    search = page.get_by_label("Find a patient")
    with page.expect_response(lambda r: _posted_query(r) == "Que"):
        search.press_sequentially("Que", delay=40)
    expect(page.locator("#patient-results tbody tr")).to_have_count(1)
    assert _results(page) == ["Q-1"]
    assert "Que" not in page.url, page.url  # search terms are PHI: posted, never in the address
    search.fill("")
    with page.expect_response(lambda r: _posted_query(r) == "(312) 555-0143"):
        search.press_sequentially("(312) 555-0143", delay=20)
    expect(page.locator("#patient-results tbody tr")).to_have_count(1)
    assert _results(page) == ["Q-2"]
    page.get_by_role("link", name="Abbott, Samuel").click()
    expect(page.locator("main h1")).to_contain_text("Samuel Abbott")


def test_start_a_care_plan_from_a_template_and_assign_a_task(live_server: Any, page: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    page.goto(f"{base}/patients/{clinic.patient.pk}/")
    page.get_by_role("link", name="Care plan", exact=True).click()  # htmx tab
    expect(page.get_by_role("heading", name="Care team")).to_be_visible()
    assert page.url.endswith(f"/patients/{clinic.patient.pk}/care-plan/")
    page.get_by_role("link", name="Start a care plan").click()
    page.get_by_label("Template").select_option(label="Type 2 diabetes")
    page.get_by_role("button", name="Start plan").click()
    expect(page.locator(".messages")).to_contain_text("Care plan started.")
    plan = page.locator("article.care-plan").first
    expect(plan).to_contain_text("HbA1c below 7 %")
    expect(plan).to_contain_text("< 140/90 mm[Hg]")
    expect(plan).to_contain_text("Order HbA1c lab")

    plan.get_by_role("link", name="Assign a task").click()
    page.get_by_role("button", name="Assign").click()  # empty: inline errors, nothing saved
    expect(page.locator(".field.has-error")).to_have_count(3)
    page.get_by_label("Title").fill("Call about glucose meter")
    page.get_by_label("Assign to a person").select_option(label=f"{clinic.nurse.username} · Nurse")  # name and role
    # real-clock: three days ahead is a future date in every zone
    page.get_by_label("Due date").fill((timezone.localdate() + timedelta(days=3)).isoformat())
    page.get_by_label("Priority").select_option("urgent")
    page.get_by_role("button", name="Assign").click()
    expect(page.locator(".messages")).to_contain_text("Task assigned.")
    expect(page.locator("article.care-plan").first).to_contain_text("Call about glucose meter")


def test_book_and_reschedule_an_appointment_with_the_double_booking_error(
    live_server: Any, page: Any, clinic: Clinic
) -> None:
    from playwright.sync_api import expect

    zone = clinic.organization.zone
    # real-clock: the clinic's own date, two days ahead: any hour works
    day = timezone.now().astimezone(zone).date() + timedelta(days=2)
    busy = timezone.make_aware(timezone.datetime.combine(day, timezone.datetime.min.time()), zone) + timedelta(hours=9)
    with organization_context(clinic.organization):
        AppointmentFactory(patient=clinic.other, practitioner=clinic.practitioner, starts_at=busy)
    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    page.goto(f"{base}/patients/{clinic.patient.pk}/appointments/new/")

    def fill(time: str) -> None:
        page.get_by_label("Practitioner").select_option(label="Dr. Ada Flow")
        page.get_by_label("Date").fill(day.isoformat())
        page.get_by_label("Start time").fill(time)

    fill("09:00")
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.get_by_text("This practitioner already has an appointment at that time.")).to_be_visible()
    fill("10:00")
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Appointment booked.")
    page.get_by_role("link", name="Reschedule", exact=True).click()
    page.get_by_label("Start time").fill("09:15")
    page.get_by_role("button", name="Reschedule", exact=True).click()
    expect(page.get_by_text("This practitioner already has an appointment at that time.")).to_be_visible()
    page.get_by_label("Start time").fill("11:00")
    page.get_by_role("button", name="Reschedule", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Appointment rescheduled.")
    page.goto(f"{base}/patients/{clinic.patient.pk}/appointments/")
    expect(page.locator("#tab-panel")).to_contain_text("11:00")


def test_complete_a_task_from_my_tasks(live_server: Any, page: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    # real-clock: the clinic's own date; the tasks are two days either side of it
    today = timezone.now().astimezone(clinic.organization.zone).date()
    with organization_context(clinic.organization):
        late = CareTask.objects.create(
            patient=clinic.patient, title="Overdue callback", due_date=today - timedelta(days=2), assignee=clinic.nurse
        )
        CareTask.objects.create(
            patient=clinic.other, title="Role task", due_date=today + timedelta(days=2), assignee_role="nurse"
        )
    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tasks").click()
    rows = page.locator("#task-queue tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Overdue callback")  # overdue first
    expect(rows.first).to_contain_text("Overdue")
    page.evaluate("window.__noReload = true")
    row = page.get_by_test_id(f"task-{late.pk}")
    row.get_by_role("button", name="Complete").click()
    expect(row).to_contain_text("Done")
    expect(row.get_by_role("button", name="Complete")).to_have_count(0)
    assert page.evaluate("window.__noReload") is True  # the row changed in place
    with organization_context(clinic.organization):
        late.refresh_from_db()
        assert late.status == "done" and late.completed_by_id == clinic.nurse.pk


def test_the_front_desk_cancels_a_visit_saying_why(live_server: Any, page: Any, clinic: Clinic) -> None:
    """Issue #11/#10: cancelling asks first and wants a reason; the visit then shows both."""
    from playwright.sync_api import expect

    desk = UserFactory(username="desk@north.example")
    MembershipFactory(user=desk, organization=clinic.organization, role="frontdesk")
    zone = clinic.organization.zone
    # real-clock: the clinic's own date, two days ahead: any hour works
    day = timezone.now().astimezone(zone).date() + timedelta(days=2)
    starts = timezone.make_aware(timezone.datetime.combine(day, timezone.datetime.min.time()), zone) + timedelta(
        hours=10
    )
    with organization_context(clinic.organization):
        visit = AppointmentFactory(patient=clinic.patient, practitioner=clinic.practitioner, starts_at=starts)
    base = live_server.url
    _sign_in(page, base, desk.username)
    page.goto(f"{base}/patients/appointments/{visit.pk}/")
    expect(page.get_by_test_id("appointment-status")).to_contain_text("Booked")
    expect(page.get_by_role("button", name="Cancelled")).to_have_count(0)  # no one-click cancel
    page.get_by_role("link", name="Cancel visit…").click()
    expect(page.get_by_role("heading", name="Cancel the visit of Rosalind Quenby?")).to_be_visible()
    reason = page.get_by_label("Why is the visit cancelled?")
    expect(reason).to_have_value("")  # nothing chosen for the user
    page.get_by_role("button", name="Cancel the visit").click()
    expect(page.get_by_text("Choose why the visit is cancelled.")).to_be_visible()
    with organization_context(clinic.organization):
        visit.refresh_from_db()
    assert visit.status == "booked"  # refused: nothing changed
    page.get_by_label("Why is the visit cancelled?").select_option(label="Patient unwell")
    page.get_by_role("button", name="Cancel the visit").click()
    expect(page.locator(".messages")).to_contain_text("Appointment cancelled.")
    expect(page.get_by_test_id("appointment-status")).to_contain_text("Cancelled")
    expect(page.get_by_test_id("appointment-status-reason")).to_contain_text("Patient unwell")
    expect(page.get_by_role("link", name="Cancel visit…")).to_have_count(0)
    with organization_context(clinic.organization):
        visit.refresh_from_db()
    assert (visit.status, visit.status_reason, visit.status_changed_by) == ("cancelled", "illness", desk)


def test_full_name_search(live_server: Any, page: Any, clinic: Clinic) -> None:
    """Issue #11 item 2: every word of a name in any order, an initial beside a whole name, the
    MRN's number and a phone's last 7 digits; an entry that cannot be searched says why."""
    from playwright.sync_api import expect

    with organization_context(clinic.organization):
        PatientFactory(given_name="Angela", family_name="Watson", preferred_name="Angie", mrn="NS-000731",
                       phone_mobile="+13126480199")  # fmt: skip
        PatientFactory(given_name="Angela", family_name="Brown", mrn="NS-000732")
        PatientFactory(given_name="Martin", family_name="Watson", mrn="NS-000733")
    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    page.goto(base + "/patients/")
    search = page.get_by_label("Find a patient")
    rows = page.locator("#patient-results tbody tr")
    for typed in ("Watson, Angela", "Angela W", "angie wat", "000731", "648-0199"):
        search.fill("")
        with page.expect_response(lambda r, typed=typed: _posted_query(r) == typed):
            search.press_sequentially(typed, delay=20)
        expect(rows).to_have_count(1)
        assert _results(page) == ["NS-000731"], typed
        assert typed.split()[0] not in page.url  # posted, never in the address
    search.fill("")
    with page.expect_response(lambda r: _posted_query(r) == "A W"):
        search.press_sequentially("A W", delay=20)
    expect(page.get_by_test_id("search-hint")).to_contain_text("Type at least 3 letters of a name")
    expect(rows).to_have_count(0)
    search.fill("")
    with page.expect_response(lambda r: _posted_query(r) == "Watson"):
        search.press_sequentially("Watson", delay=20)
    expect(rows).to_have_count(2)
    expect(page.get_by_test_id("search-hint")).to_have_count(0)
    page.get_by_role("link", name="Watson, Angela").click()
    expect(page.locator("main h1")).to_contain_text("Angela Watson")


def test_a_front_desk_day(live_server: Any, page: Any, clinic: Clinic) -> None:
    """Issue #11 item 3: today's arrivals (check one in), tomorrow's unconfirmed visits, and a
    patient's "R" reply worked from My tasks: every link opens, the task opens the reschedule form
    and is done once the visit is moved."""
    from playwright.sync_api import expect

    from engagement.services import reschedule_task_create

    desk = UserFactory(username="desk@north.example")
    MembershipFactory(user=desk, organization=clinic.organization, role="frontdesk")
    zone = clinic.organization.zone
    # real-clock: the clinic's own dates; visits at noon today, tomorrow and in two days
    today = timezone.now().astimezone(zone).date()

    def noon(day: Any) -> Any:
        return timezone.make_aware(timezone.datetime.combine(day, timezone.datetime.min.time()), zone) + timedelta(
            hours=12
        )

    with organization_context(clinic.organization):
        arriving = PatientFactory(given_name="Ottoline", family_name="Arrivesoon", preferred_name="")
        arrival = AppointmentFactory(patient=arriving, practitioner=clinic.practitioner, starts_at=noon(today))
        unsure = PatientFactory(given_name="Peregrine", family_name="Notyetsure", preferred_name="")
        AppointmentFactory(patient=unsure, practitioner=clinic.practitioner, starts_at=noon(today + timedelta(days=1)))
        moving = AppointmentFactory(
            patient=clinic.patient, practitioner=clinic.practitioner, starts_at=noon(today + timedelta(days=2))
        )
        task = reschedule_task_create(patient=clinic.patient)  # what an "R" reply to a reminder creates
    assert task.appointment_id == moving.pk
    base = live_server.url
    _sign_in(page, base, desk.username)

    arrivals = page.get_by_test_id("panel-arrivals")
    expect(arrivals).to_contain_text("Ottoline Arrivesoon")
    expect(page.get_by_test_id("panel-unconfirmed")).to_contain_text("Peregrine Notyetsure")
    arrivals.get_by_role("link", name=re.compile("Ottoline Arrivesoon")).click()
    page.get_by_role("button", name="Checked in").click()
    expect(page.get_by_test_id("appointment-status")).to_contain_text("Checked in")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tasks").click()
    row = page.get_by_test_id(f"task-{task.pk}")
    expect(row).to_contain_text("asked by text message to reschedule")
    # The patient link opens the patient's page (the Care plan tab is not the front desk's: 403).
    row.get_by_role("link", name="Quenby, Rosalind").click()
    expect(page.locator("main h1")).to_contain_text("Rosalind Quenby")
    page.go_back()
    page.get_by_test_id(f"task-{task.pk}").get_by_role("link", name="Reschedule…").click()
    expect(page.get_by_test_id("from-task")).to_contain_text("marked done when the visit is saved")
    page.get_by_label("Start time").fill("14:00")
    page.get_by_role("button", name="Reschedule", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Appointment rescheduled. Task marked done.")
    expect(page.locator("main h1")).to_contain_text("My tasks")
    expect(page.get_by_text("No open tasks.")).to_be_visible()
    with organization_context(clinic.organization):
        moving.refresh_from_db()
        task.refresh_from_db()
        arrival.refresh_from_db()
    assert moving.starts_at.astimezone(zone).hour == 14 and task.status == "done" and task.completed_by == desk
    assert arrival.status == "checked_in"
