"""Pulling from a local fake FHIR server: SMART Backend Services token, paged searchsets, a 500 once."""

from __future__ import annotations

from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from integrations.fhir.client import FhirClient, FhirClientError
from integrations.fhir.services import connection_client, fhir_pull_connection
from integrations.fhir.synthetic import synthea_bundle
from integrations.models import FhirConnection, JobStatus
from patients.models import Observation, Patient

pytestmark = pytest.mark.django_db


def _client(connection: FhirConnection) -> FhirClient:
    client = connection_client(connection, backoff=0.01)
    return client


def test_pull_pages_retries_and_moves_cursors(org_a, ehr, connection, monkeypatch) -> None:
    ehr.load(synthea_bundle(31, encounters=4), "2024-01-01T00:00:00Z")
    ehr.fail_once.add("Observation")  # one 500: retried with backoff
    monkeypatch.setattr("integrations.fhir.services.PULL_PAGE_SIZE", "5")
    job = fhir_pull_connection(organization=org_a, connection_id=connection.pk, client=_client(connection))
    assert job.status == JobStatus.SUCCEEDED, job.report
    observation_requests = [q for t, q in ehr.log if t == "Observation"]
    assert len(observation_requests) >= 4  # the 500, then several pages through `next` links
    assert ehr.tokens_issued == 1 and ehr.assertions[0]["aud"] == ehr.base + "/token"
    with organization_context(org_a):
        assert Patient.objects.count() == 1
        assert Observation.objects.count() == job.report["counts"]["Observation"]["created"] > 5
        connection.refresh_from_db()
        assert connection.cursors["Observation"] == "2024-01-01T00:00:00Z"
        assert connection.last_success_at is not None and connection.last_error == ""

    # Incremental: only what changed since the cursor is asked for and imported.
    ehr.log.clear()
    ehr.load(synthea_bundle(32, encounters=1, mrn="SECOND"), "2024-02-01T00:00:00Z")
    job = fhir_pull_connection(organization=org_a, connection_id=connection.pk, client=_client(connection))
    assert job.status == JobStatus.SUCCEEDED
    assert all("_lastUpdated=gt2024-01-01" in q for t, q in ehr.log if "_offset" not in q)
    assert job.report["counts"]["Patient"] == {"created": 1, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 0}
    with organization_context(org_a):
        assert Patient.objects.count() == 2


def test_pull_reports_a_server_that_keeps_failing(org_a, ehr, connection, monkeypatch) -> None:
    ehr.load(synthea_bundle(33, encounters=1), "2024-01-01T00:00:00Z")
    client = _client(connection)
    client.max_retries = 1
    ehr.fail_once.update({"Patient"})
    monkeypatch.setattr(ehr, "fail_once", _Always({"Patient"}))
    job = fhir_pull_connection(organization=org_a, connection_id=connection.pk, client=client)
    assert job.status == JobStatus.FAILED and "Patient: The server answered 500" in job.error
    with organization_context(org_a):
        connection.refresh_from_db()
        assert "Patient" not in connection.cursors and connection.last_success_at is None
        assert "500" in connection.last_error


class _Always(set):
    def discard(self, item: Any) -> None:  # never forget: fails every time
        pass


def test_client_refuses_links_to_other_servers() -> None:
    client = FhirClient("https://ehr.example/fhir")
    with pytest.raises(FhirClientError) as error:
        client.get("https://elsewhere.example/fhir/Patient")
    assert error.value.permanent


def test_connection_pages(org_a, admin_user, connection, client_for, nurse_user) -> None:
    from django.urls import reverse

    client = client_for(admin_user)
    assert "Fake EHR" in client.get(reverse("integrations:fhir_connections")).content.decode()
    page = client.get(reverse("integrations:fhir_connection", args=[connection.pk])).content.decode()
    assert "SMART Backend Services" in page and "BEGIN PRIVATE KEY" not in page
    assert client_for(nurse_user).get(reverse("integrations:fhir_connection", args=[connection.pk])).status_code == 403
