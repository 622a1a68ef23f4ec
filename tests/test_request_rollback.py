"""The request's transaction (TenantMiddleware): a response of 500 or more rolls back everything the
request wrote, the audit row of the change included; below 500 both commit together.

The probe view writes a patient through the service (which writes its auditlog row in the same
transaction), then answers with the status asked for or raises. This module is its URLconf."""

from __future__ import annotations

from datetime import date

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest, HttpResponse
from django.urls import path

from compliance.access import phi_free
from healthcrm.tenancy import organization_context
from healthcrm.urls import urlpatterns as app_urlpatterns
from patients.models import Patient
from patients.services import patient_create

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

MRN = "RB-0001"


@phi_free
def write_then_answer(request: HttpRequest, outcome: str) -> HttpResponse:
    patient_create(mrn=MRN, given_name="Probe", family_name="Rollback", date_of_birth=date(1980, 1, 2))
    if outcome == "raise":
        raise RuntimeError("the view failed after writing")
    return HttpResponse("written", status=int(outcome))


urlpatterns = [path("probe/write-then/<str:outcome>/", write_then_answer), *app_urlpatterns]


def _written(org) -> tuple[int, int]:
    """(patients, auditlog entries on patients) in `org`: the probe's write is the only one."""
    with organization_context(org):
        patients = Patient.objects.count()
        entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Patient)).count()
    return patients, entries


@pytest.mark.parametrize("outcome", ["raise", "500", "503"])
def test_a_failed_request_leaves_neither_its_write_nor_its_audit_row(client_for, nurse_user, org_a, outcome) -> None:
    client = client_for(nurse_user)
    client.raise_request_exception = False  # as in production: Django's handler answers 500
    response = client.get(f"/probe/write-then/{outcome}/")
    assert response.status_code == (500 if outcome == "raise" else int(outcome))
    assert _written(org_a) == (0, 0)


@pytest.mark.parametrize("outcome", ["200", "404"])
def test_a_request_below_500_commits_the_write_with_its_audit_row(client_for, nurse_user, org_a, outcome) -> None:
    response = client_for(nurse_user).get(f"/probe/write-then/{outcome}/")
    assert response.status_code == int(outcome)
    assert _written(org_a) == (1, 1)
