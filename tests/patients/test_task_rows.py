"""Issue #11, items 3 and 4: task rows link where the role may go (a front-desk reschedule task
opens the booking form and is done once the visit is moved), and completing a task returns the row
shaped for the table it sits in (one row partial per context)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from engagement.services import reschedule_task_create
from healthcrm.tenancy import organization_context
from patients.care import services
from patients.models import Appointment, CarePlan, CareTask, TaskStatus
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")
VISIT = datetime(2031, 3, 4, 10, 0, tzinfo=CHICAGO)


@pytest.fixture
def patient(org_a):
    with organization_context(org_a):
        return PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-1")


@pytest.fixture
def visit(org_a, patient):
    with organization_context(org_a):
        return AppointmentFactory(patient=patient, practitioner=PractitionerFactory(), starts_at=VISIT)


def _cells(html: str) -> int:
    return len(re.findall(r"<td[ >]", html))


def _hrefs(html: str) -> list[str]:
    table = html[html.index('id="task-queue"') :]
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', table[: table.index("</table>")])]


# -- Item 4: one row partial per context ----------------------------------------------------------


def test_completing_a_task_on_the_care_plan_tab_returns_a_care_plan_row(client_for, nurse_user, org_a, patient):
    with organization_context(org_a):
        plan = CarePlan.objects.create(patient=patient, title="Diabetes")
        task = services.task_assign(
            patient=patient, care_plan=plan, title="Order HbA1c", due_date=date(2031, 3, 1), assignee=nurse_user
        )
    client = client_for(nurse_user)
    tab = client.get(reverse("patients:care_plan", args=[patient.pk])).content.decode()
    row = re.search(rf'<tr id="task-{task.pk}".*?</tr>', tab, re.S).group(0)
    header = tab[tab.rindex("<thead>", 0, tab.index(row)) :]
    columns = header[: header.index("</thead>")].count("<th ")
    assert _cells(row) == columns == 6
    posted = dict(re.findall(r'name="(status|row)" value="([^"]*)"', row))
    assert posted == {"status": "done", "row": "care_plan"}

    response = client.post(reverse("patients:task_status", args=[task.pk]), posted, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and body.strip().startswith(f'<tr id="task-{task.pk}"') and "Done" in body
    assert _cells(body) == columns  # no extra patient cell: the columns stay in place
    assert "Northcott" not in body


def test_completing_a_task_in_a_queue_returns_a_queue_row(client_for, nurse_user, org_a, patient):
    with organization_context(org_a):
        task = services.task_assign(patient=patient, title="Call", due_date=date(2031, 3, 1), assignee=nurse_user)
    client = client_for(nurse_user)
    queue = client.get(reverse("patients:my_tasks")).content.decode()
    assert 'name="row" value="queue"' in queue
    body = client.post(
        reverse("patients:task_status", args=[task.pk]), {"status": "done", "row": "queue"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert _cells(body) == 7 and "Northcott, Alma" in body
    # An unknown context gets the queue's row, never an error.
    with organization_context(org_a):
        other = services.task_assign(patient=patient, title="x", due_date=date(2031, 3, 1), assignee=nurse_user)
    response = client.post(reverse("patients:task_status", args=[other.pk]), {"row": "<b>"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and _cells(response.content.decode()) == 7


# -- Item 3: My tasks links go where the role may go --------------------------------------------------


def test_every_link_on_the_front_desks_my_tasks_opens(client_for, frontdesk_user, org_a, patient, visit):
    with organization_context(org_a):
        services.task_assign(patient=patient, title="Ask for insurance card", due_date=date(2031, 3, 1),
                             assignee_role="frontdesk")  # fmt: skip
        moving = reschedule_task_create(patient=patient)
        moving.appointment = visit  # the visit the reminder was about (the clock here is before it)
        moving.save()
        nothing_booked = services.task_assign(
            patient=PatientFactory(), title="Rebook", due_date=date(2031, 3, 1), assignee_role="frontdesk",
            kind="reschedule",
        )  # fmt: skip
    client = client_for(frontdesk_user)
    page = client.get(reverse("patients:my_tasks")).content.decode()
    links = _hrefs(page)
    assert reverse("patients:detail", args=[patient.pk]) in links  # not the care plan (clinical: 403)
    assert reverse("patients:care_plan", args=[patient.pk]) not in links
    assert f"{reverse('patients:appointment_reschedule', args=[visit.pk])}?task={moving.pk}" in links
    assert f"{reverse('patients:appointment_create', args=[nothing_booked.patient_id])}?task={nothing_booked.pk}" in (
        links
    )
    for link in links:
        assert client.get(link).status_code == 200, link


def test_clinical_roles_still_go_to_the_care_plan(client_for, nurse_user, org_a, patient):
    with organization_context(org_a):
        services.task_assign(patient=patient, title="Call", due_date=date(2031, 3, 1), assignee=nurse_user)
    page = client_for(nurse_user).get(reverse("patients:my_tasks")).content.decode()
    assert reverse("patients:care_plan", args=[patient.pk]) in _hrefs(page)


def test_an_r_reply_task_names_the_visit_to_move(org_a, patient, visit, wall_clock):
    """The patient's next visit, booked or confirmed (a confirmed visit can still be moved)."""
    with organization_context(org_a):
        soon = AppointmentFactory(
            patient=patient, starts_at=(wall_clock + timedelta(days=3)).replace(microsecond=0), status="confirmed"
        )
        task = reschedule_task_create(patient=patient)
    assert (task.kind, task.appointment_id, task.assignee_role) == ("reschedule", soon.pk, "frontdesk")


def test_rescheduling_from_the_task_moves_the_visit_and_closes_the_task(
    client_for, frontdesk_user, other_org_user, analyst_user, org_a, patient, visit
):
    with organization_context(org_a):
        task = reschedule_task_create(patient=patient)
        task.appointment = visit
        task.save()
    url = f"{reverse('patients:appointment_reschedule', args=[visit.pk])}?task={task.pk}"
    assert client_for(other_org_user).get(url).status_code == 404
    assert client_for(analyst_user).get(url).status_code == 403
    client = client_for(frontdesk_user)
    form = client.get(url).content.decode()
    assert "it is marked done when the visit is saved" in form
    data = {"practitioner": visit.practitioner_id, "date": "2031-03-05", "start_time": "11:00", "duration": 30}
    response = client.post(url, data, follow=True)
    assert response.redirect_chain[-1][0] == reverse("patients:my_tasks")
    assert "Appointment rescheduled. Task marked done." in response.content.decode()
    with organization_context(org_a):
        visit.refresh_from_db()
        task.refresh_from_db()
    assert visit.starts_at == datetime(2031, 3, 5, 11, 0, tzinfo=CHICAGO)
    assert (task.status, task.completed_by) == (TaskStatus.DONE, frontdesk_user)


def test_booking_from_a_task_with_no_visit_closes_it(client_for, frontdesk_user, org_a, patient):
    with organization_context(org_a):
        task = reschedule_task_create(patient=patient)
        practitioner = PractitionerFactory()
    assert task.appointment_id is None
    url = f"{reverse('patients:appointment_create', args=[patient.pk])}?task={task.pk}"
    data = {"practitioner": practitioner.pk, "kind": "in_person", "appointment_type": "follow_up",
            "date": "2031-03-05", "start_time": "09:00", "duration": 30}  # fmt: skip
    response = client_for(frontdesk_user).post(url, data)
    assert response.status_code == 302 and response["Location"] == reverse("patients:my_tasks")
    with organization_context(org_a):
        task.refresh_from_db()
        assert Appointment.objects.filter(patient=patient).count() == 1
    assert task.status == TaskStatus.DONE


def test_a_task_of_another_patient_or_another_role_is_left_open(
    client_for, frontdesk_user, org_a, org_b, patient, visit
):
    with organization_context(org_a):
        elsewhere = reschedule_task_create(patient=PatientFactory())
        nurses = services.task_assign(patient=patient, title="Labs", due_date=date(2031, 3, 1), assignee_role="nurse")
    with organization_context(org_b):
        foreign = CareTask.objects.create(patient=PatientFactory(), title="x", due_date=date(2031, 3, 1),
                                          assignee_role="frontdesk")  # fmt: skip
    client = client_for(frontdesk_user)
    base = reverse("patients:appointment_reschedule", args=[visit.pk])
    assert client.get(f"{base}?task={foreign.pk}").status_code == 404  # another organization's id
    assert client.get(f"{base}?task=abc").status_code == 200  # ignored
    data = {"practitioner": visit.practitioner_id, "date": "2031-03-05", "start_time": "11:00", "duration": 30}
    for task in (elsewhere, nurses):
        response = client.post(f"{base}?task={task.pk}", data)
        assert response["Location"] == reverse("patients:appointment_detail", args=[visit.pk])
        with organization_context(org_a):
            task.refresh_from_db()
        assert task.status == TaskStatus.OPEN
        data = {**data, "start_time": "12:00"}
