"""Issue #11, "Missing, that a clinic expects": tasks edited, reassigned and reopened with a history
of every change; goals and interventions changed from the care-plan tab; notes typed, signed and
amended (the signed original kept unchanged)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from auditlog.models import LogEntry
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from healthcrm.crypto import REDACTED
from healthcrm.models import Notification
from healthcrm.tenancy import organization_context
from patients.care import services
from patients.models import (
    CarePlan,
    CarePlanActivity,
    Intervention,
    PatientNote,
    TaskEvent,
    TaskStatus,
)
from tests.factories import MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

FAR = date(2031, 3, 1)  # a due date in the future under every test clock


@pytest.fixture
def patient(org_a):
    with organization_context(org_a):
        return PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-1")


@pytest.fixture
def plan(org_a, patient):
    with organization_context(org_a):
        return CarePlan.objects.create(patient=patient, title="Diabetes", status="active")


@pytest.fixture
def task(org_a, patient, plan, nurse_user):
    with organization_context(org_a):
        return services.task_assign(
            patient=patient, care_plan=plan, title="Order HbA1c", due_date=FAR, assignee=nurse_user
        )


@pytest.fixture
def goal(org_a, plan):
    with organization_context(org_a):
        return services.goal_add(
            care_plan=plan,
            description="HbA1c below 7 %",
            observation_code="4548-4",
            targets=[{"component": "", "comparator": "<", "value": "7"}],
            unit="%",
            due_date=FAR,
        )


def _events(org, task):
    with organization_context(org):
        return [(e.field, e.old_value, e.new_value, e.actor_label) for e in TaskEvent.objects.filter(task=task)]


# -- Task services: history rows per change --------------------------------------------------------


def test_editing_a_task_keeps_one_history_row_per_changed_field(org_a, task, nurse_user) -> None:
    with organization_context(org_a):
        services.task_update(
            task=task, title="Order HbA1c", due_date=FAR + timedelta(days=3), priority="urgent", actor=nurse_user
        )
        # Saving the same values again writes nothing.
        services.task_update(
            task=task, title="Order HbA1c", due_date=FAR + timedelta(days=3), priority="urgent", actor=nurse_user
        )
    assert sorted(_events(org_a, task)) == [
        ("due_date", "2031-03-01", "2031-03-04", nurse_user.username),
        ("priority", "Routine", "Urgent", nurse_user.username),
    ]
    with organization_context(org_a):
        services.task_update(
            task=task, title="Order HbA1c and lipids", details="fasting", due_date=FAR, priority="urgent"
        )
        assert TaskEvent.objects.filter(task=task).count() == 5  # title, details, due date back
        assert CarePlanActivity.objects.filter(task=task, change="task_updated").count() == 2


def test_task_history_values_are_encrypted_and_audit_diffs_redacted(org_a, task, nurse_user) -> None:
    with organization_context(org_a):
        services.task_update(task=task, title="Call about eviction", due_date=FAR, priority="routine", actor=nurse_user)
        event = TaskEvent.objects.get(task=task, field="title")
        assert (event.old_value, event.new_value) == ("Order HbA1c", "Call about eviction")
        with connection.cursor() as cursor:
            cursor.execute("SELECT old_value, new_value FROM patients_taskevent WHERE id = %s", [event.pk])
            assert "eviction" not in " ".join(cursor.fetchone())
        dump = json.dumps([e.changes for e in LogEntry.objects.get_for_object(event)])
        dump += json.dumps([e.changes for e in LogEntry.objects.get_for_object(task)])
        assert "eviction" not in dump and "HbA1c" not in dump
        assert LogEntry.objects.get_for_object(task).latest("pk").changes_dict["title"] == [REDACTED, REDACTED]


def test_reassigning_to_a_person_or_a_role_is_kept_in_the_history(
    org_a, task, nurse_user, coordinator_user, analyst_user
) -> None:
    coordinator_user.first_name, coordinator_user.last_name = "Cora", "Lind"
    coordinator_user.save()
    with organization_context(org_a):
        services.task_reassign(task=task, assignee=coordinator_user, actor=nurse_user)
        assert Notification.objects.filter(recipient=coordinator_user, kind="task.assigned").count() == 1
        services.task_reassign(task=task, assignee_role="frontdesk", actor=nurse_user)
        task.refresh_from_db()
        assert (task.assignee_id, task.assignee_role) == (None, "frontdesk")
        with pytest.raises(ValidationError):
            services.task_reassign(task=task, assignee=analyst_user)  # analysts cannot see tasks
        with pytest.raises(ValidationError):
            services.task_reassign(task=task, assignee_role="analyst")
        with pytest.raises(ValidationError):
            services.task_reassign(task=task)
    assert sorted(_events(org_a, task)) == [
        ("assignee", "Cora Lind", "Front desk (role)", nurse_user.username),
        ("assignee", nurse_user.username, "Cora Lind", nurse_user.username),
    ]


def test_status_changes_and_reopening_are_in_the_history(org_a, task, nurse_user, coordinator_user) -> None:
    with organization_context(org_a):
        services.task_set_status(task=task, status="done", actor=nurse_user)
        with pytest.raises(ValidationError):
            services.task_update(task=task, title="x", due_date=FAR, priority="routine")  # reopen it first
        with pytest.raises(ValidationError):
            services.task_reassign(task=task, assignee=coordinator_user)
        services.task_reopen(task=task, actor=coordinator_user)
        task.refresh_from_db()
        assert (task.status, task.completed_at, task.completed_by) == (TaskStatus.OPEN, None, None)
        services.task_reopen(task=task, actor=coordinator_user)  # already open: nothing more
        assert CarePlanActivity.objects.filter(task=task, change="task_reopened").count() == 1
    assert _events(org_a, task) == [
        ("status", "Done", "Open", coordinator_user.username),
        ("status", "Open", "Done", nurse_user.username),
    ]


# -- Goals and interventions --------------------------------------------------------------------------


def test_goal_status_follows_the_lifecycle_and_is_audited(org_a, goal, nurse_user, wall_clock) -> None:
    with organization_context(org_a):
        services.goal_set_status(goal=goal, status="achieved", actor=nurse_user)
        goal.refresh_from_db()
        assert goal.status == "achieved" and goal.status_date == timezone.localdate()
        services.goal_set_status(goal=goal, status="active", actor=nurse_user)  # taken up again
        services.goal_set_status(goal=goal, status="cancelled", actor=nurse_user)
        with pytest.raises(ValidationError, match="cancelled goal cannot become active"):
            services.goal_set_status(goal=goal, status="active")
        with pytest.raises(ValidationError):
            services.goal_set_status(goal=goal, status="<script>")
        assert CarePlanActivity.objects.filter(change="goal_status").count() == 3
        statuses = [e.changes_dict.get("status") for e in LogEntry.objects.get_for_object(goal).order_by("pk")]
        assert statuses[1:] == [["active", "achieved"], ["achieved", "active"], ["active", "cancelled"]]


def test_goal_target_and_dates_change_with_validation(org_a, goal, nurse_user) -> None:
    with organization_context(org_a):
        services.goal_update(
            goal=goal,
            targets=[{"component": "", "comparator": "<=", "value": "7.5"}],
            unit="%",
            start_date=FAR - timedelta(days=30),
            due_date=FAR,
            actor=nurse_user,
        )
        goal.refresh_from_db()
        assert goal.target_display == "<= 7.5 %" and goal.start_date == FAR - timedelta(days=30)
        with pytest.raises(ValidationError):
            services.goal_update(goal=goal, targets=[{"comparator": "~", "value": "x"}])
        with pytest.raises(ValidationError):
            services.goal_update(goal=goal, targets=goal.targets, start_date=FAR, due_date=FAR - timedelta(days=1))
        assert CarePlanActivity.objects.filter(change="goal_updated").count() == 1


def test_interventions_are_added_and_moved_until_final(org_a, plan, nurse_user) -> None:
    with organization_context(org_a):
        intervention = services.intervention_add(care_plan=plan, description="Diabetes education", actor=nurse_user)
        assert intervention.status == "planned"
        services.intervention_set_status(intervention=intervention, status="in_progress", actor=nurse_user)
        services.intervention_set_status(intervention=intervention, status="completed", actor=nurse_user)
        with pytest.raises(ValidationError):
            services.intervention_set_status(intervention=intervention, status="planned")
        with pytest.raises(ValidationError):
            services.intervention_add(care_plan=plan, description="x" * 256)
        services.care_plan_update(care_plan=plan, status="completed")
        with pytest.raises(ValidationError):
            services.intervention_add(care_plan=plan, description="Too late")
        assert [a.change for a in CarePlanActivity.objects.filter(care_plan=plan).order_by("pk")] == [
            "intervention_added",
            "intervention_status",
            "intervention_status",
            "status",
        ]
        assert "Diabetes" not in json.dumps([e.changes for e in LogEntry.objects.get_for_object(intervention)])


# -- Notes: drafts, signing, amendments ----------------------------------------------------------------


def test_only_the_author_edits_or_signs_a_draft(org_a, patient, nurse_user, provider_user) -> None:
    with organization_context(org_a):
        note = services.note_add(patient=patient, body="Draft text", note_type="phone_call", author=nurse_user)
        assert not note.is_signed and note.get_note_type_display() == "Phone call"
        services.note_update(note=note, body="Better text", note_type="progress", actor=nurse_user)
        with pytest.raises(PermissionDenied):
            services.note_update(note=note, body="Someone else's words", note_type="progress", actor=provider_user)
        with pytest.raises(PermissionDenied):
            services.note_sign(note=note, actor=provider_user)
        services.note_sign(note=note, actor=nurse_user)
        note.refresh_from_db()
        assert (note.body, note.note_type, note.signed_by, note.is_signed) == (
            "Better text",
            "progress",
            nurse_user,
            True,
        )


def test_a_signed_note_cannot_be_edited_and_an_amendment_keeps_the_original(
    org_a, patient, provider_user, nurse_user
) -> None:
    with organization_context(org_a):
        original = services.note_add(patient=patient, body="BP 150/95", sign=True, author=provider_user)
        with pytest.raises(ValidationError, match="amend it instead"):
            services.note_update(note=original, body="BP 130/85", note_type="general", actor=provider_user)
        with pytest.raises(ValidationError):
            services.note_amend(note=original, body="BP 130/85", reason="  ", actor=nurse_user)
        stamp = PatientNote.objects.get(pk=original.pk).updated_at
        amendment = services.note_amend(
            note=original, body="BP 130/85", reason="Wrong patient's reading", actor=nurse_user
        )
        kept = PatientNote.objects.get(pk=original.pk)
        assert (kept.body, kept.updated_at, kept.signed_by) == ("BP 150/95", stamp, provider_user)
        assert (amendment.amends, amendment.body, amendment.author, amendment.is_signed) == (
            original,
            "BP 130/85",
            nurse_user,
            True,
        )
        draft = services.note_add(patient=patient, body="draft", author=nurse_user)
        with pytest.raises(ValidationError):
            services.note_amend(note=draft, body="x", reason="y", actor=nurse_user)
        dump = json.dumps([e.changes for e in LogEntry.objects.filter(object_pk__in=[original.pk, amendment.pk])])
        assert "130/85" not in dump and "150/95" not in dump and "Wrong patient" not in dump
        with connection.cursor() as cursor:
            cursor.execute("SELECT amendment_reason FROM patients_patientnote WHERE id = %s", [amendment.pk])
            assert "Wrong" not in cursor.fetchone()[0]


# -- Views: personas --------------------------------------------------------------------------------


def _cells(html: str) -> int:
    return len(re.findall(r"<td[ >]", html))


def test_task_page_shows_the_history_to_whoever_may_work_on_it(
    client_for, org_a, task, nurse_user, frontdesk_user, analyst_user, other_org_user
) -> None:
    url = reverse("patients:task_detail", args=[task.pk])
    with organization_context(org_a):
        services.task_update(task=task, title="Order HbA1c", due_date=FAR, priority="stat", actor=nurse_user)
    page = client_for(nurse_user).get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "History" in html and "Routine" in html and "Stat" in html and "Reassign" in html
    assert client_for(frontdesk_user).get(url).status_code == 403  # a nurse's task, no clinical group
    assert client_for(analyst_user).get(url).status_code == 403
    assert client_for(other_org_user).get(url).status_code == 404
    with organization_context(org_a):
        desk_task = services.task_assign(patient=task.patient, title="Card", due_date=FAR, assignee_role="frontdesk")
    desk = client_for(frontdesk_user).get(reverse("patients:task_detail", args=[desk_task.pk])).content.decode()
    assert reverse("patients:detail", args=[task.patient_id]) in desk  # the link the role may follow
    assert reverse("patients:care_plan", args=[task.patient_id]) not in desk


def test_editing_and_reassigning_from_the_task_page(
    client_for, org_a, task, nurse_user, coordinator_user, analyst_user, other_org_user, wall_clock
) -> None:
    client = client_for(nurse_user)
    edit = reverse("patients:task_edit", args=[task.pk])
    today = timezone.now().astimezone(org_a.zone).date()  # the clinic's date, as the view sees it
    new_due = today + timedelta(days=5)
    data = {"title": "Order HbA1c", "details": "", "due_date": new_due.isoformat(), "priority": "urgent"}
    assert client.post(edit, data)["Location"] == reverse("patients:task_detail", args=[task.pk])
    past = {**data, "due_date": (today - timedelta(days=1)).isoformat()}
    refused = client.post(edit, past)
    assert refused.status_code == 400 and "The due date cannot be in the past." in refused.content.decode()
    hostile = client.post(edit, {**data, "priority": "<script>", "title": "x" * 300, "due_date": "9999-99-99"})
    assert hostile.status_code == 400 and "<script>" not in hostile.content.decode()
    reassign = reverse("patients:task_reassign", args=[task.pk])
    assert client.post(reassign, {"assignee": analyst_user.pk}).status_code == 400  # not in the list
    assert client.post(reassign, {"assignee": other_org_user.pk}).status_code == 400
    assert client.post(reassign, {"assignee": "", "assignee_role": ""}).status_code == 400
    assert client.post(reassign, {"assignee": coordinator_user.pk}).status_code == 302
    with organization_context(org_a):
        task.refresh_from_db()
    assert (task.due_date, task.priority, task.assignee) == (new_due, "urgent", coordinator_user)
    assert {e[0] for e in _events(org_a, task)} == {"due_date", "priority", "assignee"}
    assert client_for(analyst_user).post(edit, data).status_code == 403
    assert client_for(other_org_user).post(edit, data).status_code == 404
    assert client_for(other_org_user).post(reassign, {"assignee_role": "nurse"}).status_code == 404


def test_reopening_from_a_row_returns_the_row_of_its_table(client_for, org_a, task, nurse_user) -> None:
    client = client_for(nurse_user)
    tab = client.get(reverse("patients:care_plan", args=[task.patient_id])).content.decode()
    row = re.search(rf'<tr id="task-{task.pk}".*?</tr>', tab, re.S).group(0)
    assert _cells(row) == 6 and reverse("patients:task_detail", args=[task.pk]) in row
    done = client.post(
        reverse("patients:task_status", args=[task.pk]), {"status": "done", "row": "care_plan"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Reopen" in done and 'name="row" value="care_plan"' in done
    reopen = reverse("patients:task_reopen", args=[task.pk])
    body = client.post(reopen, {"row": "care_plan"}, HTTP_HX_REQUEST="true").content.decode()
    assert body.strip().startswith(f'<tr id="task-{task.pk}"') and _cells(body) == 6 and "Complete" in body
    client.post(reverse("patients:task_status", args=[task.pk]), {"status": "done"})
    body = client.post(reopen, {"row": "queue"}, HTTP_HX_REQUEST="true").content.decode()
    assert _cells(body) == 7 and "Northcott, Alma" in body
    with organization_context(org_a):
        task.refresh_from_db()
    assert task.status == "open"


def test_reopen_refusals(client_for, org_a, task, frontdesk_user, analyst_user, other_org_user) -> None:
    url = reverse("patients:task_reopen", args=[task.pk])
    assert client_for(frontdesk_user).post(url).status_code == 403  # a nurse's task
    assert client_for(analyst_user).post(url).status_code == 403
    assert client_for(other_org_user).post(url).status_code == 404
    assert client_for(analyst_user).get(reverse("patients:my_tasks")).status_code == 403


def test_goal_status_and_target_from_the_care_plan_tab(
    client_for, org_a, goal, nurse_user, frontdesk_user, analyst_user, other_org_user
) -> None:
    client = client_for(nurse_user)
    tab = client.get(reverse("patients:care_plan", args=[goal.care_plan.patient_id])).content.decode()
    assert f'action="{reverse("patients:goal_status", args=[goal.pk])}"' in tab
    assert '<option value="achieved">Achieved</option>' in tab
    status = reverse("patients:goal_status", args=[goal.pk])
    for user, code in ((frontdesk_user, 403), (analyst_user, 403), (other_org_user, 404)):
        assert client_for(user).post(status, {"status": "achieved"}).status_code == code
    client = client_for(nurse_user)
    response = client.post(status, {"status": "achieved"}, follow=True)
    assert "Goal marked achieved." in response.content.decode()
    assert "Achieved" in response.content.decode()
    bad = client.post(status, {"status": "\x00"}, follow=True).content.decode()
    assert "Choose a valid goal status." in bad
    edit = reverse("patients:goal_edit", args=[goal.pk])
    page = client.get(edit).content.decode()
    assert "Target: comparison" in page and 'value="7"' in page
    assert client.post(edit, {"comparator_0": "<", "value_0": "abc"}).status_code == 400
    data = {"comparator_0": "<=", "value_0": "6.5", "unit": "%", "start_date": "", "due_date": "2031-04-01"}
    assert client.post(edit, data).status_code == 302
    with organization_context(org_a):
        goal.refresh_from_db()
    assert (goal.status, goal.target_display, goal.due_date) == ("achieved", "<= 6.5 %", date(2031, 4, 1))
    for user, code in ((frontdesk_user, 403), (analyst_user, 403), (other_org_user, 404)):
        assert client_for(user).get(edit).status_code == code


def test_interventions_from_the_care_plan_tab(
    client_for, org_a, plan, nurse_user, frontdesk_user, other_org_user
) -> None:
    client = client_for(nurse_user)
    add = reverse("patients:intervention_add", args=[plan.pk])
    assert client.post(add, {"description": "Foot exam"}).status_code == 302
    assert "at most 255" in client.post(add, {"description": "x" * 300}, follow=True).content.decode()
    with organization_context(org_a):
        intervention = Intervention.objects.get(care_plan=plan)
    status = reverse("patients:intervention_status", args=[intervention.pk])
    tab = client.get(reverse("patients:care_plan", args=[plan.patient_id])).content.decode()
    assert f'action="{status}"' in tab and "Foot exam" in tab
    assert client.post(status, {"status": "in_progress"}).status_code == 302
    with organization_context(org_a):
        intervention.refresh_from_db()
    assert intervention.status == "in_progress"
    assert client_for(frontdesk_user).post(add, {"description": "x"}).status_code == 403
    assert client_for(frontdesk_user).post(status, {"status": "completed"}).status_code == 403
    assert client_for(other_org_user).post(add, {"description": "x"}).status_code == 404
    assert client_for(other_org_user).post(status, {"status": "completed"}).status_code == 404


def test_note_views_sign_and_amend(
    client_for, org_a, patient, nurse_user, provider_user, frontdesk_user, analyst_user, other_org_user
) -> None:
    client = client_for(provider_user)
    response = client.post(
        reverse("patients:note_add", args=[patient.pk]), {"note_type": "progress", "body": "Feels better"}
    )
    with organization_context(org_a):
        note = PatientNote.objects.get()
    assert response["Location"] == reverse("patients:note_detail", args=[note.pk]) and not note.is_signed
    detail = reverse("patients:note_detail", args=[note.pk])
    edit, sign = reverse("patients:note_edit", args=[note.pk]), reverse("patients:note_sign", args=[note.pk])
    # Another clinician may read the draft but not edit or sign it.
    assert client_for(nurse_user).get(detail).status_code == 200
    assert client_for(nurse_user).get(edit).status_code == 403
    assert client_for(nurse_user).post(sign).status_code == 403
    for user, code in ((frontdesk_user, 403), (analyst_user, 403), (other_org_user, 404)):
        assert client_for(user).get(detail).status_code == code
        assert client_for(user).post(sign).status_code == code
    client = client_for(provider_user)
    assert client.post(edit, {"note_type": "progress", "body": "Feels much better"}).status_code == 302
    assert client.post(sign).status_code == 302
    # Signed: the edit page refuses, the text stays.
    assert client.post(edit, {"body": "rewritten"})["Location"] == detail
    amend = reverse("patients:note_amend", args=[note.pk])
    assert client.post(amend, {"body": "Feels much better; BP 128/80"}).status_code == 400  # no reason
    response = client.post(amend, {"body": "Feels much better; BP 128/80", "reason": "Added the reading"}, follow=True)
    html = response.content.decode()
    assert "Amended on" in html and "by provider@north.example" in html and "Added the reading" in html
    assert "Feels much better; BP 128/80" in html and "Feels much better<" in html  # both versions
    with organization_context(org_a):
        note.refresh_from_db()
        assert note.body == "Feels much better" and note.amendments.count() == 1
    original = client.get(detail).content.decode()
    assert "Amended on" in original and "Original note" in original
    timeline = client.get(reverse("patients:timeline", args=[patient.pk])).content.decode()
    assert "Progress note (amendment)" in timeline and "Progress note (signed), amended since" in timeline
    assert client_for(frontdesk_user).get(amend).status_code == 403
    assert client_for(other_org_user).post(amend, {"body": "x", "reason": "y"}).status_code == 404


def test_a_colleague_in_another_role_is_listed_by_name_and_role(client_for, org_a, task, nurse_user) -> None:
    colleague = UserFactory(username="cora@north.example", first_name="Cora", last_name="Lind")
    MembershipFactory(user=colleague, organization=org_a, role="coordinator")
    analyst = UserFactory(username="ana@north.example", first_name="Ana", last_name="Lyst")
    MembershipFactory(user=analyst, organization=org_a, role="analyst")
    page = client_for(nurse_user).get(reverse("patients:task_detail", args=[task.pk])).content.decode()
    assert "Cora Lind · Care coordinator" in page and "Ana Lyst" not in page


def test_task_page_query_count_is_fixed(client_for, org_a, task, nurse_user, django_assert_max_num_queries) -> None:
    with organization_context(org_a):
        for day in range(5):
            services.task_update(task=task, title="t", due_date=FAR + timedelta(days=day), priority="routine")
    client = client_for(nurse_user)
    client.get(reverse("patients:task_detail", args=[task.pk]))
    with django_assert_max_num_queries(30):
        assert client.get(reverse("patients:task_detail", args=[task.pk])).status_code == 200


def test_a_closed_plan_offers_no_goal_or_intervention_changes(client_for, org_a, goal, nurse_user) -> None:
    with organization_context(org_a):
        services.care_plan_update(care_plan=goal.care_plan, status="completed")
    tab = client_for(nurse_user).get(reverse("patients:care_plan", args=[goal.care_plan.patient_id])).content
    assert b"goal_status" not in tab and reverse("patients:goal_status", args=[goal.pk]).encode() not in tab
