"""Issue #11 item 12: the people a task is assigned to, or a care team is made of, are only those in
a role that may see tasks, each labelled by full name and role."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from healthcrm.tenancy import organization_context
from patients.care import services
from patients.models import CareTask, CareTeamMember
from tests.factories import MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


def _person(organization: Any, role: str, first: str, last: str) -> Any:
    user = UserFactory(username=f"{first.lower()}@{organization.slug}.example", first_name=first, last_name=last)
    MembershipFactory(user=user, organization=organization, role=role)
    return user


@pytest.fixture
def staff(org_a: Any, org_b: Any) -> dict[str, Any]:
    people = {
        role: _person(org_a, role, first, last)
        for role, first, last in (
            ("nurse", "Nora", "Hale"),
            ("provider", "Priya", "Raman"),
            ("coordinator", "Carlos", "Vidal"),
            ("frontdesk", "Frankie", "Moss"),
            ("analyst", "Ana", "Lytic"),
            ("compliance", "Colin", "Audit"),
            ("admin", "Morgan", "Boss"),
        )
    }
    people["elsewhere"] = _person(org_b, "nurse", "Elsa", "Where")
    return people


@pytest.fixture
def patient_a(org_a: Any) -> Any:
    with organization_context(org_a):
        return PatientFactory(given_name="Alma", family_name="Northcott")


def test_task_form_offers_only_people_and_roles_who_see_tasks_by_full_name_and_role(
    client_for, staff, patient_a
) -> None:
    page = client_for(staff["nurse"]).get(f"/patients/{patient_a.pk}/tasks/new/").content.decode()
    for label in (
        "Nora Hale · Nurse",
        "Priya Raman · Provider",
        "Carlos Vidal · Care coordinator",
        "Frankie Moss · Front desk",
    ):
        assert label in page
    for name in ("Ana Lytic", "Colin Audit", "Morgan Boss", "Elsa Where"):
        assert name not in page
    assert '<option value="analyst">' not in page and '<option value="compliance">' not in page
    assert '<option value="admin">' not in page and '<option value="nurse">' in page


def test_a_task_for_someone_who_cannot_see_tasks_is_refused(client_for, staff, patient_a, org_a) -> None:
    client = client_for(staff["nurse"])
    due = (date.today() + timedelta(days=3)).isoformat()
    base = {"title": "Call back", "due_date": due, "priority": "routine"}
    for refused in ({"assignee": staff["analyst"].pk}, {"assignee": staff["admin"].pk}, {"assignee_role": "analyst"}):
        response = client.post(f"/patients/{patient_a.pk}/tasks/new/", {**base, **refused})
        assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert (
        client.post(f"/patients/{patient_a.pk}/tasks/new/", {**base, "assignee": staff["frontdesk"].pk}).status_code
        == 302
    )
    with organization_context(org_a):
        assert list(CareTask.objects.values_list("assignee__first_name", flat=True)) == ["Frankie"]
        with pytest.raises(ValidationError, match="role that sees care tasks"):
            services.task_assign(patient=patient_a, title="x", due_date=date.today(), assignee=staff["compliance"])
        with pytest.raises(ValidationError, match="This role cannot see care tasks"):
            services.task_assign(patient=patient_a, title="x", due_date=date.today(), assignee_role="analyst")


def test_care_team_lists_only_eligible_people_and_refuses_the_others(client_for, staff, patient_a, org_a) -> None:
    client = client_for(staff["nurse"])
    tab = client.get(f"/patients/{patient_a.pk}/care-plan/").content.decode()
    assert "Carlos Vidal · Care coordinator" in tab
    assert "Ana Lytic" not in tab and "Colin Audit" not in tab and "Morgan Boss" not in tab
    client.post(f"/patients/{patient_a.pk}/care-team/add/", {"user": staff["analyst"].pk, "team_role": "nurse"})
    client.post(
        f"/patients/{patient_a.pk}/care-team/add/", {"user": staff["coordinator"].pk, "team_role": "coordinator"}
    )
    with organization_context(org_a):
        assert list(CareTeamMember.objects.values_list("user__first_name", flat=True)) == ["Carlos"]
        with pytest.raises(ValidationError, match="role that sees care tasks"):
            services.care_team_add(patient=patient_a, user=staff["compliance"], team_role="nurse")


def test_team_queue_filters_by_task_roles_only(client_for, staff) -> None:
    page = client_for(staff["nurse"]).get("/patients/tasks/team/").content.decode()
    assert "Frankie Moss · Front desk" in page and "Ana Lytic" not in page
    assert '<option value="analyst">' not in page
