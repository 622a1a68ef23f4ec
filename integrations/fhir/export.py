"""A patient's whole record as a FHIR R4 Bundle (HIPAA / GDPR access requests).

Resource ids are UUIDs derived from (organization, model, pk), so exporting twice gives the same
ids, and importing the bundle elsewhere twice is idempotent. The bundle is validated with
fhir.resources' R4B models before it is returned.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.db import models
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from engagement.questionnaires.selectors import responses_for_patient
from integrations.fhir.mapping import (
    EXT_GENDER_IDENTITY,
    EXT_PRONOUNS,
    EXT_REFILL_DUE,
    MR_TYPE_SYSTEM,
    NPI_SYSTEM,
)
from integrations.models import EhrCarePlan, Encounter, Procedure
from patients.models import (
    CVX,
    UCUM,
    Allergy,
    Appointment,
    Condition,
    Immunization,
    Medication,
    Observation,
    Patient,
    PatientIdentifier,
)

_NAMESPACE = uuid.UUID("5b0d7a8e-7f57-4b7c-9a43-1c3c2f0b8f11")
APPOINTMENT_STATUS_OUT = {
    "booked": "booked",
    "confirmed": "booked",
    "checked_in": "checked-in",
    "completed": "fulfilled",
    "cancelled": "cancelled",
    "no_show": "noshow",
}


def resource_uuid(obj: models.Model) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{obj.organization_id}:{obj._meta.label_lower}:{obj.pk}"))  # type: ignore[attr-defined]


def mrn_system(patient: Patient) -> str:
    return f"urn:healthcrm:{patient.organization.slug}:mrn"


def _activity_status(plan: EhrCarePlan, index: int) -> str:
    statuses = plan.activity_statuses or []
    return str(statuses[index]) if index < len(statuses) else "unknown"


def _ref(obj: models.Model) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource_uuid(obj)}"}


def _dt(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _num(value: Any) -> float | int:
    number = Decimal(str(value)).normalize()
    return int(number) if number == number.to_integral_value() else float(number)


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    coding: dict[str, Any] = {"code": code}
    if system:
        coding["system"] = system
    if display:
        coding["display"] = display
    concept: dict[str, Any] = {"coding": [coding] if code else []}
    if display:
        concept["text"] = display
    if not concept["coding"]:
        del concept["coding"]
    return concept


def resource_clean(value: Any) -> Any:
    """Drop empty elements: FHIR forbids empty strings, lists and objects."""
    if isinstance(value, dict):
        out = {k: resource_clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        out_list = [resource_clean(v) for v in value]
        return [v for v in out_list if v not in (None, "", [], {})]
    return value


def patient_resource(patient: Patient, identifiers: list[PatientIdentifier]) -> dict[str, Any]:
    telecom = []
    if patient.phone_mobile:
        telecom.append({"system": "phone", "value": patient.phone_mobile, "use": "mobile"})
    if patient.phone_home:
        telecom.append({"system": "phone", "value": patient.phone_home, "use": "home"})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    names = [{"use": "official", "family": patient.family_name, "given": patient.given_name.split()}]
    if patient.preferred_name:
        names.append({"use": "usual", "given": [patient.preferred_name]})
    resource = {
        "resourceType": "Patient",
        "id": resource_uuid(patient),
        "active": patient.is_active,
        "identifier": [
            {
                "type": {"coding": [{"system": MR_TYPE_SYSTEM, "code": "MR"}]},
                "system": mrn_system(patient),
                "value": patient.mrn,
            },
            *({"system": i.system, "value": i.value} for i in identifiers),
        ],
        "name": names,
        "gender": patient.sex,
        "birthDate": _day(patient.date_of_birth),
        "telecom": telecom,
        "address": [
            {
                "line": [patient.address_line1, *([patient.address_line2] if patient.address_line2 else [])],
                "city": patient.address_city,
                "state": patient.address_state,
                "postalCode": patient.address_postal_code,
                "country": patient.address_country,
            }
        ]
        if patient.address_line1
        else [],
        "communication": [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": patient.preferred_language}]}}
        ],
        "extension": [
            *([{"url": EXT_PRONOUNS, "valueString": patient.pronouns}] if patient.pronouns else []),
            *(
                [{"url": EXT_GENDER_IDENTITY, "valueString": patient.gender_identity}]
                if patient.gender_identity
                else []
            ),
        ],
    }
    if patient.emergency_contact_name:
        resource["contact"] = [
            {
                "name": {"text": patient.emergency_contact_name},
                "relationship": [{"text": patient.emergency_contact_relationship}]
                if patient.emergency_contact_relationship
                else [],
                "telecom": [{"system": "phone", "value": patient.emergency_contact_phone}]
                if patient.emergency_contact_phone
                else [],
            }
        ]
    return resource


def _observation(o: Observation, patient: Patient) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_uuid(o),
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": o.category}]}
        ],
        "code": _concept(o.code_system, o.code, o.display),
        "subject": _ref(patient),
        "effectiveDateTime": _dt(o.effective_at),
    }
    if o.value_quantity is not None:
        resource["valueQuantity"] = {"value": _num(o.value_quantity), "unit": o.unit, "system": UCUM, "code": o.unit}
    elif o.value_text:
        resource["valueString"] = o.value_text
    if o.reference_low is not None or o.reference_high is not None:
        resource["referenceRange"] = [
            {
                "low": {"value": _num(o.reference_low), "unit": o.unit} if o.reference_low is not None else None,
                "high": {"value": _num(o.reference_high), "unit": o.unit} if o.reference_high is not None else None,
            }
        ]
    components = []
    for c in o.components:
        component: dict[str, Any] = {
            "code": _concept(o.code_system, c["code"], c.get("display", "")),
            "valueQuantity": {
                "value": _num(c["value"]),
                "unit": c.get("unit", ""),
                "system": UCUM,
                "code": c.get("unit", ""),
            },
        }
        if c.get("low") is not None or c.get("high") is not None:
            component["referenceRange"] = [
                {
                    "low": {"value": _num(c["low"])} if c.get("low") is not None else None,
                    "high": {"value": _num(c["high"])} if c.get("high") is not None else None,
                }
            ]
        components.append(component)
    resource["component"] = components
    return resource


def questionnaire_response_resource(response: Any, patient: Patient) -> dict[str, Any]:
    """A stored response (already FHIR-shaped) with its id, subject and source (the patient)."""
    resource = json.loads(response.resource)
    resource.update(
        {
            "resourceType": "QuestionnaireResponse",
            "id": resource_uuid(response),
            "subject": _ref(patient),
            "source": _ref(patient),
        }
    )
    return resource


def fhir_export_patient(*, patient: Patient) -> dict[str, Any]:
    """The patient's record as a validated FHIR R4 `collection` Bundle (a dict ready for JSON)."""
    resources: list[dict[str, Any]] = []
    identifiers = list(PatientIdentifier.objects.filter(patient=patient))
    resources.append(patient_resource(patient, identifiers))
    practitioners: dict[int, Any] = {}
    locations: dict[int, Any] = {}

    for c in Condition.objects.filter(patient=patient):
        resources.append(
            {
                "resourceType": "Condition",
                "id": resource_uuid(c),
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": c.clinical_status,
                        }
                    ]
                },
                "code": _concept(c.code_system, c.code, c.display),
                "subject": _ref(patient),
                "onsetDateTime": _day(c.onset_date),
            }
        )
    for m in Medication.objects.filter(patient=patient):
        resources.append(
            {
                "resourceType": "MedicationStatement",
                "id": resource_uuid(m),
                "status": m.status,
                "medicationCodeableConcept": _concept(m.code_system if m.code else "", m.code, m.name),
                "subject": _ref(patient),
                "effectivePeriod": {"start": _day(m.start_date), "end": _day(m.end_date)},
                "dosage": [{"text": m.dose_text, "patientInstruction": m.schedule_text}],
                "extension": [{"url": EXT_REFILL_DUE, "valueDate": _day(m.refill_due)}] if m.refill_due else [],
            }
        )
    for a in Allergy.objects.filter(patient=patient):
        resources.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": resource_uuid(a),
                "criticality": a.criticality,
                "code": _concept(a.substance_system if a.substance_code else "", a.substance_code, a.substance_display),
                "patient": _ref(patient),
                "reaction": [{"manifestation": [{"text": r.strip()} for r in a.reaction.split(";") if r.strip()]}]
                if a.reaction
                else [],
            }
        )
    responses = list(responses_for_patient(patient_id=patient.pk))
    derived = {r.observation_id: r for r in responses if r.observation_id}
    for o in Observation.objects.filter(patient=patient):
        observation = _observation(o, patient)
        if o.pk in derived:  # a questionnaire's score: it says which answers it was computed from
            observation["derivedFrom"] = [_ref(derived[o.pk])]
        resources.append(observation)
    for r in responses:
        resources.append(questionnaire_response_resource(r, patient))
    for i in Immunization.objects.filter(patient=patient):
        resources.append(
            {
                "resourceType": "Immunization",
                "id": resource_uuid(i),
                "status": i.status,
                "vaccineCode": _concept(i.vaccine_system or CVX, i.vaccine_code, i.display),
                "patient": _ref(patient),
                "occurrenceDateTime": _day(i.occurrence_date),
                "lotNumber": i.lot_number,
            }
        )
    encounters = list(Encounter.objects.filter(patient=patient).select_related("practitioner", "location"))
    for e in encounters:
        if e.practitioner_id:
            practitioners[e.practitioner_id] = e.practitioner
        if e.location_id:
            locations[e.location_id] = e.location
        resources.append(
            {
                "resourceType": "Encounter",
                "id": resource_uuid(e),
                "status": e.status,
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": e.class_code or "AMB"},
                "type": [_concept(e.type_system, e.type_code, e.type_display)] if e.type_code or e.type_display else [],
                "subject": _ref(patient),
                "period": {"start": _dt(e.period_start), "end": _dt(e.period_end)},
                "reasonCode": [{"text": e.reason_display}] if e.reason_display else [],
                "participant": [{"individual": _ref(e.practitioner)}] if e.practitioner_id else [],
                "location": [{"location": _ref(e.location)}] if e.location_id else [],
            }
        )
    for p in Procedure.objects.filter(patient=patient).select_related("encounter"):
        resources.append(
            {
                "resourceType": "Procedure",
                "id": resource_uuid(p),
                "status": p.status,
                "code": _concept(p.code_system, p.code, p.display),
                "subject": _ref(patient),
                "encounter": _ref(p.encounter) if p.encounter_id else None,
                "performedPeriod": {"start": _dt(p.performed_start), "end": _dt(p.performed_end)}
                if p.performed_end
                else None,
                "performedDateTime": _dt(p.performed_start) if not p.performed_end else None,
            }
        )
    for plan in EhrCarePlan.objects.filter(patient=patient):
        resources.append(
            {
                "resourceType": "CarePlan",
                "id": resource_uuid(plan),
                "status": plan.status,
                "intent": plan.intent,
                "title": plan.title,
                "description": plan.description,
                "category": [_concept(plan.category_system, plan.category_code, "")] if plan.category_code else [],
                "subject": _ref(patient),
                "period": {"start": _dt(plan.period_start), "end": _dt(plan.period_end)},
                "activity": [
                    # Plans imported before statuses were kept say "unknown", not a guess.
                    {"detail": {"status": _activity_status(plan, i), "code": {"text": line}}}
                    for i, line in enumerate(plan.activities.splitlines())
                ],
            }
        )
    for appt in Appointment.objects.filter(patient=patient).select_related("practitioner", "location"):
        practitioners[appt.practitioner_id] = appt.practitioner
        if appt.location_id:
            locations[appt.location_id] = appt.location
        participants = [
            {"actor": _ref(patient), "status": "accepted"},
            {"actor": _ref(appt.practitioner), "status": "accepted"},
        ]
        if appt.location_id:
            participants.append({"actor": _ref(appt.location), "status": "accepted"})
        resources.append(
            {
                "resourceType": "Appointment",
                "id": resource_uuid(appt),
                "status": APPOINTMENT_STATUS_OUT[appt.status],
                "appointmentType": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "code": "VR" if appt.kind == "telehealth" else "AMB",
                        }
                    ]
                },
                "description": appt.reason,
                "start": _dt(appt.starts_at),
                "end": _dt(appt.ends_at),
                "participant": participants,
            }
        )
    for pr in practitioners.values():
        resources.append(
            {
                "resourceType": "Practitioner",
                "id": resource_uuid(pr),
                "identifier": [{"system": NPI_SYSTEM, "value": pr.npi}] if pr.npi else [],
                "name": [{"text": pr.display_name}],
            }
        )
    for loc in locations.values():
        resources.append(
            {"resourceType": "Location", "id": resource_uuid(loc), "name": loc.name, "address": {"text": loc.address}}
        )
    bundle = resource_clean(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": timezone.now().isoformat(),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
        }
    )
    Bundle.model_validate(bundle)  # raises if we produced something that is not valid R4
    return bundle
