"""Home-device readings: tokens (stored hashed), readings recorded as Observations, alerts out of range."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from healthcrm.models import Organization
from integrations.fhir.mapping import MappingError, Skip, map_observation
from integrations.models import DeviceAlert, DeviceToken, FhirResourceLink
from patients.care.timeline import TimelineEntry, register_timeline_source
from patients.models import BLOOD_PRESSURE, DIASTOLIC, SYSTOLIC, Observation, Patient
from patients.selectors import patient_match
from patients.services import clinical_row_create

# bandit B105: a token prefix, not a secret.
TOKEN_PREFIX = "hcd"  # nosec B105
# LOINC codes accepted from devices: blood pressure, glucose, weight, SpO2 (pulse oximetry).
DEVICE_CODES = {BLOOD_PRESSURE, "2339-0", "41653-7", "29463-7", "59408-5", "2708-6"}
# Organization defaults when the patient's care plan sets none (Organization.settings["device_thresholds"]
# overrides them per code): {"8480-6": {"low": "90", "high": "160"}, ...}.
DEFAULT_THRESHOLDS: dict[str, dict[str, str]] = {
    SYSTOLIC: {"low": "90", "high": "160"},
    DIASTOLIC: {"low": "50", "high": "100"},
    "2339-0": {"low": "70", "high": "250"},
    "41653-7": {"low": "70", "high": "250"},
    "59408-5": {"low": "90"},
    "2708-6": {"low": "90"},
}


class DeviceReadingError(Exception):
    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def device_token_create(*, name: str, patient: Patient, actor: Any = None) -> tuple[DeviceToken, str]:
    """A new token for one patient's devices (of the current organization); the clear token is
    returned once, only its hash is kept. A token records readings for its patient and no other."""
    from healthcrm.tenancy import require_current_organization

    organization = require_current_organization()
    clear = f"{TOKEN_PREFIX}_{organization.pk}_{secrets.token_urlsafe(32)}"
    token = DeviceToken.objects.create(
        name=name,
        patient=patient,
        token_hash=_hash(clear),
        prefix=clear[:12],
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    return token, clear


def device_token_organization(clear: str) -> Organization | None:
    """The organization a token claims (checked against the stored hash inside its context)."""
    parts = clear.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1].isdigit():
        return None
    return Organization.objects.filter(pk=int(parts[1]), is_active=True).first()


def device_token_check(clear: str) -> DeviceToken | None:
    """Inside the token's organization context: the active token with this hash, or None."""
    digest = _hash(clear)
    token = DeviceToken.objects.filter(token_hash=digest, is_active=True, patient__isnull=False).first()
    # Tokens issued before tokens were bound to a patient (organization-wide) no longer work.
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    DeviceToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token


@dataclass
class Reading:
    observation: Observation
    alerts: list[DeviceAlert]
    created: bool


def _thresholds(patient: Patient, organization: Organization) -> tuple[dict[str, dict[str, Any]], str]:
    """Per-code low/high: from the patient's active care plan goals when there are any, else the organization's."""
    plan_thresholds = _care_plan_thresholds(patient)
    if plan_thresholds:
        return plan_thresholds, "care_plan"
    merged = dict(DEFAULT_THRESHOLDS)
    merged.update((organization.settings or {}).get("device_thresholds") or {})
    return merged, "organization"


def _care_plan_thresholds(patient: Patient) -> dict[str, dict[str, Any]]:
    # patients' care plans (patients/models/care.py) hold measurable goals: targets with comparators.
    from patients.models.care import Goal

    thresholds: dict[str, dict[str, Any]] = {}
    goals = Goal.objects.filter(care_plan__patient=patient, care_plan__status="active", status="active")
    for goal in goals:
        for target in goal.targets or []:
            code = target.get("component") or goal.observation_code
            bound = "high" if target.get("comparator") in ("<", "<=") else "low"
            thresholds.setdefault(code, {})[bound] = target.get("value")
    return thresholds


def _check(code: str, value: Decimal, limits: dict[str, Any]) -> tuple[Decimal | None, Decimal | None] | None:
    low = Decimal(str(limits["low"])) if limits.get("low") not in (None, "") else None
    high = Decimal(str(limits["high"])) if limits.get("high") not in (None, "") else None
    if (low is not None and value < low) or (high is not None and value > high):
        return low, high
    return None


@transaction.atomic
def device_reading_record(*, token: DeviceToken, resource: dict[str, Any]) -> Reading:
    """Record a device Observation for the patient it names by identifier; alert when out of range.

    Idempotent per (token, Observation.id): a device re-sending a reading creates nothing new.
    """
    from fhir.resources.R4B.observation import Observation as FhirObservation
    from pydantic import ValidationError as PydanticValidationError

    if not isinstance(resource, dict) or resource.get("resourceType") != "Observation":
        raise DeviceReadingError("resourceType", "send one FHIR Observation")
    try:
        FhirObservation.model_validate(resource)
    except PydanticValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        raise DeviceReadingError(
            "Observation." + ".".join(str(p) for p in error.get("loc", ())), str(error.get("msg"))
        ) from None
    except (ValueError, TypeError):
        raise DeviceReadingError("Observation", "not a valid resource") from None
    patient = token.patient
    if patient is None:  # tokens issued before tokens named a patient are refused at authentication
        raise DeviceReadingError("Observation.subject", "this device is not registered to a patient")
    subject = resource.get("subject") or {}
    identifier = (subject.get("identifier") or {}) if isinstance(subject, dict) else {}
    if identifier.get("value"):
        # The token names its patient; an identifier sent along must be that patient's. Whether it
        # is another patient's or no one's gets the same answer (no oracle of who is a patient).
        value = str(identifier["value"])
        named = patient_match(identifiers=[(str(identifier.get("system") or ""), value)]) or patient_match(
            identifiers=[], mrn=value
        )
        if named is None or named.pk != patient.pk:
            raise DeviceReadingError("Observation.subject.identifier", "not the patient this device is registered to")
    resource = {**resource, "subject": {"reference": "Patient/device"}}
    if not resource.get("category"):
        resource["category"] = [{"coding": [{"code": "vital-signs"}]}]
    try:
        mapped = map_observation(resource)
    except (MappingError, Skip) as exc:
        raise DeviceReadingError(getattr(exc, "field", "Observation"), getattr(exc, "reason", str(exc))) from None
    if mapped.fields["code"] not in DEVICE_CODES:
        raise DeviceReadingError("Observation.code", "not a device reading we accept (BP, glucose, weight, SpO2)")
    source = f"device:{token.pk}"
    rid = str(resource.get("id") or "")
    if rid:
        link = FhirResourceLink.objects.filter(
            source_system=source, resource_type="Observation", resource_id=rid
        ).first()
        if link is not None and link.object_id:
            observation = Observation.objects.get(pk=link.object_id)
            return Reading(observation, list(DeviceAlert.objects.filter(observation=observation)), False)
    observation = clinical_row_create(row=Observation(patient=patient, **mapped.fields))
    if rid:
        from django.contrib.contenttypes.models import ContentType

        FhirResourceLink.objects.create(
            source_system=source,
            resource_type="Observation",
            resource_id=rid[:64],
            content_type=ContentType.objects.get_for_model(Observation),
            object_id=observation.pk,
            content_hash="",
        )
    alerts = _alerts(patient, observation)
    return Reading(observation, alerts, True)


def _alerts(patient: Patient, observation: Observation) -> list[DeviceAlert]:
    thresholds, source = _thresholds(patient, patient.organization)
    values: list[tuple[str, Decimal]] = []
    if observation.components:
        values = [(c["code"], Decimal(str(c["value"]))) for c in observation.components]
    elif observation.value_quantity is not None:
        values = [(observation.code, observation.value_quantity)]
    alerts = []
    for code, value in values:
        limits = thresholds.get(code)
        if not limits:
            continue
        out = _check(code, value, limits)
        if out is None:
            continue
        alert = DeviceAlert.objects.create(
            patient=patient,
            observation=observation,
            code=code,
            value=value,
            low=out[0],
            high=out[1],
            threshold_source=source,
        )
        alerts.append(alert)
    if alerts:
        _care_task(patient, alerts)
    return alerts


def _care_task(patient: Patient, alerts: list[DeviceAlert]) -> None:
    """Open an urgent task for the care team's nurses (their role queue), due today."""
    from patients.care.services import task_assign

    codes = ", ".join(sorted({alert.code for alert in alerts}))
    task_assign(
        patient=patient,
        title="Home device reading out of range",
        details=f"Device observation codes out of range: {codes}. See the patient's timeline.",
        due_date=timezone.localdate(),
        priority="urgent",
        assignee_role="nurse",
    )


@register_timeline_source("device_alerts", clinical=True)
def _device_alert_entries(patient: Patient, limit: int) -> list[TimelineEntry]:
    """Out-of-range home readings on the patient's timeline (clinical: results are clinical)."""
    rows = DeviceAlert.objects.filter(patient=patient).order_by("-created_at")[:limit]
    return [
        TimelineEntry(
            at=alert.created_at,
            kind="result",
            title="Home device reading out of range",
            detail=f"{alert.code}: {alert.value} (range {alert.low if alert.low is not None else '…'}"
            f"–{alert.high if alert.high is not None else '…'})",
        )
        for alert in rows
    ]
