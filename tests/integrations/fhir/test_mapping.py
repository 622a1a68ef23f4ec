"""One mapping test per resource type: FHIR R4 in, the right row out (and what we check ourselves)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from healthcrm.models import Location
from healthcrm.tenancy import organization_context
from integrations.models import EhrCarePlan, Encounter, FhirResourceLink, Procedure
from patients.models import (
    Allergy,
    Appointment,
    Condition,
    Immunization,
    Medication,
    Observation,
    Patient,
    PatientIdentifier,
    Practitioner,
)
from tests.integrations.fhir.conftest import bundle

pytestmark = pytest.mark.django_db

PID = "11111111-1111-4111-8111-111111111111"
PRAC = "22222222-2222-4222-8222-222222222222"
LOC = "33333333-3333-4333-8333-333333333333"
ENC = "44444444-4444-4444-8444-444444444444"
SUBJECT = {"reference": f"urn:uuid:{PID}"}


def patient(**extra: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Patient",
        "id": PID,
        "identifier": [
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "system": "http://ehr.example/mrn",
                "value": "MRN-777",
            },
            {"system": "http://payer.example/member", "value": "M-42"},
        ],
        "name": [{"use": "official", "family": "Quinn", "given": ["Ada", "May"]}, {"use": "usual", "given": ["Addie"]}],
        "gender": "female",
        "birthDate": "1961-04-02",
        "telecom": [
            {"system": "phone", "value": "+1 312 555 0199", "use": "mobile"},
            {"system": "email", "value": "Ada@Example.org"},
        ],
        "address": [
            {"line": ["1 Main St", "Apt 2"], "city": "Chicago", "state": "IL", "postalCode": "60601", "country": "US"}
        ],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}, "preferred": True}],
    }
    resource.update(extra)
    return resource


def _one(org: Any, import_into: Any, *resources: dict[str, Any]) -> Any:
    report = import_into(org, bundle(patient(), *resources))
    assert report.ok, report.as_text()
    return report


def test_patient(org_a, import_into) -> None:
    _one(org_a, import_into)
    with organization_context(org_a):
        p = Patient.objects.get()
        assert (p.mrn, p.given_name, p.family_name, p.preferred_name) == ("MRN-777", "Ada May", "Quinn", "Addie")
        assert p.date_of_birth == date(1961, 4, 2) and p.sex == "female" and p.preferred_language == "es"
        assert p.phone_mobile == "+13125550199" and p.email == "ada@example.org"
        assert (p.address_line1, p.address_line2, p.address_city, p.address_postal_code) == (
            "1 Main St",
            "Apt 2",
            "Chicago",
            "60601",
        )
        assert [(i.system, i.value) for i in PatientIdentifier.objects.all()] == [
            ("http://payer.example/member", "M-42")
        ]
        link = FhirResourceLink.objects.get(resource_type="Patient")
        assert (link.resource_id, link.object_id, link.source_system) == (PID, p.pk, "test")


def test_practitioner_location_and_organization_as_references(org_a, import_into) -> None:
    _one(
        org_a,
        import_into,
        {
            "resourceType": "Practitioner",
            "id": PRAC,
            "name": [{"prefix": ["Dr."], "given": ["Rui"], "family": "Lopes"}],
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        },
        {"resourceType": "Location", "id": LOC, "name": "Lakeside Clinic", "address": {"text": "9 Shore Rd"}},
        {"resourceType": "Organization", "id": "org-1", "name": "Some Hospital"},
    )
    with organization_context(org_a):
        assert Practitioner.objects.get().display_name == "Dr. Rui Lopes"
        assert Practitioner.objects.get().npi == "1234567893"
        assert Location.objects.get().address == "9 Shore Rd"
        org_link = FhirResourceLink.objects.get(resource_type="Organization")
        assert org_link.object_id is None  # kept as a reference only


def test_encounter(org_a, import_into) -> None:
    _one(
        org_a,
        import_into,
        {"resourceType": "Practitioner", "id": PRAC, "name": [{"text": "Dr. Lopes"}]},
        {
            "resourceType": "Encounter",
            "id": ENC,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003", "display": "Check up"}]}],
            "subject": {"reference": f"Patient/{PID}"},  # a relative reference, resolved inside the bundle
            "participant": [{"individual": {"reference": f"urn:uuid:{PRAC}"}}],
            "period": {"start": "2024-03-01T10:00:00Z", "end": "2024-03-01T10:30:00Z"},
            "reasonCode": [{"text": "Follow-up"}],
        },
    )
    with organization_context(org_a):
        e = Encounter.objects.get()
        assert (e.status, e.class_code, e.type_code, e.type_display, e.reason_display) == (
            "finished",
            "AMB",
            "185349003",
            "Check up",
            "Follow-up",
        )
        assert e.patient == Patient.objects.get() and e.practitioner == Practitioner.objects.get()


def test_appointment_telehealth_gets_a_join_url(org_a, import_into, settings) -> None:
    _one(
        org_a,
        import_into,
        {"resourceType": "Practitioner", "id": PRAC, "name": [{"text": "Dr. Lopes"}]},
        {
            "resourceType": "Appointment",
            "id": "appt-1",
            "status": "booked",
            "appointmentType": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"}]
            },
            "start": "2030-01-02T15:00:00Z",
            "end": "2030-01-02T15:30:00Z",
            "participant": [
                {"actor": SUBJECT, "status": "accepted"},
                {"actor": {"reference": f"urn:uuid:{PRAC}"}, "status": "accepted"},
            ],
        },
    )
    with organization_context(org_a):
        a = Appointment.objects.get()
        assert (a.status, a.kind, a.source_system, a.source_id) == ("booked", "telehealth", "test", "appt-1")
        prefix = settings.TELEHEALTH_URL_TEMPLATE.split("{room}")[0]
        assert a.telehealth_url.startswith(prefix) and len(a.telehealth_url) > len(prefix) + 20


def test_condition(org_a, import_into) -> None:
    _one(
        org_a,
        import_into,
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": SUBJECT,
            "clinicalStatus": {"coding": [{"code": "resolved"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}], "text": "Hypertension"},
            "onsetDateTime": "2019-05-06T00:00:00Z",
        },
    )
    with organization_context(org_a):
        c = Condition.objects.get()
        assert (c.code, c.display, c.clinical_status, c.onset_date) == (
            "38341003",
            "Hypertension",
            "resolved",
            date(2019, 5, 6),
        )


def test_observation_lab_and_blood_pressure_components(org_a, import_into) -> None:
    lab = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "subject": SUBJECT,
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}], "text": "HbA1c"},
        "effectiveDateTime": "2024-01-01T08:00:00Z",
        "valueQuantity": {"value": 7.2, "unit": "%", "code": "%"},
        "referenceRange": [{"low": {"value": 4}, "high": {"value": 5.6}}],
    }
    bp = {
        "resourceType": "Observation",
        "id": "o2",
        "status": "final",
        "subject": SUBJECT,
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "Blood pressure"},
        "effectiveDateTime": "2024-01-01T08:00:00Z",
        "component": [
            {
                "code": {"coding": [{"code": "8480-6"}]},
                "valueQuantity": {"value": 150, "code": "mm[Hg]"},
                "referenceRange": [{"low": {"value": 90}, "high": {"value": 139}}],
            },
            {"code": {"coding": [{"code": "8462-4"}]}, "valueQuantity": {"value": 80, "code": "mm[Hg]"}},
        ],
    }
    survey = {**lab, "id": "o3", "category": [{"coding": [{"code": "survey"}]}]}
    report = _one(org_a, import_into, lab, bp, survey)
    assert report.counts["Observation"]["created"] == 2 and report.counts["Observation"]["skipped"] == 1
    with organization_context(org_a):
        a1c = Observation.objects.get(code="4548-4")
        assert (a1c.value_quantity, a1c.unit, a1c.reference_high, a1c.abnormal_flag) == (
            Decimal("7.2"),
            "%",
            Decimal("5.6"),
            "H",
        )
        pressure = Observation.objects.get(code="85354-9")
        assert pressure.value_display == "150/80 mm[Hg]" and pressure.abnormal_flag == "H"


@pytest.mark.parametrize("rtype", ["MedicationRequest", "MedicationStatement"])
def test_medications(org_a, import_into, rtype) -> None:
    med = {
        "resourceType": rtype,
        "id": "m1",
        "status": "stopped",
        "subject": SUBJECT,
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "314076"}],
            "text": "lisinopril 10 MG",
        },
    }
    if rtype == "MedicationRequest":
        med.update(intent="order", authoredOn="2023-02-03", dosageInstruction=[{"text": "1 daily"}])
    else:
        med.update(effectivePeriod={"start": "2023-02-03", "end": "2023-06-01"}, dosage=[{"text": "1 daily"}])
    _one(org_a, import_into, med)
    with organization_context(org_a):
        m = Medication.objects.get()
        assert (m.name, m.code, m.status, m.dose_text, m.start_date) == (
            "lisinopril 10 MG",
            "314076",
            "stopped",
            "1 daily",
            date(2023, 2, 3),
        )


def test_allergy(org_a, import_into) -> None:
    _one(
        org_a,
        import_into,
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "patient": SUBJECT,
            "criticality": "high",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91935009"}], "text": "Peanuts"},
            "reaction": [{"manifestation": [{"text": "Hives"}, {"text": "Wheeze"}]}],
        },
    )
    with organization_context(org_a):
        a = Allergy.objects.get()
        assert (a.substance_display, a.substance_code, a.criticality, a.reaction) == (
            "Peanuts",
            "91935009",
            "high",
            "Hives; Wheeze",
        )


def test_immunization(org_a, import_into) -> None:
    _one(
        org_a,
        import_into,
        {
            "resourceType": "Immunization",
            "id": "i1",
            "patient": SUBJECT,
            "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}], "text": "Flu"},
            "occurrenceDateTime": "2023-10-01",
            "lotNumber": "LOT9",
        },
    )
    with organization_context(org_a):
        i = Immunization.objects.get()
        assert (i.vaccine_code, i.display, i.occurrence_date, i.lot_number) == ("140", "Flu", date(2023, 10, 1), "LOT9")


def test_procedure_and_careplan(org_a, import_into) -> None:
    _one(
        org_a,
        import_into,
        {"resourceType": "Encounter", "id": ENC, "status": "finished", "class": {"code": "AMB"}, "subject": SUBJECT},
        {
            "resourceType": "Procedure",
            "id": "p1",
            "status": "completed",
            "subject": SUBJECT,
            "encounter": {"reference": f"urn:uuid:{ENC}"},
            "code": {
                "coding": [{"system": "http://snomed.info/sct", "code": "430193006"}],
                "text": "Med reconciliation",
            },
            "performedDateTime": "2024-02-02T09:00:00Z",
        },
        {
            "resourceType": "CarePlan",
            "id": "cp1",
            "status": "active",
            "intent": "plan",
            "subject": SUBJECT,
            "title": "Diabetes plan",
            "activity": [{"detail": {"status": "in-progress", "code": {"text": "Diet"}}}],
        },
    )
    with organization_context(org_a):
        p = Procedure.objects.get()
        assert (p.code, p.display, p.encounter) == ("430193006", "Med reconciliation", Encounter.objects.get())
        plan = EhrCarePlan.objects.get()
        assert (plan.status, plan.intent, plan.title, plan.activities) == ("active", "plan", "Diabetes plan", "Diet")


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        (patient(gender="F"), "Patient.gender"),
        (
            {
                "resourceType": "Condition",
                "id": "c1",
                "subject": SUBJECT,
                "clinicalStatus": {"coding": [{"code": "bad"}]},
                "code": {"coding": [{"code": "1"}]},
            },
            "Condition.clinicalStatus",
        ),
        (
            {
                "resourceType": "AllergyIntolerance",
                "id": "a1",
                "patient": SUBJECT,
                "criticality": "severe",
                "code": {"text": "x"},
            },
            "AllergyIntolerance.criticality",
        ),
        (
            {
                "resourceType": "Immunization",
                "id": "i1",
                "patient": SUBJECT,
                "status": "done",
                "vaccineCode": {"coding": [{"code": "140"}]},
                "occurrenceDateTime": "2023-01-01",
            },
            "Immunization.status",
        ),
        (
            {"resourceType": "Encounter", "id": "e1", "status": "over", "class": {"code": "AMB"}, "subject": SUBJECT},
            "Encounter.status",
        ),
    ],
)
def test_coded_values_are_checked_by_us(org_a, import_into, resource, field) -> None:
    resources = [resource] if resource["resourceType"] == "Patient" else [patient(), resource]
    report = import_into(org_a, bundle(*resources))
    assert not report.ok
    assert report.failures[0].field == field
    with organization_context(org_a):
        assert Patient.objects.count() == 0  # the whole bundle was refused
