"""Issue #11, "Missing, that a clinic expects", in real Chromium: a nurse reassigns a task and moves
its due date and sees both in the task's history; a provider writes a progress note, signs it and
amends it, and sees the amendment above the unchanged original; a goal is marked achieved from the
care-plan tab. axe-core finds no violation on the pages visited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from healthcrm.tenancy import organization_context
from patients.care import services
from patients.care.defaults import care_plan_templates_install
from patients.models import CarePlanTemplate, CareTask, Goal, PatientNote, TaskEvent
from tests.axe import axe_violations
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass
class Clinic:
    organization: Any
    nurse: Any
    provider: Any
    coordinator: Any
    patient: Any


@pytest.fixture
def clinic(transactional_db: None) -> Clinic:
    organization = OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)
    people = {}
    for role, first, last in (("nurse", "Nora", "Hale"), ("provider", "Piet", "Vos"), ("coordinator", "Cora", "Lind")):
        people[role] = UserFactory(username=f"{role}@north.example", first_name=first, last_name=last)
        MembershipFactory(user=people[role], organization=organization, role=role)
    with organization_context(organization):
        care_plan_templates_install()
        patient = PatientFactory(given_name="Rosalind", family_name="Quenby", mrn="Q-1")
    return Clinic(organization, people["nurse"], people["provider"], people["coordinator"], patient)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def _no_violations(page: Any) -> None:
    violations = axe_violations(page)
    assert violations == [], violations


def test_a_nurse_reassigns_a_task_moves_its_due_date_and_sees_the_history(
    live_server: Any, page: Any, clinic: Clinic
) -> None:
    from playwright.sync_api import expect

    # real-clock: the clinic's own date; the due dates are days ahead of it, any hour works
    today = timezone.now().astimezone(clinic.organization.zone).date()
    with organization_context(clinic.organization):
        task = services.task_assign(
            patient=clinic.patient, title="Call about glucose meter", due_date=today + timedelta(days=3),
            assignee=clinic.nurse,
        )  # fmt: skip
    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My tasks").click()
    _no_violations(page)
    page.get_by_test_id(f"task-{task.pk}").get_by_role("link", name="Details").click()
    expect(page.locator("main h1")).to_contain_text("Call about glucose meter")
    expect(page.get_by_text("No changes since the task was created")).to_be_visible()
    _no_violations(page)

    later = today + timedelta(days=10)
    page.get_by_label("Due date").fill(later.isoformat())
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".messages")).to_contain_text("Task saved.")
    expect(page.get_by_test_id("task-due")).to_contain_text(later.isoformat())

    page.get_by_label("Assign to a person").select_option(label="Cora Lind · Care coordinator")
    page.get_by_role("button", name="Reassign").click()
    expect(page.locator(".messages")).to_contain_text("Task reassigned.")
    expect(page.get_by_test_id("task-assignee")).to_have_text("Cora Lind")
    events = page.get_by_test_id("task-event")
    expect(events).to_have_count(2)
    expect(events.nth(0)).to_contain_text("Assigned to")
    expect(events.nth(0)).to_contain_text("Nora Hale")
    expect(events.nth(0)).to_contain_text("Cora Lind")
    expect(events.nth(1)).to_contain_text("Due date")
    expect(events.nth(1)).to_contain_text((today + timedelta(days=3)).isoformat())
    expect(events.nth(1)).to_contain_text(later.isoformat())
    expect(events.nth(1)).to_contain_text(clinic.nurse.username)
    _no_violations(page)
    with organization_context(clinic.organization):
        task = CareTask.objects.get(pk=task.pk)
        assert (task.assignee_id, task.due_date) == (clinic.coordinator.pk, later)
        assert TaskEvent.objects.filter(task=task).count() == 2


def test_a_provider_signs_a_note_and_amends_it_both_versions_visible(
    live_server: Any, page: Any, clinic: Clinic
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _sign_in(page, base, clinic.provider.username)
    page.goto(f"{base}/patients/{clinic.patient.pk}/timeline/")
    page.get_by_label("Type").select_option(label="Progress note")
    page.get_by_role("textbox", name="Note").fill("Walks 20 minutes a day. BP 150/95.")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".messages")).to_contain_text("Draft note saved")
    expect(page.locator("main h1")).to_have_text("Progress note (draft)")
    _no_violations(page)
    page.get_by_role("button", name="Sign note").click()
    expect(page.locator(".messages")).to_contain_text("Note signed.")
    expect(page.get_by_test_id("note-signed")).to_contain_text(f"by {clinic.provider.username}")
    expect(page.get_by_role("link", name="Edit draft")).to_have_count(0)  # signed: final

    page.get_by_role("link", name="Amend…").click()
    _no_violations(page)
    page.get_by_label("Amended note").fill("Walks 20 minutes a day. BP 130/85.")
    page.get_by_label("Reason for the amendment").fill("Typed the wrong reading")
    page.get_by_role("button", name="Sign amendment").click()
    expect(page.locator(".messages")).to_contain_text("Amendment signed.")
    heading = page.locator("main h2").first
    expect(heading).to_contain_text("Amended on")
    expect(heading).to_contain_text(f"by {clinic.provider.username}")
    expect(page.locator("main")).to_contain_text("Typed the wrong reading")
    expect(page.locator("main")).to_contain_text("BP 130/85.")
    original = page.locator("article.original")
    expect(original).to_contain_text("Original note")
    expect(original).to_contain_text("BP 150/95.")
    _no_violations(page)

    page.goto(f"{base}/patients/{clinic.patient.pk}/timeline/")
    expect(page.locator("#tab-panel")).to_contain_text("Progress note (amendment)")
    expect(page.locator("#tab-panel")).to_contain_text("Progress note (signed), amended since")
    _no_violations(page)
    with organization_context(clinic.organization):
        first, second = PatientNote.objects.order_by("pk")
        assert first.body == "Walks 20 minutes a day. BP 150/95." and second.amends_id == first.pk


def test_a_goal_is_marked_achieved_from_the_care_plan_tab(live_server: Any, page: Any, clinic: Clinic) -> None:
    from playwright.sync_api import expect

    with organization_context(clinic.organization):
        plan = services.care_plan_start(patient=clinic.patient, template=CarePlanTemplate.objects.get(code="t2dm"))
        goal = Goal.objects.filter(care_plan=plan).first()
    base = live_server.url
    _sign_in(page, base, clinic.nurse.username)
    page.goto(f"{base}/patients/{clinic.patient.pk}/care-plan/")
    row = page.get_by_test_id(f"goal-{goal.pk}")
    expect(row.get_by_test_id("goal-status")).to_have_text("Active")
    _no_violations(page)
    row.get_by_label("New status of goal").select_option(label="Achieved")
    row.get_by_role("button", name="Set status").click()
    expect(page.locator(".messages")).to_contain_text("Goal marked achieved.")
    row = page.get_by_test_id(f"goal-{goal.pk}")
    expect(row.get_by_test_id("goal-status")).to_have_text("Achieved")
    expect(row.get_by_role("option", name="Achieved")).to_have_count(0)  # only where it may go from here
    _no_violations(page)
    with organization_context(clinic.organization):
        assert Goal.objects.get(pk=goal.pk).status == "achieved"
