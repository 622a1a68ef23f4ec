"""Care coordination: care teams (object permissions), field groups per role, care plans from
templates, goal progress, tasks and queues, notes, the timeline, the event and notifications."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from compliance.models import AccessAction, AccessLog
from healthcrm.models import Notification
from healthcrm.tenancy import organization_context
from patients import services as record_services
from patients.care import services
from patients.care.defaults import care_plan_templates_install
from patients.care.selectors import (
    care_plans_for_patient,
    my_tasks,
    patients_due_for_follow_up,
    team_queue,
)
from patients.care.timeline import patient_timeline
from patients.models import CarePlan, CarePlanTemplate, CareTask, Goal, PatientNote, TaskStatus
from patients.signals import care_plan_updated
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient_a(org_a):
    with organization_context(org_a):
        return PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-1")


@pytest.fixture
def templates(org_a):
    with organization_context(org_a):
        care_plan_templates_install()
        return {t.code: t for t in CarePlanTemplate.objects.all()}


# -- Care team and object permissions ---------------------------------------------------------


def test_care_team_grants_and_revokes_object_permissions(org_a, nurse_user, coordinator_user, patient_a) -> None:
    with organization_context(org_a):
        member = services.care_team_add(
            patient=patient_a, user=coordinator_user, team_role="coordinator", actor=nurse_user
        )
        assert coordinator_user.has_perm("patients.view_patient", patient_a)
        assert coordinator_user.has_perm("patients.change_patient", patient_a)
        services.care_team_remove(member=member)
    with organization_context(org_a):
        from django.contrib.auth import get_user_model

        fresh = get_user_model().objects.get(pk=coordinator_user.pk)
        assert not fresh.has_perm("patients.view_patient", patient_a)
        assert LogEntry.objects.get_for_object(member).count() == 2


def test_care_team_refuses_users_of_another_organization(org_a, other_org_user, patient_a) -> None:
    from django.core.exceptions import ValidationError

    with organization_context(org_a), pytest.raises(ValidationError):
        services.care_team_add(patient=patient_a, user=other_org_user, team_role="nurse")


# -- Field groups per role --------------------------------------------------------------------

CLINICAL_PAGES = [
    "patients:care_plan",
    "patients:care_plan_start",
    "patients:task_add",
    "patients:note_add",
    "patients:condition_add",
    "patients:observation_add",
]


def test_front_desk_sees_demographics_and_appointments_but_no_clinical_details(
    client_for, frontdesk_user, patient_a, org_a
) -> None:
    with organization_context(org_a):
        record_services.condition_add(patient=patient_a, code="44054006", display="Diabetes secret")
        services.note_add(patient=patient_a, body="Note secret")
        AppointmentFactory(patient=patient_a)
    client = client_for(frontdesk_user)
    content = client.get(reverse("patients:detail", args=[patient_a.pk])).content.decode()
    assert "Northcott" in content and "N-1" in content and "Appointments" in content
    assert "Diabetes secret" not in content and "Problems" not in content and "Medications" not in content
    assert client.get(reverse("patients:appointments", args=[patient_a.pk])).status_code == 200
    timeline = client.get(reverse("patients:timeline", args=[patient_a.pk])).content.decode()
    assert "Follow-up with" in timeline and "Note secret" not in timeline
    for name in CLINICAL_PAGES:
        assert client.get(reverse(name, args=[patient_a.pk])).status_code == 403, name
    assert client.get(reverse("patients:team_queue")).status_code == 403
    with organization_context(org_a):
        assert AccessLog.objects.filter(action=AccessAction.DENIED).count() >= len(CLINICAL_PAGES)


def test_clinical_roles_see_everything(client_for, nurse_user, coordinator_user, patient_a, org_a) -> None:
    with organization_context(org_a):
        record_services.condition_add(patient=patient_a, code="44054006", display="Diabetes shown")
    for user in (nurse_user, coordinator_user):
        client = client_for(user)
        assert "Diabetes shown" in client.get(reverse("patients:detail", args=[patient_a.pk])).content.decode()
        for name in CLINICAL_PAGES:
            assert client.get(reverse(name, args=[patient_a.pk])).status_code == 200, name


@pytest.mark.parametrize("name", ["patients:care_plan", "patients:appointments", "patients:timeline"])
def test_tabs_three_personas(client_for, nurse_user, analyst_user, other_org_user, patient_a, name) -> None:
    url = reverse(name, args=[patient_a.pk])
    assert client_for(nurse_user).get(url).status_code == 200
    response = client_for(analyst_user).get(url)
    assert response.status_code == 403 and b"Northcott" not in response.content
    response = client_for(other_org_user).get(url)
    assert response.status_code == 404 and b"Northcott" not in response.content


def test_htmx_tab_returns_only_the_panel(client_for, nurse_user, patient_a) -> None:
    response = client_for(nurse_user).get(reverse("patients:timeline", args=[patient_a.pk]), HTTP_HX_REQUEST="true")
    assert b'id="tab-panel"' in response.content and b"<html" not in response.content


# -- Care plans, goals, event, notifications, audit -------------------------------------------


def test_start_from_template_copies_goals_interventions_tasks_and_notifies(
    org_a, nurse_user, coordinator_user, patient_a, templates, django_capture_on_commit_callbacks
) -> None:
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    care_plan_updated.connect(receiver)
    try:
        with organization_context(org_a):
            services.care_team_add(patient=patient_a, user=coordinator_user, team_role="coordinator")
            with django_capture_on_commit_callbacks(execute=True):
                plan = services.care_plan_start(patient=patient_a, template=templates["t2dm"], actor=nurse_user)
            assert plan.status == "active" and plan.title == "Type 2 diabetes"
            assert plan.goals.count() == 2 and plan.interventions.count() == 3
            assert set(plan.tasks.values_list("assignee_role", flat=True)) == {"nurse", "frontdesk", "coordinator"}
            assert plan.review_date == timezone.localdate() + timedelta(days=90)
            note = Notification.objects.get(recipient=coordinator_user)
            assert note.message == f"Care plan #{plan.pk} of patient #{patient_a.pk}: care plan started"
            assert not Notification.objects.filter(recipient=nurse_user).exists()  # the actor is not notified
            entries = LogEntry.objects.get_for_object(plan)
            assert "Type 2" not in json.dumps([e.changes for e in entries])
    finally:
        care_plan_updated.disconnect(receiver)
    assert received == [
        {
            "signal": care_plan_updated,
            "organization_id": org_a.pk,
            "patient_id": patient_a.pk,
            "care_plan_id": plan.pk,
            "change": "started",
        }
    ]


def test_event_is_not_sent_when_the_transaction_rolls_back(org_a, patient_a, templates) -> None:
    received = []
    care_plan_updated.connect(lambda sender, **kw: received.append(kw), weak=False, dispatch_uid="t")
    try:
        from django.db import transaction

        with organization_context(org_a), transaction.atomic():
            services.care_plan_start(patient=patient_a, template=templates["hypertension"])
            transaction.set_rollback(True)
    finally:
        care_plan_updated.disconnect(dispatch_uid="t")
    assert received == []


def test_goal_progress_from_latest_observations(org_a, patient_a, templates) -> None:
    now = timezone.now()
    with organization_context(org_a):
        services.care_plan_start(patient=patient_a, template=templates["t2dm"])
        states = {g.goal.observation_code: g.state for g in care_plans_for_patient(patient=patient_a)[0].goals}
        assert states == {"4548-4": "no_data", "85354-9": "no_data"}
        record_services.observation_record(
            patient=patient_a, code="4548-4", value_quantity=Decimal("8.1"), effective_at=now - timedelta(days=30)
        )
        record_services.observation_record(
            patient=patient_a, code="4548-4", value_quantity=Decimal("6.8"), effective_at=now - timedelta(days=1)
        )
        record_services.observation_record(
            patient=patient_a, code="85354-9", systolic=Decimal(150), diastolic=Decimal(85), effective_at=now
        )
        view = care_plans_for_patient(patient=patient_a)[0]
        states = {g.goal.observation_code: g.state for g in view.goals}
        assert states == {"4548-4": "met", "85354-9": "not_met"}  # latest HbA1c 6.8 < 7; systolic 150 >= 140
        bp = next(g for g in view.goals if g.goal.observation_code == "85354-9")
        assert bp.goal.target_display == "< 140/90 mm[Hg]"


def test_goal_with_a_bad_target_is_refused(org_a, patient_a, templates) -> None:
    from django.core.exceptions import ValidationError

    with organization_context(org_a):
        plan = services.care_plan_start(patient=patient_a, template=templates["post-discharge"])
        with pytest.raises(ValidationError):
            services.goal_add(care_plan=plan, description="x", observation_code="4548-4", targets=[{"value": "7"}])
        assert not Goal.objects.filter(care_plan=plan).exists()


def test_care_plan_status_lifecycle(org_a, patient_a, templates) -> None:
    from django.core.exceptions import ValidationError

    with organization_context(org_a):
        plan = services.care_plan_start(patient=patient_a, template=templates["prenatal"], activate=False)
        services.care_plan_update(care_plan=plan, status="active")
        services.care_plan_update(care_plan=plan, status="completed")
        with pytest.raises(ValidationError):
            services.care_plan_update(care_plan=plan, status="active")


# -- Tasks and queues ---------------------------------------------------------------------------


def test_my_tasks_role_and_person_overdue_first(org_a, nurse_user, coordinator_user, patient_a) -> None:
    today = timezone.localdate()
    with organization_context(org_a):
        later = services.task_assign(
            patient=patient_a, title="later", due_date=today + timedelta(5), assignee=nurse_user
        )
        stat = services.task_assign(
            patient=patient_a, title="stat", due_date=today + timedelta(5), assignee_role="nurse", priority="stat"
        )
        overdue = CareTask.objects.create(
            patient=patient_a, title="overdue", due_date=today - timedelta(2), assignee=nurse_user
        )
        services.task_assign(patient=patient_a, title="not mine", due_date=today, assignee=coordinator_user)
        assert list(my_tasks(user=nurse_user, role="nurse")) == [overdue, stat, later]
        assert list(team_queue(role="nurse")) == [stat]
        assert team_queue().count() == 4


def test_task_needs_an_assignee(org_a, patient_a) -> None:
    from django.core.exceptions import ValidationError

    with organization_context(org_a), pytest.raises(ValidationError):
        services.task_assign(patient=patient_a, title="nobody", due_date=date.today())


def test_complete_task_from_the_queue_with_htmx(
    client_for, nurse_user, analyst_user, other_org_user, patient_a, org_a
) -> None:
    with organization_context(org_a):
        task = services.task_assign(patient=patient_a, title="Call", due_date=date.today(), assignee_role="nurse")
    url = reverse("patients:task_status", args=[task.pk])
    assert client_for(other_org_user).post(url, {"status": "done"}).status_code == 404
    assert client_for(analyst_user).post(url, {"status": "done"}).status_code == 403
    client = client_for(nurse_user)
    page = client.get(reverse("patients:my_tasks")).content.decode()
    assert "Northcott" in page and "Call" in page
    response = client.post(url, {"status": "done"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and body.strip().startswith(f'<tr id="task-{task.pk}"') and "Done" in body
    with organization_context(org_a):
        task.refresh_from_db()
        assert task.status == TaskStatus.DONE and task.completed_by == nurse_user and task.completed_at
    assert "No open tasks" in client.get(reverse("patients:my_tasks")).content.decode()


def test_front_desk_completes_its_role_tasks_only(client_for, frontdesk_user, patient_a, org_a) -> None:
    with organization_context(org_a):
        desk = services.task_assign(patient=patient_a, title="Book", due_date=date.today(), assignee_role="frontdesk")
        nurse = services.task_assign(patient=patient_a, title="Labs", due_date=date.today(), assignee_role="nurse")
    client = client_for(frontdesk_user)
    assert client.post(reverse("patients:task_status", args=[nurse.pk])).status_code == 403
    assert client.post(reverse("patients:task_status", args=[desk.pk])).status_code == 302


def test_queue_query_counts_are_constant(
    client_for, nurse_user, patient_a, org_a, django_assert_max_num_queries
) -> None:
    client = client_for(nurse_user)
    client.get(reverse("dashboard"))
    for url in (reverse("patients:my_tasks"), reverse("patients:team_queue")):
        counts = []
        for batch in (1, 20):
            with organization_context(org_a):
                for _ in range(batch):
                    services.task_assign(
                        patient=PatientFactory(), title="t", due_date=date.today(), assignee=nurse_user
                    )
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url).status_code == 200
            counts.append(len(queries))
        assert counts[0] == counts[1], url
    with django_assert_max_num_queries(18):
        client.get(reverse("patients:my_tasks"))


def test_patients_due_for_follow_up(org_a, patient_a, templates) -> None:
    today = timezone.localdate()
    with organization_context(org_a):
        seen = PatientFactory()
        services.care_plan_start(patient=patient_a, template=templates["t2dm"])
        services.care_plan_start(patient=seen, template=templates["t2dm"])
        AppointmentFactory(patient=seen, starts_at=timezone.now() - timedelta(days=10), status="completed")
        no_plan = PatientFactory()
        assert list(patients_due_for_follow_up(days=90)) == [patient_a]
        plan = CarePlan.objects.get(patient=seen)
        CarePlan.objects.filter(pk=plan.pk).update(review_date=today - timedelta(days=1))
        assert set(patients_due_for_follow_up(days=90)) == {patient_a, seen}
        assert no_plan not in patients_due_for_follow_up(days=1)


# -- Notes and timeline -------------------------------------------------------------------------


def test_note_is_encrypted_and_audited_redacted(client_for, nurse_user, patient_a, org_a) -> None:
    client = client_for(nurse_user)
    response = client.post(reverse("patients:note_add", args=[patient_a.pk]), {"body": "Lives alone, needs a ride"})
    assert response.status_code == 302
    assert client.post(reverse("patients:note_add", args=[patient_a.pk]), {"body": ""}).status_code == 400
    with organization_context(org_a):
        note = PatientNote.objects.get()
        assert note.author == nurse_user and note.body == "Lives alone, needs a ride"
        with connection.cursor() as cursor:
            cursor.execute("SELECT body FROM patients_patientnote")
            assert "Lives alone" not in cursor.fetchone()[0]
        assert "Lives alone" not in json.dumps(LogEntry.objects.get_for_object(note).get().changes)
    assert "Lives alone" in client.get(reverse("patients:timeline", args=[patient_a.pk])).content.decode()


def test_timeline_merges_sources_newest_first_and_paginates(org_a, nurse_user, patient_a, templates) -> None:
    now = timezone.now()
    with organization_context(org_a):
        AppointmentFactory(patient=patient_a, starts_at=now - timedelta(days=3))
        record_services.observation_record(
            patient=patient_a, code="4548-4", value_quantity=Decimal("7.4"), effective_at=now - timedelta(days=2)
        )
        services.care_plan_start(patient=patient_a, template=templates["hypertension"], actor=nurse_user)
        services.note_add(patient=patient_a, body="hello", author=nurse_user)
        full = patient_timeline(patient=patient_a, clinical=True, page=1, per_page=50)
        kinds = [e.kind for e in full.entries]
        assert {"visit", "result", "plan", "task", "note"} <= set(kinds)
        assert [e.at for e in full.entries] == sorted((e.at for e in full.entries), reverse=True)
        first = patient_timeline(patient=patient_a, clinical=True, page=1, per_page=3)
        second = patient_timeline(patient=patient_a, clinical=True, page=2, per_page=3)
        assert first.has_next and second.has_previous
        assert first.entries + second.entries == full.entries[:6]
        assert [e.kind for e in patient_timeline(patient=patient_a, clinical=False).entries] == ["visit"]


def test_timeline_and_care_plan_tab_query_counts_do_not_grow(
    client_for, nurse_user, patient_a, org_a, templates, django_assert_max_num_queries
) -> None:
    client = client_for(nurse_user)
    client.get(reverse("dashboard"))
    urls = [reverse("patients:timeline", args=[patient_a.pk]), reverse("patients:care_plan", args=[patient_a.pk])]
    counts: dict[str, list[int]] = {u: [] for u in urls}
    for batch in (1, 4):
        with organization_context(org_a):
            for _ in range(batch):
                services.care_plan_start(patient=patient_a, template=templates["t2dm"], actor=nurse_user)
                services.note_add(patient=patient_a, body="n", author=nurse_user)
        for url in urls:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url).status_code == 200
            counts[url].append(len(queries))
    for url, (a, b) in counts.items():
        assert a == b, url
    with django_assert_max_num_queries(23):  # one query per timeline source (7: messages and device alerts too)
        client.get(urls[0])
    with django_assert_max_num_queries(23):
        client.get(urls[1])


# -- Patient list filters -----------------------------------------------------------------------


def test_patient_list_filters(client_for, nurse_user, coordinator_user, patient_a, org_a) -> None:
    today = timezone.localdate(timezone=org_a.zone)  # the list runs in the clinic's zone, not UTC's
    with organization_context(org_a):
        other = PatientFactory(family_name="Zzother", mrn="N-2")
        record_services.condition_add(patient=patient_a, code="44054006", display="T2DM")
        services.care_team_add(patient=patient_a, user=coordinator_user, team_role="coordinator")
        CareTask.objects.create(patient=other, title="late", due_date=today - timedelta(1), assignee=nurse_user)
        AppointmentFactory(patient=patient_a, starts_at=timezone.now() - timedelta(days=200), status="completed")
        AppointmentFactory(patient=other, starts_at=timezone.now() - timedelta(days=5), status="completed")
    client = client_for(nurse_user)

    def mrns(**params) -> set[str]:
        html = client.get(reverse("patients:list"), params, HTTP_HX_REQUEST="true").content.decode()
        return {m for m in ("N-1", "N-2") if f'<td data-label="MRN">{m}</td>' in html}

    assert mrns() == {"N-1", "N-2"}
    assert mrns(condition="44054006") == {"N-1"}
    assert mrns(care_team_member=coordinator_user.pk) == {"N-1"}
    assert mrns(has_overdue_tasks="true") == {"N-2"}
    assert mrns(has_overdue_tasks="false") == {"N-1"}
    assert mrns(last_visit_before=(today - timedelta(days=30)).isoformat()) == {"N-1"}
    assert mrns(last_visit_after=(today - timedelta(days=30)).isoformat()) == {"N-2"}
    assert mrns(q="Nor", condition="44054006") == {"N-1"}


def test_notifications_page_and_bell(client_for, nurse_user, coordinator_user, patient_a, org_a, templates) -> None:
    with organization_context(org_a):
        services.care_team_add(patient=patient_a, user=coordinator_user, team_role="coordinator")
        services.care_plan_start(patient=patient_a, template=templates["t2dm"], actor=nurse_user)
    client = client_for(coordinator_user)
    page = client.get(reverse("patients:notifications")).content.decode()
    assert "care plan started" in page and _bell_text(page) == "Notifications 1 unread" and "Northcott" not in page
    client.post(reverse("patients:notifications"))
    assert _bell_text(client.get(reverse("patients:notifications")).content.decode()) == "Notifications"


def _bell_text(page: str) -> str:
    """What the header's bell link says (its text, tags left out)."""
    match = re.search(r'<a class="bell"[^>]*>(.*?)</a>', page, re.S)
    assert match, "no bell in the header"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def test_the_bell_is_an_svg_icon_with_a_text_label(client_for, coordinator_user, org_a) -> None:
    """No emoji (an empty box where no emoji font is installed): an inline SVG, hidden from screen
    readers, beside the word "Notifications"; nothing inline the CSP would refuse."""
    page = client_for(coordinator_user).get(reverse("patients:notifications")).content.decode()
    bell = re.search(r'<a class="bell"[^>]*>(.*?)</a>', page, re.S).group(1)
    assert "\U0001f514" not in page and "&#128276;" not in page
    assert re.search(r'<svg [^>]*aria-hidden="true"', bell) and "</svg>" in bell
    assert _bell_text(page) == "Notifications"
    assert " style=" not in page and "<style" not in page
    assert not re.search(r"<script(?![^>]*\ssrc=)", page), "inline script"
