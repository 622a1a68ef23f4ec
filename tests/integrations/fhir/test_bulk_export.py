"""Bulk Data `$export` pulls against the loopback FHIR server of fake_ehr.py: kick-off, 202 polling
with Retry-After (on an injected clock: no real waiting), the manifest, NDJSON downloads with the
access token, `_since` from the last transactionTime, error files, refusals, the deadline, cleanup."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict
from django.urls import reverse

from healthcrm.tenancy import organization_context
from integrations.admin import FhirConnectionAdminForm
from integrations.fhir.services import connection_client, fhir_pull_connection
from integrations.fhir.synthetic import synthea_bundle
from integrations.models import EXPORT_CURSOR, FhirConnection, ImportJob, JobStatus
from patients.models import Observation, Patient
from tests.integrations.fhir.fake_ehr import FakeEhr


class FakeTime:
    """The client's clock and sleep: a wait moves the clock, nothing really waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: Any = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep()
        self.now += seconds


def _load(ehr: FakeEhr, seed: int) -> int:
    """One patient and its observations on the server; returns how many observations."""
    ehr.load(synthea_bundle(seed, encounters=2, observations_per_encounter=3), "2024-01-01T00:00:00Z")
    ehr.resources = {t: ehr.resources[t] for t in ("Patient", "Observation")}
    return len(ehr.resources["Observation"])


def _connection(org: Any, ehr: FakeEhr, **fields: Any) -> FhirConnection:
    fields.setdefault("export_mode", "system")
    with organization_context(org):
        return FhirConnection.objects.create(
            name="Bulk EHR",
            base_url=ehr.base,
            auth_type="bearer",
            bearer_token="token-bulk",
            resource_types=["Patient", "Observation"],
            **fields,
        )


def _pull(org: Any, connection: FhirConnection, time: FakeTime, **kwargs: Any) -> ImportJob:
    with organization_context(org):
        connection = FhirConnection.objects.get(pk=connection.pk)
    client = connection_client(connection, backoff=0.01, clock=time.clock, sleep=time.sleep)
    job = fhir_pull_connection(organization=org, connection_id=connection.pk, client=client, **kwargs)
    assert job is not None
    return job


@pytest.mark.django_db
def test_an_export_imports_its_files_once_in_dependency_order_then_asks_only_for_what_changed(
    org_a: Any, admin_user: Any, client_for: Any, ehr: FakeEhr
) -> None:
    observations = _load(ehr, 61)
    connection = _connection(org_a, ehr)
    time = FakeTime()
    seen: list[tuple[dict[str, Any], str]] = []

    def look() -> None:  # while the server prepares the files: the job says so
        with organization_context(org_a):
            running = ImportJob.objects.get(connection=connection)
        page = client_for(admin_user).get(reverse("integrations:fhir_import_job", args=[running.pk]))
        seen.append((running.report["progress"], page.content.decode()))

    time.on_sleep = look
    job = _pull(org_a, connection, time)

    assert job.status in (JobStatus.SUCCEEDED, JobStatus.WARNINGS), (job.error, job.report["failures"])
    path, query, headers = ehr.kickoffs[0]
    assert path == "/$export" and query == {"_type": "Patient,Observation"}  # no _since the first time
    assert headers["Prefer"] == "respond-async" and headers["Accept"] == "application/fhir+json"
    assert time.sleeps == [1.0, 1.0] and ehr.polls == 3  # Retry-After honoured twice, then the manifest
    assert seen[0][0]["export"] == "50% done" and '(it says: <span id="export-progress">50% done</span>)' in seen[0][1]
    # The manifest lists Observation first; Patient is imported first, each with the token.
    assert ehr.downloads == [
        ("/export-files/1/Patient.ndjson", "Bearer token-bulk"),
        ("/export-files/1/Observation.ndjson", "Bearer token-bulk"),
    ]
    assert ehr.deletes == ["/export-status/1"]
    assert job.report["counts"]["Patient"]["created"] == 1
    assert job.report["counts"]["Observation"]["created"] == observations
    with organization_context(org_a):
        assert Patient.objects.count() == 1 and Observation.objects.count() == observations
        connection.refresh_from_db()
        assert connection.cursors[EXPORT_CURSOR] == "2024-03-01T12:00:00.000Z"
        assert connection.last_success_at is not None and connection.pull_claimed_until is None

    time.on_sleep = None
    again = _pull(org_a, connection, time)
    assert again.status == JobStatus.SUCCEEDED, again.error
    assert ehr.kickoffs[1][1] == {"_type": "Patient,Observation", "_since": "2024-03-01T12:00:00.000Z"}
    assert ehr.deletes == ["/export-status/1", "/export-status/2"]
    with organization_context(org_a):
        assert Patient.objects.count() == 1 and Observation.objects.count() == observations
        connection.refresh_from_db()
        assert connection.cursors[EXPORT_CURSOR] == "2024-04-01T12:00:00.000Z"


@pytest.mark.django_db
def test_a_group_export_asks_the_group_and_needs_its_id(org_a: Any, ehr: FakeEhr) -> None:
    _load(ehr, 62)
    with organization_context(org_a), pytest.raises(ValidationError) as error:
        FhirConnection(name="G", base_url=ehr.base, export_mode="group").full_clean()
    assert "export_group_id" in error.value.message_dict
    connection = _connection(org_a, ehr, export_mode="group", export_group_id="diabetes-cohort")
    job = _pull(org_a, connection, FakeTime())
    assert job.status in (JobStatus.SUCCEEDED, JobStatus.WARNINGS), job.error
    assert ehr.kickoffs[0][0] == "/Group/diabetes-cohort/$export"


@pytest.mark.django_db
def test_the_manifests_error_files_are_in_the_report_and_the_next_export_asks_again(org_a: Any, ehr: FakeEhr) -> None:
    _load(ehr, 63)
    ehr.export_error_file = True
    connection = _connection(org_a, ehr)
    job = _pull(org_a, connection, FakeTime())
    assert job.status == JobStatus.PARTIAL
    assert {
        "entry": 1,
        "resource_type": "OperationOutcome",
        "field": "error file 1",
        "reason": "The server could not export some resources: error: processing.",
    } in job.report["failures"]
    assert "x9" not in str(job.report)  # the outcome's free text may name a record: not kept
    with organization_context(org_a):
        assert Patient.objects.count() == 1  # what arrived is imported
        connection.refresh_from_db()
        assert EXPORT_CURSOR not in connection.cursors  # the next export asks for everything again
    assert ehr.deletes == ["/export-status/1"]


@pytest.mark.django_db
def test_a_refused_kick_off_fails_the_job_with_the_servers_message(org_a: Any, ehr: FakeEhr) -> None:
    _load(ehr, 64)
    ehr.export_refuse = (
        400,
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "diagnostics": "_type Foo unsupported"}]},
    )
    connection = _connection(org_a, ehr)
    job = _pull(org_a, connection, FakeTime())
    assert job.status == JobStatus.FAILED
    assert job.error == "$export: The server refused the export (it answered 400): _type Foo unsupported"
    assert ehr.polls == 0 and ehr.deletes == [] and len(ehr.kickoffs) == 1  # a 4xx is not retried
    with organization_context(org_a):
        connection.refresh_from_db()
        assert connection.last_error == job.error and connection.last_success_at is None


@pytest.mark.django_db
def test_a_retry_after_past_the_deadline_ends_the_pull_at_once_and_cancels_the_export(org_a: Any, ehr: FakeEhr) -> None:
    _load(ehr, 65)
    ehr.export_retry_after = "3600"
    connection = _connection(org_a, ehr)
    time = FakeTime()
    job = _pull(org_a, connection, time, deadline_seconds=60)
    assert job.status == JobStatus.FAILED
    assert job.error == (
        "$export: The export was still running on the server (50% done), which asked to be checked again in "
        "3600 s: after the pull's deadline (60 s). Nothing was imported from it; the next pull starts a new export."
    )
    assert time.sleeps == [] and ehr.polls == 1 and ehr.downloads == []
    assert ehr.deletes == ["/export-status/1"]  # the IG's DELETE: the server may stop the export
    with organization_context(org_a):
        assert Patient.objects.count() == 0
        connection.refresh_from_db()
        assert connection.pull_claimed_until is None


@pytest.mark.django_db
def test_a_status_5xx_fails_the_export_with_the_servers_message(org_a: Any, ehr: FakeEhr) -> None:
    _load(ehr, 66)
    ehr.export_status_fails = True
    connection = _connection(org_a, ehr)
    job = _pull(org_a, connection, FakeTime())
    assert job.status == JobStatus.FAILED
    assert job.error == "$export: The export failed on the server (status 500): Export job crashed"
    assert ehr.polls == 1 and ehr.deletes == ["/export-status/1"]


@pytest.mark.django_db
def test_a_kick_off_answered_503_is_retried_as_any_request(org_a: Any, ehr: FakeEhr) -> None:
    _load(ehr, 67)
    ehr.fail_once.add("$export")
    connection = _connection(org_a, ehr)
    job = _pull(org_a, connection, FakeTime())
    assert job.status in (JobStatus.SUCCEEDED, JobStatus.WARNINGS), job.error
    assert len(ehr.kickoffs) == 2


@pytest.mark.django_db
def test_the_admin_form_and_the_connection_page_show_the_export_mode(
    org_a: Any, org_b: Any, admin_user: Any, nurse_user: Any, other_org_user: Any, client_for: Any, ehr: FakeEhr
) -> None:
    connection = _connection(org_a, ehr, export_mode="group", export_group_id="cohort-1")
    with organization_context(org_a):
        data = {k: v for k, v in model_to_dict(connection).items() if v is not None}
        data.update(resource_types='["Patient"]', cursors="{}", export_group_id="")
        form = FhirConnectionAdminForm(data=data, instance=connection)
        assert not form.is_valid() and "export_group_id" in form.errors
        form = FhirConnectionAdminForm(data={**data, "export_mode": "patient"}, instance=connection)
        assert form.is_valid(), form.errors
    url = reverse("integrations:fhir_connection", args=[connection.pk])
    page = client_for(admin_user).get(url).content.decode()
    assert "Bulk export: one group (Group/[id]/$export): <code>cohort-1</code>" in page
    assert client_for(nurse_user).get(url).status_code == 403
    assert client_for(other_org_user).get(url).status_code == 404


# -- Test connection -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_test_connection_reads_the_capability_statement(
    org_a: Any, admin_user: Any, nurse_user: Any, other_org_user: Any, client_for: Any, ehr: FakeEhr
) -> None:
    connection = _connection(org_a, ehr, export_mode="search")
    with organization_context(org_a):
        FhirConnection.objects.filter(pk=connection.pk).update(resource_types=["Patient", "Encounter"])
    url = reverse("integrations:fhir_connection_test", args=[connection.pk])
    response = client_for(admin_user).post(url, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200 and page.lstrip().startswith('<section id="connection-test"')
    assert "The server answered its CapabilityStatement." in page
    assert '<dd id="test-fhir-version">4.0.1</dd>' in page and "Loopback EHR 1.2" in page
    assert '<dd id="test-bulk">Supported</dd>' in page and "The bearer token was sent." in page
    assert '<th scope="row">Patient</th><td>Yes</td><td>_lastUpdated</td>' in page
    assert '<th scope="row">Encounter</th><td>No</td>' in page
    assert (
        "Test connection"
        in client_for(admin_user).get(reverse("integrations:fhir_connection", args=[connection.pk])).content.decode()
    )
    # Without htmx: the whole connection page, with the result.
    full = client_for(admin_user).post(url).content.decode()
    assert "<h1>Bulk EHR</h1>" in full and '<dd id="test-bulk">Supported</dd>' in full
    assert client_for(nurse_user).post(url).status_code == 403
    assert client_for(other_org_user).post(url).status_code == 404
    assert client_for(admin_user).get(url).status_code == 405

    ehr.metadata_status = 401
    page = client_for(admin_user).post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "The server refused our credentials (401)." in page and "test-fhir-version" not in page
