"""Sharing a patient's record with a party (an EHR connection), under the patient's consent.

A patient's data goes to a connection only with their data-sharing consent for that connection,
in force (given, not expired): `engagement` keeps consents and names the other side by a party key
this module owns ("fhir-connection:<id>"), so engagement needs nothing from integrations. Every
export to a party goes through `fhir_share_export`: patients without consent are refused, each
reported by id with the reason (no PHI), and every exported record is access-logged as an export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from compliance.models import AccessAction, AccessLog
from engagement.selectors import sharing_consented
from integrations.fhir.export import fhir_export_patient
from integrations.models import FhirConnection
from patients.models import Patient

PARTY_PREFIX = "fhir-connection:"
NO_CONSENT = "No data-sharing consent in force for this connection."
NOT_FOUND = "No such active patient in this organization."


def party_key(connection: FhirConnection) -> str:
    """The key a data-sharing consent names this connection by (stable: the id, never the URL)."""
    return f"{PARTY_PREFIX}{connection.pk}"


def consent_parties() -> dict[str, str]:
    """ENGAGEMENT_CONSENT_PARTIES: the current organization's connections, {party key: name}."""
    return {party_key(c): c.name for c in FhirConnection.objects.order_by("name", "pk")}


@dataclass(frozen=True)
class Refused:
    """A patient left out of an export, by id, with why (a fixed sentence: no PHI)."""

    patient_id: int
    reason: str


@dataclass
class SharingExport:
    connection_id: int
    bundles: dict[int, dict[str, Any]] = field(default_factory=dict)  # patient id -> FHIR Bundle
    refused: list[Refused] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """What was exported and what was refused, ids only (for logs, screens and the caller)."""
        return {
            "connection": self.connection_id,
            "exported": sorted(self.bundles),
            "refused": [{"patient": r.patient_id, "reason": r.reason} for r in self.refused],
        }


@transaction.atomic
def fhir_share_export(
    *, connection: FhirConnection, patient_ids: list[int], actor: Any = None, actor_label: str = ""
) -> SharingExport:
    """The records of `patient_ids` as FHIR R4 Bundles for `connection`, for those who consent to
    sharing with it now; the others refused, per patient. Each export is access-logged."""
    result = SharingExport(connection_id=connection.pk)
    wanted = list(dict.fromkeys(patient_ids))
    found = {p.pk: p for p in Patient.objects.filter(pk__in=wanted, is_active=True)}
    consented = sharing_consented(patient_ids=list(found), party=party_key(connection))
    for pk in wanted:
        if pk not in found:
            result.refused.append(Refused(pk, NOT_FOUND))
        elif pk not in consented:
            result.refused.append(Refused(pk, NO_CONSENT))
        else:
            result.bundles[pk] = fhir_export_patient(patient=found[pk])
    if result.bundles:
        user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
        label = user.get_username() if user is not None else actor_label or "system"
        AccessLog.objects.create(
            actor=user,
            actor_label=label[:254],
            action=AccessAction.EXPORT,
            view_name="integrations.fhir_share_export",
            object_type="patients.patient",
            object_ids=[str(pk) for pk in result.bundles],
            records=[f"patients.patient:{pk}" for pk in result.bundles]
            + [f"integrations.fhirconnection:{connection.pk}"],
        )
    return result
