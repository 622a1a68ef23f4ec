"""What goes into a right-of-access package: the FHIR R4 Bundle and the readable document's
sections, from the same reads.

The bundle is `integrations.fhir.export.fhir_export_patient` (demographics, problems, medications,
allergies, results, immunizations, visits, encounters, procedures, EHR care plans) plus what the
exporter leaves out and the law asks for: the CRM's own care plans and goals, the messages sent to
the patient (Communication), their consents (Consent) and the access report (AuditEvent, one per
row). The whole bundle is validated with fhir.resources' R4B models.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from engagement.models import Consent, ConsentChange, OutboundMessage, OutboxStatus
from integrations.fhir.export import fhir_export_patient, resource_clean, resource_uuid
from integrations.models import EhrCarePlan, Encounter
from patients.access_report.selectors import AccessReportRow, patient_access_report
from patients.models import (
    Allergy,
    Appointment,
    CarePlan,
    Condition,
    Goal,
    Immunization,
    Medication,
    Observation,
    Patient,
)

SECTIONS = (
    ("demographics", "Demographics"),
    ("problems", "Problems"),
    ("medications", "Medications"),
    ("allergies", "Allergies"),
    ("results", "Results"),
    ("immunizations", "Immunizations"),
    ("visits", "Visits"),
    ("care_plans", "Care plans"),
    ("messages", "Messages sent to you"),
    ("consents", "Consents"),
    ("access_report", "Who viewed or changed your record"),
)
_AUDIT_NAMESPACE = uuid.UUID("0f3c2d1e-9a4b-4c6d-8e7f-a1b2c3d4e5f6")
SENT = (OutboxStatus.SENT, OutboxStatus.DELIVERED)
_GOAL_LIFECYCLE = {"proposed": "proposed", "active": "active", "on_hold": "on-hold", "achieved": "completed"}
_CAREPLAN_STATUS = {"draft": "draft", "active": "active", "completed": "completed", "revoked": "revoked"}


def _dt(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _ref(obj: Any) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource_uuid(obj)}"}


@dataclass
class PatientRecord:
    """Everything of one patient the package holds, read once (inside the organization)."""

    patient: Patient
    conditions: list[Condition] = field(default_factory=list)
    medications: list[Medication] = field(default_factory=list)
    allergies: list[Allergy] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    immunizations: list[Immunization] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)
    encounters: list[Encounter] = field(default_factory=list)
    care_plans: list[CarePlan] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    ehr_care_plans: list[EhrCarePlan] = field(default_factory=list)
    messages: list[OutboundMessage] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)
    consent_changes: list[ConsentChange] = field(default_factory=list)
    access_rows: list[AccessReportRow] = field(default_factory=list)


def record_read(*, patient: Patient) -> PatientRecord:
    """The patient's record for the package (the current organization's rows only)."""
    return PatientRecord(
        patient=patient,
        conditions=list(Condition.objects.filter(patient=patient).order_by("id")),
        medications=list(Medication.objects.filter(patient=patient).order_by("id")),
        allergies=list(Allergy.objects.filter(patient=patient).order_by("id")),
        observations=list(Observation.objects.filter(patient=patient).order_by("-effective_at", "id")),
        immunizations=list(Immunization.objects.filter(patient=patient).order_by("id")),
        appointments=list(
            Appointment.objects.filter(patient=patient).select_related("practitioner", "location").order_by("starts_at")
        ),
        encounters=list(Encounter.objects.filter(patient=patient).order_by("period_start")),
        care_plans=list(CarePlan.objects.filter(patient=patient).order_by("id")),
        goals=list(Goal.objects.filter(care_plan__patient=patient).order_by("care_plan_id", "id")),
        ehr_care_plans=list(EhrCarePlan.objects.filter(patient=patient).order_by("id")),
        messages=list(OutboundMessage.objects.filter(patient=patient, status__in=SENT).order_by("sent_at", "id")),
        consents=list(Consent.objects.filter(patient=patient).order_by("kind", "party")),
        consent_changes=list(ConsentChange.objects.filter(patient=patient).order_by("changed_at", "id")),
        access_rows=patient_access_report(patient=patient),
    )


def _care_plan(plan: CarePlan, goals: list[Goal], patient: Patient) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": resource_uuid(plan),
        "status": _CAREPLAN_STATUS.get(plan.status, "unknown"),
        "intent": "plan",
        "title": plan.title,
        "subject": _ref(patient),
        "created": _dt(plan.created_at),
        "goal": [_ref(g) for g in goals if g.care_plan_id == plan.pk],
    }


def _goal(goal: Goal, patient: Patient) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "id": resource_uuid(goal),
        "lifecycleStatus": _GOAL_LIFECYCLE.get(goal.status, "cancelled"),
        "description": {"text": goal.description},
        "subject": _ref(patient),
        "startDate": _day(goal.start_date),
        "target": [{"dueDate": _day(goal.due_date)}] if goal.due_date else [],
        "statusDate": _day(goal.status_date),
    }


def _communication(message: OutboundMessage, patient: Patient) -> dict[str, Any]:
    return {
        "resourceType": "Communication",
        "id": resource_uuid(message),
        "status": "completed",
        "category": [{"text": message.subject_type.replace("_", " ")}],
        "medium": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                        "code": "SMSWRIT" if message.channel == "sms" else "EMAILWRIT",
                    }
                ]
            }
        ],
        "subject": _ref(patient),
        "recipient": [_ref(patient)],
        "sent": _dt(message.sent_at),
        "payload": [{"contentString": message.body}] if message.body else [],
    }


def _consent(consent: Consent, patient: Patient) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": resource_uuid(consent),
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"text": consent.get_kind_display()}],
        "patient": _ref(patient),
        "dateTime": _dt(consent.changed_at),
        "policyRule": {"text": consent.get_kind_display() + (f" ({consent.party})" if consent.party else "")},
        "provision": {
            "type": "permit" if consent.status == "opted_in" else "deny",
            **({"period": {"end": _dt(consent.expires_at)}} if consent.expires_at else {}),
        },
    }


def _audit_event(row: AccessReportRow, index: int, patient: Patient) -> dict[str, Any]:
    action = "R" if row.source == "read" else ("C" if row.what.startswith("added") else "U")
    if row.what.startswith("deleted"):
        action = "D"
    if row.what.startswith("exported"):
        action = "E"
    return {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid5(_AUDIT_NAMESPACE, f"{resource_uuid(patient)}:{index}:{row.when.isoformat()}")),
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "action": action,
        "recorded": _dt(row.when),
        "purposeOfEvent": [{"text": row.reason}] if row.reason else [],
        "agent": [
            {
                "who": {"display": row.full_name or row.username},
                "role": [{"text": row.role}] if row.role else [],
                "requestor": True,
            }
        ],
        "source": {"observer": {"display": "HealthCRM"}},
        "entity": [{"what": _ref(patient), "description": row.what}],
    }


def record_bundle(record: PatientRecord) -> dict[str, Any]:
    """The FHIR R4 collection Bundle of the whole record, validated with R4B (raises if not valid)."""
    patient = record.patient
    bundle = fhir_export_patient(patient=patient)
    extra = [
        *(_care_plan(plan, record.goals, patient) for plan in record.care_plans),
        *(_goal(goal, patient) for goal in record.goals),
        *(_communication(message, patient) for message in record.messages),
        *(_consent(consent, patient) for consent in record.consents),
        *(_audit_event(row, i, patient) for i, row in enumerate(record.access_rows)),
    ]
    bundle["entry"].extend(
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in (resource_clean(resource) for resource in extra)
    )
    bundle["timestamp"] = timezone.now().isoformat()
    Bundle.model_validate(bundle)
    return bundle
