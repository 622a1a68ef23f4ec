"""Compliance's erasure pages: personas (compliance writes, a nurse 403, another organization 404),
a hold blocking an erasure on the page, and a decision recorded."""

from __future__ import annotations

from typing import Any

import pytest

from compliance.models import AccessLog
from healthcrm.tenancy import organization_context
from patients.models import ErasureRequest, ErasureStatus, LegalHold, Patient
from tests.factories import MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(org_a: Any) -> Patient:
    with organization_context(org_a):
        return PatientFactory(given_name="Pagella")


def test_only_compliance_of_the_organization_opens_the_pages(
    client_for: Any, patient: Patient, compliance_user: Any, nurse_user: Any, org_b: Any
) -> None:
    url = f"/patients/{patient.pk}/erasure/"
    officer = client_for(compliance_user)
    assert officer.get(url).status_code == 200
    assert officer.get("/patients/erasure/").status_code == 200
    assert client_for(nurse_user).get(url).status_code == 403
    assert client_for(nurse_user).get("/patients/erasure/").status_code == 403
    outsider = UserFactory(username="lake-compliance")
    MembershipFactory(user=outsider, organization=org_b, role="compliance")
    assert client_for(outsider).get(url).status_code == 404


def test_the_officer_records_holds_and_decides_a_request(
    client_for: Any, org_a: Any, patient: Patient, compliance_user: Any
) -> None:
    url = f"/patients/{patient.pk}/erasure/"
    officer = client_for(compliance_user)
    assert officer.post(url, {"action": "request"}).status_code == 302
    assert officer.post(url, {"action": "hold", "reason": ""}).status_code == 400  # a reason is required
    assert officer.post(url, {"action": "hold", "reason": "Matter 7"}).status_code == 302
    with organization_context(org_a):
        erasure = ErasureRequest.objects.get(patient=patient)
        hold = LegalHold.objects.get(patient=patient)
    response = officer.post(url, {"action": "execute", "request": erasure.pk, "decision_note": "ID seen"})
    assert response.status_code == 400 and "legal hold" in response.content.decode()
    assert officer.post(url, {"action": "release", "hold": "999999"}).status_code == 404
    assert officer.post(url, {"action": "release", "hold": hold.pk}).status_code == 302
    response = officer.post(url, {"action": "execute", "request": erasure.pk, "decision_note": "ID seen"})
    assert response.status_code == 302
    with organization_context(org_a):
        erasure.refresh_from_db()
        patient.refresh_from_db()
        assert erasure.status == ErasureStatus.COMPLETED and erasure.decision_note == "ID seen"
        assert patient.given_name == "Erased"
        # Each page and action is access-logged against the patient.
        assert (
            AccessLog.objects.filter(
                actor=compliance_user, records__contains=[f"patients.patient:{patient.pk}"]
            ).count()
            >= 5
        )
    page = officer.get(url).content.decode()
    assert "Pagella" not in page and "Completed" in page


def test_a_declined_request_needs_a_note(client_for: Any, org_a: Any, patient: Patient, compliance_user: Any) -> None:
    url = f"/patients/{patient.pk}/erasure/"
    officer = client_for(compliance_user)
    officer.post(url, {"action": "request"})
    with organization_context(org_a):
        erasure = ErasureRequest.objects.get(patient=patient)
    assert officer.post(url, {"action": "decline", "request": erasure.pk, "decision_note": ""}).status_code == 400
    assert officer.post(url, {"action": "bogus"}).status_code == 400
    assert officer.post(url, {"action": "decline", "request": erasure.pk, "decision_note": "No ID"}).status_code == 302
    with organization_context(org_a):
        erasure.refresh_from_db()
        assert erasure.status == ErasureStatus.DECLINED
