"""Screens of the duplicate warning, the merge and registration details (insurance, identifiers):
the right role, 403 for the others, 404 for the other organization."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse

from compliance.models import AccessLog
from healthcrm.tenancy import organization_context
from patients import services
from patients.models import Coverage, Patient, PatientIdentifier, PatientMerge
from patients.selectors import patient_list
from tests.factories import AppointmentFactory, MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def existing(org_a) -> Patient:
    with organization_context(org_a):
        return PatientFactory(
            given_name="Maria", family_name="Okafor", mrn="E-100", date_of_birth=date(1961, 4, 9), phone_mobile=""
        )


def _new_patient(**over: str) -> dict[str, str]:
    data = {
        "mrn": "E-200",
        "given_name": "maria",
        "family_name": "OKAFOR",
        "date_of_birth": "1961-04-09",
        "sex": "female",
        "phone_mobile": "",
        "email": "",
    }
    data.update(over)
    return data


# -- Possible duplicate at create ----------------------------------------------------------------


def test_create_warns_of_a_possible_duplicate_and_creates_only_when_confirmed(
    client_for, frontdesk_user, existing, org_a
) -> None:
    client = client_for(frontdesk_user)
    response = client.post(reverse("patients:create"), _new_patient())
    assert response.status_code == 200
    page = response.content.decode()
    assert "Possible duplicate" in page
    assert reverse("patients:detail", args=[existing.pk]) in page
    assert "E-100" in page
    with organization_context(org_a):
        assert Patient.objects.count() == 1
    response = client.post(reverse("patients:create"), _new_patient(create_anyway="on"))
    assert response.status_code == 302
    with organization_context(org_a):
        created = Patient.objects.get(mrn_bidx=Patient._meta.get_field("mrn_bidx").digest("E-200", org_a.pk))
    assert response["Location"] == reverse("patients:detail", args=[created.pk])


def test_create_warns_on_the_same_mobile_number(client_for, nurse_user, org_a) -> None:
    with organization_context(org_a):
        same_phone = PatientFactory(phone_mobile="+13125550190", mrn="P-1")
    response = client_for(nurse_user).post(
        reverse("patients:create"),
        _new_patient(given_name="Other", family_name="Person", phone_mobile="312-555-0190"),
    )
    assert response.status_code == 200
    assert reverse("patients:detail", args=[same_phone.pk]) in response.content.decode()


def test_a_taken_mrn_is_an_error_beside_the_warning(client_for, frontdesk_user, existing) -> None:
    response = client_for(frontdesk_user).post(reverse("patients:create"), _new_patient(mrn="e100"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Possible duplicate" in page
    assert "A patient with this MRN already exists in this organization." in page


def test_no_warning_for_another_organizations_patient(client_for, other_org_user, existing, org_b) -> None:
    response = client_for(other_org_user).post(reverse("patients:create"), _new_patient())
    assert response.status_code == 302
    with organization_context(org_b):
        assert Patient.objects.count() == 1


def test_create_is_refused_to_the_analyst(client_for, analyst_user) -> None:
    assert client_for(analyst_user).post(reverse("patients:create"), _new_patient()).status_code == 403


# -- Merge ----------------------------------------------------------------------------------------


@pytest.fixture
def twins(org_a, existing) -> tuple[Patient, Patient]:
    with organization_context(org_a):
        duplicate = PatientFactory(
            given_name="Maria", family_name="Okafor", mrn="E-101", date_of_birth=date(1961, 4, 9), phone_mobile=""
        )
        AppointmentFactory(patient=duplicate)
        services.condition_add(patient=duplicate, code="38341003", display="Hypertension")
    return existing, duplicate


def test_merge_flow_for_an_administrator(client_for, admin_user, twins, org_a) -> None:
    survivor, duplicate = twins
    client = client_for(admin_user)
    url = reverse("patients:merge", args=[duplicate.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "Likely the same person" in page.content.decode()  # the same name and birth date
    found = client.post(url, {"step": "search", "q": "E-100"})
    assert found.status_code == 200
    assert "E-100" in found.content.decode()
    review = client.post(url, {"step": "review", "survivor": survivor.pk})
    assert review.status_code == 200
    text = review.content.decode()
    assert "Appointments" in text and "Conditions" in text
    refused = client.post(url, {"step": "merge", "survivor": survivor.pk})  # not confirmed
    assert refused.status_code == 400
    with organization_context(org_a):
        assert Patient.objects.get(pk=duplicate.pk).is_active
    done = client.post(url, {"step": "merge", "survivor": survivor.pk, "confirm": "on"})
    assert done.status_code == 302
    assert done["Location"] == reverse("patients:detail", args=[survivor.pk])
    with organization_context(org_a):
        assert survivor.appointments.count() == 1
        assert survivor.conditions.count() == 1
        assert PatientMerge.objects.get().duplicate_id == duplicate.pk
        assert duplicate.pk not in set(patient_list(query="Okafor").values_list("pk", flat=True))
        log = AccessLog.objects.filter(view_name="patients:merge").latest("id")
    assert {f"patients.patient:{duplicate.pk}", f"patients.patient:{survivor.pk}"} <= set(log.records)
    assert log.action == "change"
    # The survivor's page shows what moved; the duplicate's page points to the survivor.
    survivor_page = client.get(reverse("patients:detail", args=[survivor.pk])).content.decode()
    assert "Hypertension" not in survivor_page  # administrators do not see the clinical group...
    merged_page = client.get(reverse("patients:detail", args=[duplicate.pk])).content.decode()
    assert "Merged into" in merged_page
    assert reverse("patients:detail", args=[survivor.pk]) in merged_page
    assert reverse("patients:merge", args=[duplicate.pk]) not in merged_page
    assert reverse("patients:edit", args=[duplicate.pk]) not in merged_page
    assert client.get(url).status_code == 200  # the merge page of a merged record says so
    assert "already merged" in client.get(url).content.decode()


def test_survivor_shows_moved_problem_to_clinical_staff(client_for, admin_user, nurse_user, twins, org_a) -> None:
    survivor, duplicate = twins
    client_for(admin_user).post(
        reverse("patients:merge", args=[duplicate.pk]), {"step": "merge", "survivor": survivor.pk, "confirm": "on"}
    )
    client = client_for(nurse_user)
    page = client.get(reverse("patients:detail", args=[survivor.pk])).content.decode()
    assert "Hypertension" in page
    assert reverse("patients:condition_add", args=[survivor.pk]) in page
    # The merged record offers no changes any more: no edit, no booking, no additions.
    merged = client.get(reverse("patients:detail", args=[duplicate.pk])).content.decode()
    assert "Merged into" in merged
    for name in ("patients:edit", "patients:condition_add", "patients:appointment_create"):
        assert reverse(name, args=[duplicate.pk]) not in merged, name


@pytest.mark.parametrize("persona", ["nurse_user", "frontdesk_user", "provider_user", "analyst_user"])
def test_merge_is_refused_without_the_permission(request, client_for, persona, twins, org_a) -> None:
    survivor, duplicate = twins
    client = client_for(request.getfixturevalue(persona))
    url = reverse("patients:merge", args=[duplicate.pk])
    assert client.get(url).status_code == 403
    answer = client.post(url, {"step": "merge", "survivor": survivor.pk, "confirm": "on"})
    assert answer.status_code == 403
    with organization_context(org_a):
        assert Patient.objects.get(pk=duplicate.pk).is_active


def test_merge_answers_404_across_organizations(client, twins, org_a, org_b) -> None:
    survivor, duplicate = twins
    other_admin = UserFactory(username="admin@lake.example")
    MembershipFactory(user=other_admin, organization=org_b, role="admin")
    client.force_login(other_admin)
    url = reverse("patients:merge", args=[duplicate.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"step": "merge", "survivor": survivor.pk, "confirm": "on"}).status_code == 404
    with organization_context(org_a):
        assert Patient.objects.get(pk=duplicate.pk).is_active


def test_merge_into_another_organizations_record_answers_404(client_for, admin_user, twins, org_a, org_b) -> None:
    _, duplicate = twins
    with organization_context(org_b):
        theirs = PatientFactory()
    url = reverse("patients:merge", args=[duplicate.pk])
    answer = client_for(admin_user).post(url, {"step": "merge", "survivor": theirs.pk, "confirm": "on"})
    assert answer.status_code == 404
    with organization_context(org_a):
        assert Patient.objects.get(pk=duplicate.pk).is_active


@pytest.mark.parametrize("survivor", ["", "abc", "-1", "99999999999999999999999", "1 OR 1=1"])
def test_merge_with_a_forged_choice_re_renders(client_for, admin_user, twins, survivor) -> None:
    _, duplicate = twins
    url = reverse("patients:merge", args=[duplicate.pk])
    answer = client_for(admin_user).post(url, {"step": "review", "survivor": survivor})
    assert answer.status_code == 400
    assert "Choose the record to keep" in answer.content.decode()


def test_search_terms_are_not_in_urls(client_for, admin_user, twins) -> None:
    _, duplicate = twins
    page = client_for(admin_user).get(reverse("patients:merge", args=[duplicate.pk])).content.decode()
    assert 'method="post"' in page and 'method="get"' not in page


# -- Insurance and identifiers --------------------------------------------------------------------


@pytest.fixture
def covered(org_a, existing) -> tuple[Coverage, PatientIdentifier]:
    with organization_context(org_a):
        coverage = services.coverage_add(
            patient=existing, payer_name="Acme Health", member_id="M-1", valid_from=date(2025, 1, 1)
        )
        identifier = services.patient_identifier_add(patient=existing, system="ehr", value="X-1")
    return coverage, identifier


def test_front_desk_adds_edits_and_removes_coverage(client_for, frontdesk_user, existing, covered, org_a) -> None:
    coverage, _ = covered
    client = client_for(frontdesk_user)
    detail = client.get(reverse("patients:detail", args=[existing.pk])).content.decode()
    assert reverse("patients:coverage_edit", args=[coverage.pk]) in detail
    add = reverse("patients:coverage_add", args=[existing.pk])
    bad = client.post(
        add, {"payer_name": "Beta", "member_id": "B-2", "valid_from": "2025-05-01", "valid_to": "2025-01-01"}
    )
    assert bad.status_code == 400
    assert "cannot end before it starts" in bad.content.decode()
    good = client.post(add, {"payer_name": "Beta", "member_id": "B-2", "valid_from": "2025-05-01"})
    assert good.status_code == 302
    edit = reverse("patients:coverage_edit", args=[coverage.pk])
    assert client.get(edit).status_code == 200
    saved = client.post(
        edit, {"payer_name": "Acme Health", "member_id": "M-9", "valid_from": "2025-01-01", "is_primary": "on"}
    )
    assert saved.status_code == 302
    with organization_context(org_a):
        assert Coverage.objects.get(pk=coverage.pk).member_id == "M-9"
        assert Coverage.objects.filter(patient=existing).count() == 2
    assert client.get(reverse("patients:coverage_remove", args=[coverage.pk])).status_code == 405
    assert client.post(reverse("patients:coverage_remove", args=[coverage.pk])).status_code == 302
    with organization_context(org_a):
        assert not Coverage.objects.filter(pk=coverage.pk).exists()


def test_front_desk_adds_edits_and_removes_identifiers(client_for, frontdesk_user, existing, covered, org_a) -> None:
    _, identifier = covered
    client = client_for(frontdesk_user)
    add = reverse("patients:identifier_add", args=[existing.pk])
    with organization_context(org_a):
        other = PatientFactory()
        services.patient_identifier_add(patient=other, system="ehr", value="TAKEN")
    taken = client.post(add, {"system": "ehr", "value": "TAKEN"})
    assert taken.status_code == 400
    assert "Another patient already has this identifier" in taken.content.decode()
    assert client.post(add, {"system": "lab", "value": "L-7"}).status_code == 302
    edit = reverse("patients:identifier_edit", args=[identifier.pk])
    assert client.post(edit, {"system": "ehr", "value": "X-2"}).status_code == 302
    with organization_context(org_a):
        assert PatientIdentifier.objects.get(pk=identifier.pk).value == "X-2"
    assert client.post(reverse("patients:identifier_remove", args=[identifier.pk])).status_code == 302
    with organization_context(org_a):
        assert sorted(i.value for i in PatientIdentifier.objects.filter(patient=existing)) == ["L-7"]


@pytest.mark.parametrize("persona", ["analyst_user", "nurse_user", "compliance_user"])
def test_registration_details_are_refused_without_the_role(request, client_for, persona, existing, covered) -> None:
    coverage, identifier = covered
    client = client_for(request.getfixturevalue(persona))
    for url in (
        reverse("patients:coverage_add", args=[existing.pk]),
        reverse("patients:coverage_edit", args=[coverage.pk]),
        reverse("patients:identifier_add", args=[existing.pk]),
        reverse("patients:identifier_edit", args=[identifier.pk]),
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("patients:coverage_remove", args=[coverage.pk])).status_code == 403
    assert client.post(reverse("patients:identifier_remove", args=[identifier.pk])).status_code == 403


def test_registration_details_answer_404_across_organizations(client_for, other_org_user, existing, covered) -> None:
    coverage, identifier = covered
    client = client_for(other_org_user)
    assert client.get(reverse("patients:coverage_add", args=[existing.pk])).status_code == 404
    assert client.get(reverse("patients:coverage_edit", args=[coverage.pk])).status_code == 404
    assert client.post(reverse("patients:coverage_remove", args=[coverage.pk])).status_code == 404
    assert client.get(reverse("patients:identifier_edit", args=[identifier.pk])).status_code == 404
    assert client.post(reverse("patients:identifier_remove", args=[identifier.pk])).status_code == 404
