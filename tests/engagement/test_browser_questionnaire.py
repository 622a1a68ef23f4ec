"""Issue #15's "Done when" in real Chromium: a nurse sends a PHQ-9 from the patient record; the
patient opens the link from the SMS on a phone (390x844, no sign-in) and answers with a total of
12; the care team sees the urgent task in the team queue and the score on the timeline and on the
record's summary (the chart's latest observations, flagged high). axe-core finds no violation on
the pages visited, the patient's form included."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from engagement.models import QuestionnaireResponse
from engagement.questionnaires.services import questionnaire_defaults_install
from healthcrm.tenancy import organization_context
from patients.models import CareTask
from tests.axe import axe_violations
from tests.engagement.conftest import configure
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = "+13125550143"
# PHQ-9 answers, item by item (Not at all 0 ... Nearly every day 3): 2+2+1+2+1+1+2+1+0 = 12.
ANSWERS = [
    ("Little interest or pleasure in doing things", "More than half the days"),
    ("Feeling down, depressed, or hopeless", "More than half the days"),
    ("Trouble falling or staying asleep", "Several days"),
    ("Feeling tired or having little energy", "More than half the days"),
    ("Poor appetite or overeating", "Several days"),
    ("Feeling bad about yourself", "Several days"),
    ("Trouble concentrating on things", "More than half the days"),
    ("Moving or speaking so slowly", "Several days"),
    ("Thoughts that you would be better off dead", "Not at all"),
]


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
    # Quiet hours off: the browser runs on the real clock, and the link must go whatever the hour.
    configure(organization, quiet_start="00:00", quiet_end="00:00")
    with organization_context(organization):
        questionnaire_defaults_install()
        patient = PatientFactory(
            given_name="Rosalind", family_name="Quenby", phone_mobile=PHONE, preferred_channel="sms", timezone=""
        )
    return Clinic(organization, nurse, patient)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


def test_a_nurse_sends_a_phq9_the_patient_scores_12_on_a_phone_and_the_team_sees_it(
    live_server: Any, page: Any, browser: Any, clinic: Clinic, fake_twilio: Any, settings: Any, monkeypatch: Any
) -> None:
    from playwright.sync_api import expect

    from engagement import tasks

    base = live_server.url
    settings.PUBLIC_BASE_URL = base  # the link in the SMS points at the live server
    # No worker here: the send task the view schedules after commit runs in the server thread.
    monkeypatch.setattr(
        tasks.outbox_send_task,
        "delay",
        lambda organization_id, message_id: tasks.outbox_send_task.apply(args=(organization_id, message_id)),
    )
    _sign_in(page, base, clinic.nurse.username)

    # 1. The nurse sends a PHQ-9 from the record's Questionnaires tab.
    record = f"{base}/patients/{clinic.patient.pk}/"
    page.goto(record)
    tabs = page.get_by_role("navigation", name="Patient record")
    tabs.get_by_role("link", name="Questionnaires").click()
    page.wait_for_url(f"{base}/engagement/patients/{clinic.patient.pk}/questionnaires/")
    expect(page.get_by_role("heading", name="Send questionnaire")).to_be_visible()
    page.get_by_role("combobox", name="Questionnaire").select_option(label="PHQ-9 quick depression assessment")
    page.get_by_role("combobox", name="Send by").select_option("sms")
    page.get_by_role("button", name="Send questionnaire").click()
    expect(page.get_by_role("status")).to_contain_text("Questionnaire queued by SMS: it goes now.")

    # 2. The SMS carries the signed link and the first name only.
    [sent] = fake_twilio.accepted
    assert sent.to == PHONE and "Rosalind" in sent.body and "Quenby" not in sent.body
    link = re.search(r"https?://\S+/engagement/l/[^/\s]+/", sent.body)
    assert link is not None, sent.body

    # 3. The patient answers on a phone: no sign-in, 12 in total.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        form = phone.new_page()
        form.goto(link.group(0))
        expect(form.get_by_role("heading", level=1)).to_have_text("PHQ-9 quick depression assessment")
        expect(form.get_by_text("Hi Rosalind")).to_be_visible()
        assert form.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        assert axe_violations(form) == []
        # Save part of it, come back, finish.
        first_group = form.get_by_role("group", name=re.compile(ANSWERS[0][0]))
        first_group.get_by_label(ANSWERS[0][1]).check()
        form.get_by_role("button", name="Save and finish later").click()
        expect(form.get_by_test_id("questionnaire-saved")).to_be_visible()
        form.goto(link.group(0))
        expect(form.get_by_role("group", name=re.compile(ANSWERS[0][0])).get_by_label(ANSWERS[0][1])).to_be_checked()
        for question, answer in ANSWERS[1:]:
            form.get_by_role("group", name=re.compile(re.escape(question))).get_by_label(answer, exact=True).check()
        form.get_by_role("button", name="Send my answers").click()
        expect(form.get_by_test_id("questionnaire-done")).to_be_visible()
        help_box = form.get_by_test_id("crisis-help")
        expect(help_box).to_contain_text("Get help now")
        expect(help_box).to_contain_text("988")
        assert axe_violations(form) == []
        form.goto(link.group(0))  # the link is used: nothing shown
        expect(form.get_by_test_id("link-used")).to_be_visible()
    finally:
        phone.close()

    with organization_context(clinic.organization):
        answered = QuestionnaireResponse.objects.get()
        assert (answered.status, answered.score, answered.alerted) == ("completed", 12, True)
        task = CareTask.objects.get(patient=clinic.patient)
        assert (task.priority, task.assignee_role) == ("urgent", "nurse")

    # 4. The care team: the urgent task in the team queue...
    page.goto(base + "/patients/tasks/team/")
    row = page.locator("#task-queue tbody tr", has_text="questionnaire answers need review")
    expect(row).to_contain_text("Quenby, Rosalind")
    expect(row).to_contain_text("Urgent")
    # ... the score on the timeline ...
    page.goto(f"{base}/patients/{clinic.patient.pk}/timeline/")
    entry = page.locator("ol.timeline li", has_text="PHQ-9 total score")
    expect(entry).to_contain_text("12 (high)")
    # ... and on the record's summary, flagged.
    page.goto(record)
    observation = page.locator("section[aria-labelledby='observations'] tr", has_text="PHQ-9 total score")
    expect(observation).to_contain_text("12")
    expect(observation).to_contain_text("High")
    # The record's Questionnaires tab lists the response.
    page.goto(f"{base}/engagement/patients/{clinic.patient.pk}/questionnaires/")
    expect(page.get_by_test_id("questionnaire-responses")).to_contain_text("12 · Moderate depression")
