"""The access-log guard (compliance/access.py): PHI fetched through a guarded fetch in a view that does
not wear @phi_view raises ImproperlyConfigured, so forgetting the decorator cannot show PHI unlogged.
This module is the URLconf of its probe views (the same fetch, with and without the decorator)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.urls import path

from compliance.access import phi_view
from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from healthcrm.urls import urlpatterns as app_urlpatterns
from patients.selectors import get_patient_for_user
from tests.factories import PatientFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def undecorated_patient(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    return HttpResponse(f"Patient #{patient.pk}")


urlpatterns = [
    path("probe/undecorated/<int:pk>/", undecorated_patient),
    path("probe/logged/<int:pk>/", phi_view(AccessAction.VIEW)(undecorated_patient)),
    *app_urlpatterns,
]


def _access_rows(org) -> int:
    with organization_context(org):
        return AccessLog.objects.count()


def test_a_guarded_fetch_in_a_view_without_phi_view_raises(client_for, nurse_user, org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
    client = client_for(nurse_user)
    with pytest.raises(ImproperlyConfigured, match="without @phi_view"):
        client.get(f"/probe/undecorated/{patient.pk}/")
    assert _access_rows(org_a) == 0
    # The same fetch under the decorator shows the patient and logs it.
    response = client.get(f"/probe/logged/{patient.pk}/")
    assert response.status_code == 200
    with organization_context(org_a):
        assert list(AccessLog.objects.values_list("records", flat=True)) == [[f"patients.patient:{patient.pk}"]]


def test_the_guard_itself_refuses_a_request_with_no_access_recorder(nurse_user, org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
        request = RequestFactory().get("/")
        request.user = nurse_user
        with pytest.raises(ImproperlyConfigured):
            get_patient_for_user(request, patient.pk)
