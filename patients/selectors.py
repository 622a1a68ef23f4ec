"""Reads on patient records, always within the current organization."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from compliance.guards import get_object_for_user
from healthcrm.crypto import (
    NAME_PREFIX_MAX,
    NAME_PREFIX_MIN,
    blind_index_field_for,
    name_query_pair_digest,
    name_query_prefix_digest,
    name_query_word_digest,
    name_words,
)
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

MAX_QUERY_WORDS = 6
NAME_SEARCH_HINT = f"Type at least {NAME_PREFIX_MIN} letters of a name (first, last or preferred) to search by name."
TOO_MANY_WORDS_HINT = f"Type at most {MAX_QUERY_WORDS} words of a name."
NO_MATCH_HELP = (
    "Every word must start a first, last or preferred name, in any order (3 letters or more; "
    'an initial beside a whole name, "Angela W"). Or try the MRN or its number, a phone number or '
    "its last 7 or 10 digits, an email address or a date of birth."
)


def _as_date(text: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def search_kind(query: str) -> str:
    """What a search box entry looks like: 'date', 'email', 'phone' (7 digits or more, phone
    punctuation only), 'mrn' (has a digit) or 'text' (a name)."""
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
    """Why a name search cannot be run as typed ('' when it can, or when it is no name search).

    Shown with the results (a 2-letter entry still finds whole names such as "Li") or instead of
    them."""
    text = query.strip()
    if not text or search_kind(text) != "text":
        return ""
    words = name_words(text)
    if len(words) > MAX_QUERY_WORDS:
        return TOO_MANY_WORDS_HINT
    if not any(len(word) >= NAME_PREFIX_MIN for word in words):
        return NAME_SEARCH_HINT
    return ""


def _lookup(digests: Sequence[str]) -> Q:
    """Patients with one of these name-search hashes: equality on the lookup table (leakproof, so
    its index works under RLS; see PatientNamePrefix)."""
    organization = require_current_organization()
    rows = PatientNamePrefix.objects.filter(organization_id=organization.pk)
    rows = rows.filter(digest=digests[0]) if len(digests) == 1 else rows.filter(digest__in=digests)
    return Q(pk__in=rows.values("patient_id"))


def _name_words_q(words: list[str], *, whole_long_words: bool) -> Q:
    """Every word matches some word of the patient's names: a word of 3+ letters by its prefix (or,
    `whole_long_words`, a word longer than 8 letters as a whole word), a shorter one as an initial
    beside one of the query's longer words."""
    organization_id = require_current_organization().pk
    anchors = [w for w in words if len(w) >= NAME_PREFIX_MIN]
    condition = Q()
    for word in words:
        if len(word) >= NAME_PREFIX_MIN:
            if whole_long_words and len(word) > NAME_PREFIX_MAX:
                digest = name_query_word_digest(word, organization_id)
            else:
                digest = name_query_prefix_digest(word, organization_id)
            condition &= _lookup([digest])
        else:
            condition &= _lookup(sorted({name_query_pair_digest(anchor, word, organization_id) for anchor in anchors}))
    return condition


def _digits_q(text: str) -> Q:
    """An all-digit entry: the MRN as typed, the MRN's number, or a phone number, whole (any
    format) or by its last 7 or 10 digits."""
    digits = re.sub(r"\D", "", text)
    condition = blind_q(Patient, mrn=text) | _blind_eq("mrn", "identifier_digits", digits)
    if len(digits) >= 7:
        with contextlib.suppress(ValidationError):  # no number as a whole: its last digits may be one's
            condition |= blind_q(Patient, phone_mobile=text)
        if len(digits) in (7, 10):
            condition |= _blind_eq("phone_mobile", f"phone_last{len(digits)}", digits)
    return condition


def _blind_eq(source: str, kind: str, value: str) -> Q:
    field = blind_index_field_for(Patient, source, kind)
    digest = field.digest(value, require_current_organization().pk)
    return Q(**{field.attname: digest}) if digest else Q(pk__in=[])


def patient_list(*, query: str = "") -> QuerySet[Patient]:
    """Active patients of the current organization, optionally matched by a search entry.

    Every match goes through blind indexes, nothing is decrypted to search: MRN (exact, or its
    number without letters and padding), phone (any format, as E.164, or its last 7 or 10 digits),
    email, date of birth, or names: every word of the entry starts some word of the given, family
    or preferred name, in any order ("Angela Watson", "Watson, Angela", "ang wat"); a word of one
    or two letters is an initial beside a whole word ("Angela W"). Case and accents are folded.
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
    if kind == "phone" or (kind == "mrn" and re.fullmatch(r"[\d\s()+.\-]+", text)):
        return patients.filter(_digits_q(text))
    if kind == "mrn":
        return patients.filter(blind_q(Patient, mrn=text))
    words = name_words(text)
    whole_name = blind_q(Patient, given_name=text) | blind_q(Patient, family_name=text)
    mrn = blind_q(Patient, mrn=text)
    if len(words) > MAX_QUERY_WORDS or not any(len(word) >= NAME_PREFIX_MIN for word in words):
        # Nothing to search by prefix (the hint says why): whole names such as "Li" still match.
        return patients.filter(mrn | whole_name)
    if any(len(word) > NAME_PREFIX_MAX for word in words):
        # Only the first 8 letters are prefixes: prefer patients whose words are the long words.
        exact = patients.filter(_name_words_q(words, whole_long_words=True))
        if exact.exists():
            return exact
    # Letters only: a name (entries with a digit went the MRN way above). The lookups plan as
    # semi-joins from the lookup table's index, so counting thousands of matches stays cheap.
    return patients.filter(_name_words_q(words, whole_long_words=False))


def patient_possible_duplicates(
    *,
    given_name: str,
    family_name: str,
    date_of_birth: date | None,
    phone_mobile: str = "",
    exclude_pk: int | None = None,
    limit: int = 10,
) -> list[Patient]:
    """Active patients of the current organization who may be the same person: the same given and
    family name (case and accents folded) and birth date, or the same mobile number (any format).

    Equality on blind indexes only, nothing decrypted; merged and inactive records are left out.
    """
    condition = Q(pk__in=[])
    if given_name.strip() and family_name.strip() and date_of_birth is not None:
        condition |= blind_q(Patient, given_name=given_name, family_name=family_name, date_of_birth=date_of_birth)
    if phone_mobile.strip():
        with contextlib.suppress(ValidationError):  # no phone number: nothing to match by
            condition |= blind_q(Patient, phone_mobile=phone_mobile)
    found = Patient.objects.filter(condition, is_active=True)
    if exclude_pk is not None:
        found = found.exclude(pk=exclude_pk)
    return list(found.order_by("pk")[:limit])


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
    """The guarded fetch for patients: 404 across organizations, 403 without `perm`, and the
    break-the-glass form for a clinical user without a care relationship where the organization
    requires one (patients/breakglass/policy.py)."""
    from patients.breakglass.policy import require_care_relationship

    patient = get_object_for_user(request, Patient.objects.select_related("organization"), pk, perm)
    require_care_relationship(request, patient)
    return patient


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


def anomaly_patient_facts(*, patient_ids: list[int]) -> dict[int, tuple[str | None, str]]:
    """For the anomaly scan (compliance reads it through settings.COMPLIANCE_PATIENT_FACTS, below
    patients in the layers): each patient's family-name blind index and access flag. Nothing
    decrypted: the scan compares digests."""
    rows = Patient.objects.filter(pk__in=patient_ids).values_list("pk", "family_name_bidx", "access_flag")
    return {pk: (digest, flag) for pk, digest, flag in rows}
