"""Import behaviour: idempotent upserts, patient matching by identifier, atomic units, no crash."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from auditlog.models import LogEntry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthcrm.crypto import REDACTED
from healthcrm.tenancy import organization_context
from integrations.fhir.synthetic import synthea_bundle
from integrations.models import EhrCarePlan, Encounter, FhirResourceLink, Procedure
from patients.models import Condition, Immunization, Medication, Observation, Patient, PatientIdentifier
from tests.factories import PatientFactory
from tests.integrations.fhir.conftest import bundle
from tests.integrations.fhir.test_mapping import SUBJECT, patient

pytestmark = pytest.mark.django_db

TABLES = (
    Patient,
    PatientIdentifier,
    Condition,
    Observation,
    Medication,
    Immunization,
    Encounter,
    Procedure,
    EhrCarePlan,
    FhirResourceLink,
)


def row_counts(org: Any) -> dict[str, int]:
    with organization_context(org):
        return {m.__name__: m.objects.count() for m in TABLES}


def test_importing_twice_creates_and_changes_nothing(org_a, import_into) -> None:
    data = synthea_bundle(7, encounters=12)
    first = import_into(org_a, data)
    assert first.ok and first.total("created") > 100
    before = row_counts(org_a)
    with organization_context(org_a):
        updated_at = Observation.objects.order_by("pk").values_list("updated_at", flat=True).first()
    second = import_into(org_a, data)
    assert second.ok
    assert second.total("created") == 0 and second.total("updated") == 0
    assert second.total("unchanged") == first.total("created")
    assert row_counts(org_a) == before
    with organization_context(org_a):
        assert Observation.objects.order_by("pk").values_list("updated_at", flat=True).first() == updated_at


def test_a_changed_resource_updates_its_row(org_a, import_into) -> None:
    data = bundle(
        patient(),
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": SUBJECT,
            "code": {"coding": [{"code": "38341003"}], "text": "Hypertension"},
        },
    )
    import_into(org_a, data)
    changed = copy.deepcopy(data)
    changed["entry"][1]["resource"]["clinicalStatus"] = {"coding": [{"code": "resolved"}]}
    report = import_into(org_a, changed)
    assert report.counts["Condition"]["updated"] == 1 and report.counts["Patient"]["unchanged"] == 1
    with organization_context(org_a):
        assert Condition.objects.get().clinical_status == "resolved"


def test_patients_are_matched_by_identifier_never_by_name(org_a, import_into) -> None:
    with organization_context(org_a):
        existing = PatientFactory(mrn="MRN-777", given_name="Someone", family_name="Else")
        namesake = PatientFactory(mrn="OTHER-1", given_name="Ada May", family_name="Quinn")
    report = import_into(org_a, bundle(patient()))
    assert report.counts["Patient"]["updated"] == 1
    with organization_context(org_a):
        assert Patient.objects.count() == 2
        existing.refresh_from_db()
        namesake.refresh_from_db()
        assert (existing.given_name, existing.family_name) == ("Ada May", "Quinn")
        assert namesake.mrn == "OTHER-1"
        # Another source with the same MRN finds the same patient too.
    other = import_into(org_a, bundle(patient(id="different-id")), source_system="another-ehr")
    assert other.counts["Patient"]["updated"] == 1
    assert row_counts(org_a)["Patient"] == 2


def test_bulk_created_rows_are_audited_without_phi(org_a, import_into) -> None:
    import_into(
        org_a,
        bundle(
            patient(),
            {
                "resourceType": "Condition",
                "id": "c1",
                "subject": SUBJECT,
                "code": {"coding": [{"code": "38341003"}], "text": "Hypertension"},
            },
        ),
    )
    with organization_context(org_a):
        condition = Condition.objects.get()
        entry = LogEntry.objects.get_for_object(condition).get()
    assert entry.action == LogEntry.Action.CREATE
    assert entry.changes_dict["display"][1] == REDACTED
    assert "Hypertension" not in json.dumps(entry.changes_dict) and entry.object_repr == f"Condition #{condition.pk}"
    assert entry.additional_data == {"organization_id": org_a.pk}


def test_tenants_are_apart(org_a, org_b, import_into) -> None:
    data = synthea_bundle(3, encounters=3)
    import_into(org_a, data)
    report = import_into(org_b, data)
    assert report.total("unchanged") == 0  # org B's links are its own
    assert row_counts(org_a) == row_counts(org_b)


def _assert_nothing_written(org: Any) -> None:
    assert all(n == 0 for n in row_counts(org).values()), row_counts(org)


def test_an_invalid_entry_rolls_back_the_whole_bundle(org_a, import_into) -> None:
    data = synthea_bundle(5, encounters=4)
    data["entry"][9]["resource"]["status"] = 42  # not a code
    report = import_into(org_a, data)
    assert not report.ok and report.units_failed == 1
    failure = report.failures[0]
    assert failure.entry == 9 and failure.field.endswith(".status")
    _assert_nothing_written(org_a)


def _every_table_count(org: Any) -> dict[str, int]:
    """Rows of every table of the schema, as the app role sees them in `org` (audit tables included)."""
    from django.db import connection

    with organization_context(org), connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1"
        )
        tables = [name for (name,) in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - names from the catalog
            counts[table] = cursor.fetchone()[0]
    return counts


def test_a_unit_failing_after_its_patient_is_written_leaves_no_row_anywhere(org_a, import_into, monkeypatch) -> None:
    """The unit's transaction, not the checks before it, keeps a half-written record out: the
    Patient (tier 0) is inserted with its identifiers, link and audit rows before the appointment
    (tier 2) is refused for want of a practitioner."""
    from integrations.fhir import importer

    written: list[int] = []
    real_patient_create = importer.patient_create

    def patient_create(**fields: Any) -> Any:
        patient = real_patient_create(**fields)
        written.append(patient.pk)
        return patient

    monkeypatch.setattr(importer, "patient_create", patient_create)
    appointment = {
        "resourceType": "Appointment",
        "id": "appt-1",
        "status": "booked",
        "start": "2030-01-02T15:00:00Z",
        "end": "2030-01-02T15:30:00Z",
        "participant": [{"actor": SUBJECT, "status": "accepted"}],  # no practitioner
    }
    before = _every_table_count(org_a)
    report = import_into(org_a, bundle(patient(), appointment))
    assert written, "the patient row was inserted before the unit failed"
    assert [(f.entry, f.field) for f in report.failures] == [(1, "Appointment.participant")]
    assert report.units_failed == 1
    after = _every_table_count(org_a)
    assert {t: n for t, n in after.items() if n != before[t]} == {}


def test_a_reference_to_something_missing_names_the_entry_and_the_element(org_a, import_into) -> None:
    report = import_into(
        org_a,
        bundle(
            patient(),
            {
                "resourceType": "Condition",
                "id": "c1",
                "subject": {"reference": "Patient/nobody"},
                "code": {"coding": [{"code": "1"}]},
            },
        ),
    )
    assert [(f.entry, f.field) for f in report.failures] == [(1, "Condition.subject")]
    assert "neither in this file nor imported before" in report.failures[0].reason
    _assert_nothing_written(org_a)


def test_references_to_earlier_imports_resolve_without_fetching(org_a, import_into) -> None:
    import_into(org_a, bundle(patient()))
    report = import_into(
        org_a,
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Condition",
                        "id": "c9",
                        "code": {"coding": [{"code": "1"}]},
                        "subject": {"reference": f"https://ehr.example/fhir/Patient/{patient()['id']}"},
                    }
                }
            ],
        },
    )
    assert report.ok, report.as_text()
    with organization_context(org_a):
        assert Condition.objects.get().patient == Patient.objects.get()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": ', "Malformed JSON"),
        ('{"resourceType": "Patient", "id": "x"}', "Expected a FHIR Bundle"),
        ('{"resourceType": "Bundle", "type": "history", "entry": []}', "Bundle.type"),
        ('{"resourceType": "Bundle", "type": "collection", "issues": {}, "entry": []}', "another FHIR version"),
        ("\xff\xfe", "Malformed JSON"),
        ("[]", "Malformed JSON"),
    ],
)
def test_files_we_cannot_read_are_reported(org_a, import_into, text, expected) -> None:
    report = import_into(org_a, text)
    assert not report.ok and expected in report.failures[0].reason
    _assert_nothing_written(org_a)


def test_r5_data_is_refused_with_the_element_named(org_a, import_into) -> None:
    r5_med = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "subject": SUBJECT,
        "medication": {"concept": {"text": "x"}},
    }  # R5's CodeableReference
    report = import_into(org_a, bundle(patient(), r5_med))
    assert report.failures[0].field.startswith("MedicationRequest.medication")
    assert "another FHIR version" in report.failures[0].reason
    _assert_nothing_written(org_a)


def test_unknown_and_unkept_resource_types(org_a, import_into) -> None:
    report = import_into(org_a, bundle(patient(), {"resourceType": "Claim", "id": "cl1"}))
    assert report.ok and report.counts["Claim"]["skipped"] == 1
    report = import_into(org_a, bundle(patient(), {"resourceType": "Spaceship", "id": "s1"}))
    assert not report.ok and report.failures[0].field == "resourceType"


def test_ndjson_in_chunks(org_a, import_into) -> None:
    resources = [e["resource"] for e in synthea_bundle(11, encounters=3)["entry"]]
    text = "\n".join(json.dumps(r) for r in resources) + "\n"
    report = import_into(org_a, text)
    assert report.ok, report.as_text()
    assert report.counts["Observation"]["created"] > 0
    again = import_into(org_a, text)
    assert again.total("created") == 0 and again.total("updated") == 0
    broken = text.replace('"resourceType": "Condition", ', '"resourceType": "Condition", "onsetAge": "x", ', 1)
    before = row_counts(org_a)
    report = import_into(org_a, broken, source_system="other")
    assert not report.ok and report.failures[0].field.startswith("Condition.onsetAge")
    assert row_counts(org_a) == before


# -- Hypothesis: whatever the bytes, a report and 0 rows; never an exception ---------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
_resource_type = st.sampled_from(["Patient", "Observation", "Condition", "Encounter", "Bogus", "Bundle", ""])


@st.composite
def malformed_bundles(draw: Any) -> str:
    base = synthea_bundle(draw(st.integers(0, 5)), encounters=1, observations_per_encounter=2)
    entries = base["entry"]
    i = draw(st.integers(0, len(entries) - 1))
    resource = entries[i]["resource"]
    mutation = draw(st.sampled_from(["set", "delete", "type", "entry", "truncate", "bundle"]))
    if mutation == "set":
        resource[draw(st.sampled_from([*resource.keys(), "extra"]))] = draw(_json)
    elif mutation == "delete":
        resource.pop(draw(st.sampled_from(sorted(resource.keys()))))
        resource["status"] = draw(st.text(max_size=5))
    elif mutation == "type":
        resource["resourceType"] = draw(_resource_type)
        resource["gender"] = draw(_json)
    elif mutation == "entry":
        entries[i] = draw(_json)
    elif mutation == "bundle":
        base[draw(st.sampled_from(["type", "entry", "resourceType", "meta"]))] = draw(_json)
    text = json.dumps(base)
    if mutation == "truncate":
        text = text[: draw(st.integers(0, len(text) - 1))]
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=malformed_bundles())
def test_malformed_bundles_never_crash_and_write_nothing_when_refused(org_a, import_into, text) -> None:
    before = row_counts(org_a)
    report = import_into(org_a, text, source_system="hypothesis")
    if not report.ok:
        assert report.failures and all(f.reason and f.field for f in report.failures)
        assert row_counts(org_a) == before  # a refused bundle writes 0 rows
