"""Hostile numbers (issue 9, item 18): a failure of the element that holds them, never of the whole job."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthcrm.tenancy import organization_context
from integrations.fhir import parsing, services
from integrations.models import JobStatus
from patients.models import Observation, Patient
from tests.integrations.fhir.conftest import bundle
from tests.integrations.fhir.test_mapping import SUBJECT, patient

pytestmark = pytest.mark.django_db

MARK = "__NUMBER__"
FIELD = "Observation.valueQuantity.value"


def _observation(n: int, value: Any = None) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o{n}",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
        "subject": SUBJECT,
        "effectiveDateTime": "2024-01-01T10:00:00Z",
        "valueQuantity": {"value": 60 + n if value is None else value, "unit": "/min"},
    }


def _with_literal(data: Any, literal: str) -> str:
    """JSON text of `data` with the string MARK replaced by a raw number literal (JSON cannot say it)."""
    return json.dumps(data).replace(f'"{MARK}"', literal)


HOSTILE = [
    ("5000 digits", "1" * 5000, "digits"),
    ("5000 negative digits", "-" + "1" * 5000, "digits"),
    ("5000 digits and a fraction", "1" * 5000 + ".5", "digits"),
    ("5000 fraction digits", "0." + "0" * 4999 + "1", "digits"),
    ("41 digits", "1" * 41, "digits"),
    ("huge exponent", "1e999999", "out of range"),
    ("float overflow", "1e400", "out of range"),
    ("NaN", "NaN", "not a JSON number"),
    ("Infinity", "Infinity", "not a JSON number"),
    ("-Infinity", "-Infinity", "not a JSON number"),
    ("30 digits", "1" * 30, "too large"),
    ("9 digits", "123456789.5", "too large"),
]


def _job(org: Any, text: str) -> Any:
    with organization_context(org):
        job = services.import_job_create(data=text.encode(), source_system="ehr")
    return services.import_job_run(organization=org, job_id=job.pk)


@pytest.mark.parametrize(("literal", "expected"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_number_fails_its_entry_and_names_the_field(org_a, settings, literal, expected) -> None:
    settings.FHIR_IMPORT_EAGER = True
    text = _with_literal(bundle(patient(), _observation(1), _observation(2, MARK)), literal)
    job = _job(org_a, text)
    assert job.error == "" and job.status == JobStatus.FAILED  # the Bundle is the unit: refused whole
    failure = job.report["failures"][0]
    assert (failure["entry"], failure["resource_type"], failure["field"]) == (2, "Observation", FIELD), failure
    assert expected in failure["reason"]
    if any(c.isdigit() for c in literal):
        assert literal[:20] not in failure["reason"]  # the value itself never goes to the report
    with organization_context(org_a):
        assert Patient.objects.count() == 0 and Observation.objects.count() == 0


@pytest.mark.parametrize(("literal", "expected"), [h[1:] for h in HOSTILE[:10]], ids=[h[0] for h in HOSTILE[:10]])
def test_in_ndjson_only_the_unit_holding_it_fails(org_a, settings, monkeypatch, literal, expected) -> None:
    settings.FHIR_IMPORT_EAGER = True
    monkeypatch.setattr(parsing, "NDJSON_CHUNK_LINES", 2)
    lines = [json.dumps(patient()), json.dumps(_observation(1))]
    lines += [_with_literal(_observation(2, MARK), literal), json.dumps(_observation(3))]
    lines += [json.dumps(_observation(4))]
    job = _job(org_a, "\n".join(lines) + "\n")
    assert job.error == "" and job.status == JobStatus.PARTIAL
    report = job.report
    assert (report["units"], report["units_failed"]) == (3, 1)
    failure = report["failures"][0]
    assert (failure["entry"], failure["field"]) == (3, FIELD) and expected in failure["reason"]
    with organization_context(org_a):
        assert sorted(Observation.objects.values_list("value_quantity", flat=True)) == [61, 64]


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (lambda: {**bundle(patient()), "total": MARK}, "Bundle.total"),
        (lambda: bundle(patient(), {"resourceType": "Claim", "id": "c1", "priority": {"x": MARK}}), "Claim.priority.x"),
        (
            lambda: {**bundle(patient()), "entry": [{**bundle(patient())["entry"][0], "search": {"score": MARK}}]},
            "Bundle.entry.search.score",
        ),
        (lambda: bundle(patient(extension=[{"url": "u", "valueInteger": MARK}])), "Patient.extension[0].valueInteger"),
    ],
)
def test_a_hostile_number_anywhere_is_reported_where_it_is(org_a, settings, where, field) -> None:
    settings.FHIR_IMPORT_EAGER = True
    job = _job(org_a, _with_literal(where(), "9" * 5000))
    assert job.error == "" and job.status == JobStatus.FAILED
    assert job.report["failures"][0]["field"] == field, job.report["failures"]


_literal = st.one_of(
    st.integers(min_value=41, max_value=6000).map(lambda n: "9" * n),
    st.integers(min_value=41, max_value=6000).map(lambda n: "-0." + "0" * n + "7"),
    st.integers(min_value=309, max_value=10**6).map(lambda n: f"1e{n}"),
    st.integers(min_value=9, max_value=39).map(lambda n: "8" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e-99999", "-0", "1E+400", "12345678.99999"]),
)


@pytest.fixture
def eager(settings: Any) -> None:
    settings.FHIR_IMPORT_EAGER = True


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(literal=_literal, position=st.sampled_from(["valueQuantity", "component", "range"]))
def test_no_number_ends_a_job_unexpectedly(org_a, eager, literal, position) -> None:
    obs = _observation(1)
    if position == "component":
        obs["component"] = [{"code": {"text": "c"}, "valueQuantity": {"value": MARK}}]
    elif position == "range":
        obs["referenceRange"] = [{"low": {"value": MARK}}]
    else:
        obs["valueQuantity"]["value"] = MARK
    with organization_context(org_a):
        data = _with_literal(bundle(patient(), obs), literal).encode()
        job = services.import_job_create(data=data, source_system="h")
    job = services.import_job_run(organization=org_a, job_id=job.pk)
    assert job.error == "", job.error
    assert job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    for failure in job.report["failures"]:
        assert failure["entry"] == 1 and failure["field"].startswith("Observation."), failure
