"""Errors and data-quality warnings: a malformed identifier drops only itself, not the record.

Real feeds (Synthea's practitioners) carry NPIs that are not 10 digits. The practitioner is
imported without it, the report names the entry, element and reason (never the value), and the
job "succeeded with warnings". An error fails only the units that need the failed resource.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from healthcrm.tenancy import organization_context
from integrations.fhir import services
from integrations.fhir.services import connection_client, fhir_pull_connection
from integrations.fhir.synthetic import synthea_bundle
from integrations.models import Encounter, FhirConnection, JobStatus
from patients.models import Observation, Patient, Practitioner
from tests.integrations.fhir.fake_ehr import FakeEhr

pytestmark = pytest.mark.django_db

NPI = "http://hl7.org/fhir/sid/us-npi"


def _with_npi(data: dict[str, Any], npi: str) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    for entry in data["entry"]:
        if entry["resource"]["resourceType"] == "Practitioner":
            entry["resource"]["identifier"] = [{"system": NPI, "value": npi}]
    return data


def _practitioner_entry(data: dict[str, Any]) -> int:
    return next(i for i, e in enumerate(data["entry"]) if e["resource"]["resourceType"] == "Practitioner")


def test_a_malformed_npi_imports_the_record_without_it_and_warns(org_a: Any, settings: Any) -> None:
    settings.FHIR_IMPORT_EAGER = True
    data = _with_npi(synthea_bundle(41, encounters=3), "123")
    with organization_context(org_a):
        job = services.import_job_create(data=json.dumps(data).encode(), source_system="synthea")
    job = services.import_job_run(organization=org_a, job_id=job.pk)

    assert job.status == JobStatus.WARNINGS and job.get_status_display() == "Succeeded with warnings"
    assert job.report["failures"] == [] and job.report["units_failed"] == 0
    assert job.report["warnings"] == [
        {
            "entry": _practitioner_entry(data),
            "resource_type": "Practitioner",
            "field": "Practitioner.identifier",
            "reason": "an NPI has 10 digits: the practitioner was imported without it",
        }
    ]
    with organization_context(org_a):
        practitioner = Practitioner.objects.get()
        assert practitioner.npi == "" and practitioner.display_name == "Dr. Pat Example"
        assert Patient.objects.count() == 1
        assert Encounter.objects.count() == 3
        assert set(Encounter.objects.values_list("practitioner", flat=True)) == {practitioner.pk}
        assert Observation.objects.count() > 0


def test_the_job_page_lists_the_warning_without_the_value(
    org_a: Any, admin_user: Any, client_for: Any, settings: Any
) -> None:
    settings.FHIR_IMPORT_EAGER = True
    data = _with_npi(synthea_bundle(42, encounters=1), "98765")
    with organization_context(org_a):
        job = services.import_job_create(data=json.dumps(data).encode(), source_system="synthea")
    services.import_job_run(organization=org_a, job_id=job.pk)
    page = client_for(admin_user).get(reverse("integrations:fhir_import_job", args=[job.pk])).content.decode()
    assert "Succeeded with warnings" in page and 'id="import-warnings"' in page
    assert "Practitioner.identifier" in page and "an NPI has 10 digits" in page
    assert "98765" not in page


def test_a_missing_optional_reference_is_a_warning_a_missing_subject_an_error(org_a: Any, import_into: Any) -> None:
    data = synthea_bundle(43, encounters=2, observations_per_encounter=1)
    data["entry"] = [e for e in data["entry"] if e["resource"]["resourceType"] != "Practitioner"]
    report = import_into(org_a, data)
    assert report.ok and report.units_failed == 0
    fields = {(w.resource_type, w.field) for w in report.warnings}
    assert fields == {("Encounter", "Encounter.participant[0].individual")}
    assert report.warning_total == 2
    assert all("imported without it" in w.reason for w in report.warnings)
    with organization_context(org_a):
        assert Encounter.objects.filter(practitioner__isnull=True).count() == 2

    data = synthea_bundle(44, encounters=1, observations_per_encounter=1)
    data["entry"] = [e for e in data["entry"] if e["resource"]["resourceType"] != "Patient"]
    report = import_into(org_a, data)
    assert not report.ok and report.units_failed == 1  # the subject is not optional
    assert "Encounter.subject" in {f.field for f in report.failures}


def _connection(org: Any, ehr: FakeEhr, types: list[str]) -> FhirConnection:
    with organization_context(org):
        return FhirConnection.objects.create(name="Synthea EHR", base_url=ehr.base, resource_types=types)


def test_a_pull_with_a_malformed_npi_succeeds_with_warnings_and_counts_as_a_success(
    org_a: Any, ehr: FakeEhr, monkeypatch: pytest.MonkeyPatch
) -> None:
    ehr.open = True
    ehr.load(_with_npi(synthea_bundle(45, encounters=3), "12"), "2024-01-01T00:00:00Z")
    connection = _connection(org_a, ehr, ["Patient", "Practitioner", "Encounter", "Procedure", "Observation"])
    monkeypatch.setattr("integrations.fhir.services.PULL_PAGE_SIZE", "2")
    job = fhir_pull_connection(
        organization=org_a, connection_id=connection.pk, client=connection_client(connection, backoff=0.01)
    )
    assert job.status == JobStatus.WARNINGS, job.report
    assert [(w["resource_type"], w["field"]) for w in job.report["warnings"]] == [
        ("Practitioner", "Practitioner.identifier")
    ]
    assert job.report["counts"]["Encounter"]["created"] == 3 and job.report["counts"]["Encounter"]["failed"] == 0
    with organization_context(org_a):
        connection.refresh_from_db()
        assert connection.last_success_at == job.finished_at
        assert connection.last_error == ""
        assert set(connection.cursors) == {"Patient", "Practitioner", "Encounter", "Procedure", "Observation"}
        assert Encounter.objects.filter(practitioner=Practitioner.objects.get()).count() == 3


def test_a_pull_error_fails_only_the_units_that_need_the_failed_resource(
    org_a: Any, ehr: FakeEhr, monkeypatch: pytest.MonkeyPatch
) -> None:
    ehr.open = True
    data = synthea_bundle(46, encounters=2, observations_per_encounter=2)
    for entry in data["entry"]:
        if entry["resource"]["resourceType"] == "Practitioner":
            del entry["resource"]["name"]  # an error: a practitioner we cannot represent
    ehr.load(data, "2024-01-01T00:00:00Z")
    connection = _connection(org_a, ehr, ["Patient", "Practitioner", "Encounter", "Observation"])
    job = fhir_pull_connection(
        organization=org_a, connection_id=connection.pk, client=connection_client(connection, backoff=0.01)
    )
    assert job.status == JobStatus.PARTIAL
    assert [(f["resource_type"], f["field"]) for f in job.report["failures"]] == [("Practitioner", "Practitioner.name")]
    assert job.report["units_failed"] == 1  # the Practitioner page; Encounters need it only optionally
    with organization_context(org_a):
        assert Encounter.objects.filter(practitioner__isnull=True).count() == 2
        assert Observation.objects.count() == job.report["counts"]["Observation"]["created"] > 0
        connection.refresh_from_db()
        assert "Practitioner" not in connection.cursors and "Encounter" in connection.cursors
        assert connection.last_success_at is None
