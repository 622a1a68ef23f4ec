"""Reads on patient records, always within the current organization."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from compliance.guards import get_object_for_user
from healthcrm.crypto import BlindPrefixIndexField, normalize_name, prefix_digest
from healthcrm.models import blind_q
from healthcrm.tenancy import require_current_organization
from patients.models import (
    Allergy,
    Condition,
    Coverage,
    Immunization,
    Medication,
    Observation,
    Patient,
    PatientIdentifier,
    PatientNamePrefix,
)

_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y")
# HL7 v2-0203 identifier types: an identifier of type MR under another system is still the MRN.
MR_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"

NAME_PREFIX_MIN = 3
NAME_SEARCH_HINT = f"Type at least {NAME_PREFIX_MIN} letters of a first or last name to search by name."


def _as_date(text: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def search_kind(query: str) -> str:
    """What a search box entry looks like: 'date', 'email', 'phone', 'mrn' (has a digit) or 'text' (a name)."""
    text = query.strip()
    if _as_date(text):
        return "date"
    if "@" in text:
        return "email"
    if len(re.sub(r"\D", "", text)) >= 7 and re.fullmatch(r"[\d\s()+.\-]+", text):
        return "phone"
    if any(ch.isdigit() for ch in text):
        return "mrn"  # names have no digits: one index lookup instead of four
    return "text"


def name_search_hint(query: str) -> str:
    """A hint to show when a text search is too short to look for names ('' when it is not)."""
    text = query.strip()
    if text and search_kind(text) == "text" and len(normalize_name(text)) < NAME_PREFIX_MIN:
        return NAME_SEARCH_HINT
    return ""


def _name_prefix_q(text: str) -> Q | None:
    """Patients whose given or family name (or one of its words) starts with `text`, by blind index.

    Shorter than 3 letters: None (exact whole names still match through the plain blind index).
    Longer than the stored prefixes (8): the 8-letter prefix matches, a superset the caller narrows
    to whole-name matches when there are any.
    """
    normalized = normalize_name(text)
    if len(normalized) < NAME_PREFIX_MIN:
        return None
    organization = require_current_organization()
    field = Patient._meta.get_field("given_name_prefixes")
    assert isinstance(field, BlindPrefixIndexField)
    digest = prefix_digest(normalized[: field.prefix_max_length], organization.pk)
    # Equality on the prefix table (leakproof, so its index works under RLS); see PatientNamePrefix.
    matches = PatientNamePrefix.objects.filter(organization_id=organization.pk, digest=digest)
    return Q(pk__in=matches.values("patient_id"))


def patient_list(*, query: str = "") -> QuerySet[Patient]:
    """Active patients of the current organization, optionally matched by a search entry.

    Every match goes through blind indexes, nothing is decrypted to search: MRN (exact), phone (any
    format, as E.164), email, date of birth, or the start (3 letters or more) of a given or family
    name, case and accents folded.
    """
    patients = Patient.objects.filter(is_active=True)
    text = query.strip()
    if not text:
        return patients
    kind = search_kind(text)
    if kind == "date":
        return patients.blind_match(date_of_birth=_as_date(text))
    if kind == "email":
        return patients.blind_match(email=text)
    if kind == "phone":
        try:
            # All-digit MRNs look like phone numbers: match either.
            return patients.filter(blind_q(Patient, phone_mobile=text) | blind_q(Patient, mrn=text))
        except ValidationError:
            kind = "mrn"  # digits that are no phone number may still be an MRN
    if kind == "mrn":
        return patients.filter(blind_q(Patient, mrn=text))
    whole_name = blind_q(Patient, given_name=text) | blind_q(Patient, family_name=text)
    mrn = blind_q(Patient, mrn=text)
    prefix = _name_prefix_q(text)
    if prefix is None:
        return patients.filter(mrn | whole_name)
    if len(normalize_name(text)) > Patient._meta.get_field("given_name_prefixes").prefix_max_length:
        # Only the first 8 letters are indexed: prefer patients whose whole name is the query.
        exact = patients.filter(mrn | whole_name)
        if exact.exists():
            return exact
    # Letters only: a name (entries with a digit went the MRN way above). Alone, the prefix lookup
    # plans as a semi-join from the prefix index, so counting thousands of matches stays cheap.
    return patients.filter(prefix)


def patient_match(*, identifiers: Sequence[tuple[str, str]], mrn: str | None = None) -> Patient | None:
    """A patient of the current organization by MRN or by (system, value) identifier; never by name.

    `mrn` first; then each identifier in order: one without a system is an MRN, one with a system
    an identifier another system gave the patient (or, typed MR, the MRN). Blind-index lookups only.
    """
    if mrn:
        patient = Patient.objects.blind_match(mrn=mrn).first()
        if patient is not None:
            return patient
    for system, value in identifiers:
        if not value:
            continue
        if not system:
            patient = Patient.objects.blind_match(mrn=value).first()
        else:
            match = PatientIdentifier.objects.blind_match(value=value).filter(system=system).select_related("patient")
            identifier = match.first()
            patient = identifier.patient if identifier else None
            if patient is None:
                patient = Patient.objects.blind_match(mrn=value).first() if MR_TYPE_SYSTEM in system else None
        if patient is not None:
            return patient
    return None


def get_patient_for_user(request: HttpRequest, pk: object, perm: str = "patients.view_patient") -> Patient:
    """The guarded fetch for patients: 404 across organizations, 403 without `perm`."""
    return get_object_for_user(request, Patient.objects.select_related("organization"), pk, perm)


@dataclass(frozen=True)
class PatientSummary:
    """What the patient page shows beside the demographics, fetched in a fixed number of queries."""

    identifiers: list[PatientIdentifier]
    coverages: list[Coverage]
    conditions: list[Condition]
    medications: list[Medication]
    allergies: list[Allergy]
    latest_observations: list[Observation]
    immunizations: list[Immunization]


def patient_summary(*, patient: Patient, clinical: bool = True) -> PatientSummary:
    """The patient's identifiers, insurance and clinical summary: seven queries, whatever the record size.

    Observations: the latest of each code (DISTINCT ON), newest first. `clinical=False` (users
    without the clinical field group) reads identifiers and insurance only: two queries.
    """
    if not clinical:
        return PatientSummary(
            identifiers=list(PatientIdentifier.objects.filter(patient=patient)),
            coverages=list(Coverage.objects.filter(patient=patient)),
            conditions=[],
            medications=[],
            allergies=[],
            latest_observations=[],
            immunizations=[],
        )
    latest = list(Observation.objects.filter(patient=patient).order_by("code", "-effective_at", "-id").distinct("code"))
    latest.sort(key=lambda o: o.effective_at, reverse=True)
    return PatientSummary(
        identifiers=list(PatientIdentifier.objects.filter(patient=patient)),
        coverages=list(Coverage.objects.filter(patient=patient)),
        conditions=list(Condition.objects.filter(patient=patient)),
        medications=list(Medication.objects.filter(patient=patient)),
        allergies=list(Allergy.objects.filter(patient=patient)),
        latest_observations=latest,
        immunizations=list(Immunization.objects.filter(patient=patient)),
    )


def access_log_patients(*, query: str = "", pk: int | None = None, limit: int = 20) -> list[Patient]:
    """Patients for the access log's patient filter (compliance reads them through
    settings.ACCESS_LOG_PATIENTS, below patients in the layers): the one with this id, or those a
    search entry finds through the blind indexes (any patient by exact MRN, active ones through
    `patient_list`). Nothing decrypted to search; at most `limit`, by MRN."""
    if pk is not None:
        return list(Patient.objects.filter(pk=pk))
    text = query.strip()
    if not text:
        return []
    try:
        by_mrn = blind_q(Patient, mrn=text)
    except ValidationError:
        by_mrn = Q(pk__in=[])
    found = Patient.objects.filter(by_mrn | Q(pk__in=patient_list(query=text).values("pk")))
    return list(found.order_by("pk")[:limit])
