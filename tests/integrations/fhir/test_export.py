"""Export a patient's record as FHIR R4, validate it, import it into the other clinic: the same record."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from integrations.fhir.export import fhir_export_patient
from integrations.fhir.synthetic import synthea_bundle
from patients import services
from patients.models import Patient
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db


def record(patient: Patient) -> dict[str, Any]:
    """What 'the same record' means: demographics and every clinical list, without ids."""
    fields = (
        "mrn",
        "given_name",
        "family_name",
        "preferred_name",
        "date_of_birth",
        "sex",
        "phone_mobile",
        "phone_home",
        "email",
        "address_line1",
        "address_city",
        "address_postal_code",
        "preferred_language",
        "pronouns",
        "emergency_contact_name",
        "emergency_contact_phone",
    )
    return {
        "patient": {f: getattr(patient, f) for f in fields},
        "identifiers": sorted((i.system, i.value) for i in patient.identifiers.all()),
        "conditions": sorted((c.code, c.display, c.clinical_status, c.onset_date) for c in patient.conditions.all()),
        "medications": sorted(
            (m.code, m.name, m.status, m.dose_text, m.start_date, m.end_date, m.refill_due)
            for m in patient.medications.all()
        ),
        "allergies": sorted(
            (a.substance_code, a.substance_display, a.criticality, a.reaction) for a in patient.allergies.all()
        ),
        "observations": sorted(
            (
                o.code,
                o.category,
                o.value_quantity,
                o.value_text,
                o.unit,
                o.reference_low,
                o.reference_high,
                json.dumps(o.components, sort_keys=True),
                o.effective_at,
                o.abnormal_flag,
            )
            for o in patient.observations.all()
        ),
        "immunizations": sorted(
            (i.vaccine_code, i.display, i.occurrence_date, i.lot_number) for i in patient.immunizations.all()
        ),
        "encounters": sorted(
            (e.status, e.type_code, e.period_start, e.practitioner.display_name) for e in patient.encounters.all()
        ),
        "procedures": sorted((p.code, p.display, p.performed_start) for p in patient.procedures.all()),
        "care_plans": sorted((c.status, c.intent, c.activities) for c in patient.ehr_care_plans.all()),
        "appointments": sorted(
            (a.starts_at, a.kind, a.status, a.practitioner.display_name) for a in patient.appointments.all()
        ),
    }


@pytest.fixture
def rich_patient(org_a: Any, import_into: Any) -> Patient:
    import_into(org_a, synthea_bundle(21, encounters=6), source_system="ehr")
    with organization_context(org_a):
        patient = Patient.objects.get()
        services.patient_update(
            patient=patient,
            pronouns="she/her",
            emergency_contact_name="Kim Doe",
            emergency_contact_phone="+13125550100",
            preferred_name="Annie",
        )
        services.patient_identifier_add(patient=patient, system="http://payer.example", value="P-1")
        services.medication_add(
            patient=patient,
            name="Metformin 500",
            code="860975",
            dose_text="1 tab",
            refill_due=timezone.localdate() + timedelta(days=3),
        )
        services.allergy_add(patient=patient, substance_display="Penicillin", criticality="high", reaction="Rash")
        services.observation_record(
            patient=patient,
            code="2339-0",
            value_quantity=Decimal("180"),
            effective_at=timezone.now().replace(microsecond=0),
        )
        AppointmentFactory(patient=patient, kind="telehealth")
    return patient


def test_the_export_validates_and_round_trips_into_the_other_organization(
    org_a, org_b, rich_patient, import_into
) -> None:
    with organization_context(org_a):
        exported = fhir_export_patient(patient=rich_patient)
        original = record(Patient.objects.get(pk=rich_patient.pk))
    Bundle.model_validate(exported)
    types = {e["resource"]["resourceType"] for e in exported["entry"]}
    assert {
        "Patient",
        "Condition",
        "MedicationStatement",
        "AllergyIntolerance",
        "Observation",
        "Immunization",
        "Encounter",
        "Procedure",
        "CarePlan",
        "Appointment",
        "Practitioner",
    } <= types
    report = import_into(org_b, json.dumps(exported), source_system="north-export")
    assert report.ok, report.as_text()
    with organization_context(org_b):
        assert record(Patient.objects.get()) == original
    again = import_into(org_b, json.dumps(exported), source_system="north-export")
    assert again.total("created") == 0 and again.total("updated") == 0


def test_export_view_is_audited_and_guarded(
    org_a, rich_patient, nurse_user, analyst_user, other_org_user, client_for
) -> None:
    url = reverse("integrations:fhir_patient_export", args=[rich_patient.pk])
    response = client_for(nurse_user).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/fhir+json"
    Bundle.model_validate(json.loads(response.content))
    with organization_context(org_a):
        log = AccessLog.objects.get(action=AccessAction.EXPORT)
        assert log.object_ids == [str(rich_patient.pk)] and log.actor == nurse_user
    assert client_for(analyst_user).get(url).status_code == 403
    assert client_for(other_org_user).get(url).status_code == 404


def test_export_command_writes_a_bundle_and_logs_it(org_a, tmp_path) -> None:
    with organization_context(org_a):
        patient = PatientFactory(mrn="EXP-1")
    out = tmp_path / "p.json"
    call_command("export_fhir", "--organization", "north", "--patient", "exp-1", "--output", str(out))
    bundle = json.loads(out.read_text())
    Bundle.model_validate(bundle)
    assert bundle["entry"][0]["resource"]["identifier"][0]["value"] == "EXP-1"
    with organization_context(org_a):
        assert AccessLog.objects.get(action=AccessAction.EXPORT).object_ids == [str(patient.pk)]


def test_care_plan_activities_keep_their_status_through_export(org_a, import_into) -> None:
    """Synthea plans mix completed and in-progress activities: export says what came in."""
    pid = "5e1a9a52-0000-4000-8000-000000000001"
    statuses = ["completed", "in-progress", "completed", "not-started", "cancelled"]
    plan = {
        "resourceType": "CarePlan",
        "id": "5e1a9a52-0000-4000-8000-000000000002",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"urn:uuid:{pid}"},
        "activity": [
            {"detail": {"status": status, "code": {"text": f"Activity {n}"}}} for n, status in enumerate(statuses)
        ]
        + [{"detail": {"status": "half-done", "code": {"text": "Activity 5"}}}],
    }
    patient = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:ehr", "value": "CP-1"}],
        "name": [{"family": "Plan", "given": ["Cara"]}],
        "birthDate": "1970-01-01",
    }
    report = import_into(
        org_a,
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in (patient, plan)],
        },
    )
    assert report.ok
    assert [(w.field, w.reason) for w in report.warnings] == [
        ("CarePlan.activity[5].detail.status", "not a code of this value set: kept as unknown")
    ]
    with organization_context(org_a):
        exported = fhir_export_patient(patient=Patient.objects.get())
    Bundle.model_validate(exported)
    (care_plan,) = [e["resource"] for e in exported["entry"] if e["resource"]["resourceType"] == "CarePlan"]
    assert [(a["detail"]["code"]["text"], a["detail"]["status"]) for a in care_plan["activity"]] == [
        *((f"Activity {n}", status) for n, status in enumerate(statuses)),
        ("Activity 5", "unknown"),
    ]


@pytest.mark.parametrize(
    ("telecom", "mobile", "home"),
    [
        # A home phone alone is a landline: no text message may go there (it was taken as the mobile).
        ([{"system": "phone", "value": "+13125550111", "use": "home"}], "", "+13125550111"),
        (
            [
                {"system": "phone", "value": "+13125550111", "use": "home"},
                {"system": "phone", "value": "+13125550122", "use": "mobile"},
            ],
            "+13125550122",
            "+13125550111",
        ),
        ([{"system": "phone", "value": "+13125550122"}], "+13125550122", ""),  # no use: the mobile, as before
    ],
)
def test_home_and_mobile_phones_keep_their_use_through_import_and_export(
    org_a, import_into, telecom, mobile, home
) -> None:
    pid = "5e1a9a52-0000-4000-8000-0000000000a1"
    patient = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:ehr", "value": "PH-1"}],
        "name": [{"family": "Phones", "given": ["Hal"]}],
        "birthDate": "1970-01-01",
        "telecom": telecom,
    }
    assert import_into(
        org_a,
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{pid}", "resource": patient}],
        },
    ).ok
    with organization_context(org_a):
        imported = Patient.objects.get()
        assert (imported.phone_mobile, imported.phone_home) == (mobile, home)
        exported = fhir_export_patient(patient=imported)
    Bundle.model_validate(exported)
    (resource,) = [e["resource"] for e in exported["entry"] if e["resource"]["resourceType"] == "Patient"]
    phones = {t["use"]: t["value"] for t in resource.get("telecom", []) if t["system"] == "phone"}
    assert phones == {k: v for k, v in (("mobile", mobile), ("home", home)) if v}
