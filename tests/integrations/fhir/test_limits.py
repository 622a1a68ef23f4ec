"""Import limits (issue 9, item 8): a file beyond one is refused as a whole, naming the limit; nothing is written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from integrations.fhir import services
from integrations.fhir.parsing import FhirInputError, Limits, scan_bundle
from integrations.fhir.synthetic import synthea_bundle
from integrations.models import FhirResourceLink, JobStatus
from patients.models import Observation, Patient
from tests.integrations.fhir.conftest import bundle
from tests.integrations.fhir.test_mapping import SUBJECT, patient

pytestmark = pytest.mark.django_db


def _observation(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o{n}",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
        "subject": SUBJECT,
        "effectiveDateTime": "2024-01-01T10:00:00Z",
        "valueQuantity": {"value": 60 + n, "unit": "/min"},
    }


def _written(org: Any) -> int:
    with organization_context(org):
        return Patient.objects.count() + Observation.objects.count() + FhirResourceLink.objects.count()


def test_defaults_admit_the_benchmarks_synthea_bundles() -> None:
    # bench/bench_fhir_import.py's 51.5 MB bundle holds 58,612 entries nested 9 levels deep.
    limits = Limits.from_settings()
    assert limits.bundle_entries >= 75_000 and limits.unit_resources >= 75_000  # a 64 MB Synthea bundle
    assert limits.depth >= 16 and limits.ndjson_lines >= 75_000
    data = synthea_bundle(1, encounters=40)
    assert len(scan_bundle(json.dumps(data)).entries) == len(data["entry"])


@pytest.mark.parametrize(
    ("setting", "value", "make", "named"),
    [
        (
            "FHIR_IMPORT_MAX_BUNDLE_ENTRIES",
            3,
            lambda: json.dumps(bundle(patient(), *[_observation(n) for n in range(3)])),
            "more than 3 entries (limit FHIR_IMPORT_MAX_BUNDLE_ENTRIES)",
        ),
        (
            "FHIR_IMPORT_MAX_NDJSON_LINES",
            3,
            lambda: "\n".join(json.dumps(r) for r in [patient(), *[_observation(n) for n in range(3)]]) + "\n",
            "more than 3 resources (lines) (limit FHIR_IMPORT_MAX_NDJSON_LINES)",
        ),
        (
            "FHIR_IMPORT_MAX_UNIT_RESOURCES",
            3,
            lambda: json.dumps(bundle(patient(), *[_observation(n) for n in range(3)])),
            "more than 3 resources in one unit (limit FHIR_IMPORT_MAX_UNIT_RESOURCES)",
        ),
        (
            "FHIR_IMPORT_MAX_DEPTH",
            64,
            lambda: json.dumps(
                bundle(patient(), {**_observation(1), "extension": [_nested(70)]}),
            ),
            "entry 1 is nested deeper than 64 levels (limit FHIR_IMPORT_MAX_DEPTH)",
        ),
        (
            "FHIR_IMPORT_MAX_ENTRY_BYTES",
            4000,
            lambda: json.dumps(bundle(patient(), {**_observation(1), "code": {"text": "x" * 5000}})),
            "entry 1 is larger than 4,000 bytes (limit FHIR_IMPORT_MAX_ENTRY_BYTES)",
        ),
        (
            "FHIR_IMPORT_MAX_ENTRY_VALUES",
            500,
            lambda: json.dumps(bundle(patient(), {**_observation(1), "note": [{"text": "a"}] * 400})),
            "entry 1 holds more than 500 JSON values (limit FHIR_IMPORT_MAX_ENTRY_VALUES)",
        ),
    ],
)
def test_a_file_beyond_a_limit_fails_the_job_naming_it_and_writes_nothing(
    org_a, settings, setting, value, make, named
) -> None:
    settings.FHIR_IMPORT_EAGER = True
    setattr(settings, setting, value)
    with organization_context(org_a):
        job = services.import_job_create(data=make().encode(), source_system="ehr")
    job = services.import_job_run(organization=org_a, job_id=job.pk)
    assert job.status == JobStatus.FAILED and job.error == "", (job.status, job.error)
    reasons = [f["reason"] for f in job.report["failures"]]
    assert any(named in reason for reason in reasons), reasons
    assert _written(org_a) == 0


def _nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range(levels):
        node = {"url": "http://example.org/nested", "extension": [node]}
    return node


def test_within_the_limits_the_same_file_imports(org_a, settings, import_into) -> None:
    settings.FHIR_IMPORT_MAX_BUNDLE_ENTRIES = 4
    settings.FHIR_IMPORT_MAX_UNIT_RESOURCES = 4
    report = import_into(org_a, bundle(patient(), *[_observation(n) for n in range(3)]))
    assert report.ok, report.as_text()
    assert report.counts["Observation"]["created"] == 3


def test_an_ndjson_file_beyond_the_line_limit_writes_not_even_its_first_chunk(
    org_a, settings, monkeypatch, import_into
) -> None:
    from integrations.fhir import parsing

    monkeypatch.setattr(parsing, "NDJSON_CHUNK_LINES", 2)
    settings.FHIR_IMPORT_MAX_NDJSON_LINES = 5
    lines = [json.dumps(r) for r in [patient(), *[_observation(n) for n in range(5)]]]
    report = import_into(org_a, "\n".join(lines) + "\n")
    assert not report.ok and "FHIR_IMPORT_MAX_NDJSON_LINES" in report.failures[0].reason
    assert _written(org_a) == 0
    report = import_into(org_a, "\n".join(lines[:5]) + "\n")  # five lines: three units of two
    assert report.ok and report.units == 3, report.as_text()


def test_a_pulled_page_beyond_the_unit_limit_fails_that_page(org_a, settings) -> None:
    from integrations.fhir.importer import ImportReport, UnitImporter

    settings.FHIR_IMPORT_MAX_UNIT_RESOURCES = 2
    report = ImportReport()
    entries = [{"resource": r} for r in [patient(), _observation(1), _observation(2)]]
    with organization_context(org_a):
        UnitImporter(source_system="ehr", report=report)._run(enumerate(entries), "searchset")
    assert report.units_failed == 1
    assert report.failures[0].field == "Bundle.entry" and "FHIR_IMPORT_MAX_UNIT_RESOURCES" in report.failures[0].reason
    assert _written(org_a) == 0


def test_limit_errors_carry_no_values() -> None:
    secret = "Ada-May-Quinn-" * 400
    text = json.dumps(bundle(patient(), {**_observation(1), "code": {"text": secret}}))
    with pytest.raises(FhirInputError) as raised:
        scan_bundle(text, Limits(entry_bytes=2000))
    assert "Ada" not in str(raised.value) and "FHIR_IMPORT_MAX_ENTRY_BYTES" in str(raised.value)
