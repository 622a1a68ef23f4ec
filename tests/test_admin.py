"""Django admin: organization admins see their organization only; PHI admin pages are access-logged."""

from __future__ import annotations

import pytest
from django.urls import reverse

from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from tests.factories import MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def org_admin(org_a):
    user = UserFactory(username="admin@north.example", is_staff=True)
    MembershipFactory(user=user, organization=org_a, role="admin")
    return user


def test_org_admin_sees_only_their_organization_and_views_are_logged(client_for, org_admin, org_a, org_b) -> None:
    with organization_context(org_a):
        mine = PatientFactory(family_name="Adminvisible")
    with organization_context(org_b):
        theirs = PatientFactory(family_name="Otherclinic")
    client = client_for(org_admin)
    changelist = client.get(reverse("admin:patients_patient_changelist"))
    assert changelist.status_code == 200
    assert b"Adminvisible" in changelist.content and b"Otherclinic" not in changelist.content
    assert client.get(reverse("admin:patients_patient_change", args=[mine.pk])).status_code == 200
    # Another organization's record: not found (the admin redirects with "doesn't exist").
    response = client.get(reverse("admin:patients_patient_change", args=[theirs.pk]))
    assert response.status_code == 302
    orgs = client.get(reverse("admin:healthcrm_organization_changelist")).content
    assert b"North Clinic" in orgs and b"Lake Clinic" not in orgs
    with organization_context(org_a):
        actions = sorted(AccessLog.objects.values_list("action", flat=True))
    assert actions == [AccessAction.LIST, AccessAction.VIEW]


def test_non_staff_roles_cannot_open_the_admin(client_for, nurse_user) -> None:
    response = client_for(nurse_user).get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admin_search_uses_blind_indexes(client_for, org_admin, org_a) -> None:
    with organization_context(org_a):
        PatientFactory(family_name="Searchable", mrn="S-42")
        PatientFactory(family_name="Hiddenaway")
    # The typed term is moved out of the URL (a redirect to ?qk=<key>); the search still works.
    content = client_for(org_admin).get(reverse("admin:patients_patient_changelist"), {"q": "s42"}, follow=True).content
    assert b"Searchable" in content and b"Hiddenaway" not in content
