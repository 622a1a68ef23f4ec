"""FHIR R4 resources -> HealthCRM rows (the import direction; export.py is the other one).

Resources have already been validated with fhir.resources' R4B models when they reach these
functions, so element types are right; what the library does not check, we do here: coded values
(gender, statuses, criticality), required-for-us elements, and value ranges that fit our columns.
Each mapper returns the model, its field values, the references to resolve and, for errors, which
FHIR element feeds which field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import models
from django.utils.dateparse import parse_datetime

from engagement.questionnaires.definitions import SCORE_CODES
from engagement.questionnaires.models import QuestionnaireResponse
from engagement.questionnaires.services import response_fields_from_fhir
from healthcrm.models import Location
from integrations.models import EhrCarePlan, Encounter, Procedure
from patients.models import (
    CVX,
    LOINC,
    RXNORM,
    SNOMED,
    Allergy,
    Appointment,
    Condition,
    Immunization,
    Medication,
    Observation,
    Patient,
    Practitioner,
)

MR_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
EXT_BASE = "https://healthcrm.example/fhir/StructureDefinition/"
EXT_REFILL_DUE = EXT_BASE + "refill-due"
EXT_PRONOUNS = EXT_BASE + "pronouns"
EXT_GENDER_IDENTITY = EXT_BASE + "gender-identity"
EXT_CONTACT_WINDOW = EXT_BASE + "contact-window"

# Value sets we check ourselves (fhir.resources accepts any string for a `code`).
GENDERS = {"male", "female", "other", "unknown"}
CONDITION_CLINICAL = {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
MEDICATION_REQUEST_STATUS = {
    "active": "active",
    "on-hold": "active",
    "draft": "active",
    "unknown": "active",
    "completed": "completed",
    "cancelled": "stopped",
    "stopped": "stopped",
    "entered-in-error": "stopped",
}
MEDICATION_STATEMENT_STATUS = {
    "active": "active",
    "intended": "active",
    "on-hold": "active",
    "unknown": "active",
    "completed": "completed",
    "stopped": "stopped",
    "not-taken": "stopped",
    "entered-in-error": "stopped",
}
ALLERGY_CRITICALITY = {"low", "high", "unable-to-assess"}
IMMUNIZATION_STATUS = {"completed", "entered-in-error", "not-done"}
OBSERVATION_STATUS = {
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
}
OBSERVATION_CATEGORIES_KEPT = {"vital-signs", "laboratory"}
ENCOUNTER_STATUS = {
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
}
EVENT_STATUS = {
    "preparation",
    "in-progress",
    "not-done",
    "on-hold",
    "stopped",
    "completed",
    "entered-in-error",
    "unknown",
}
REQUEST_STATUS = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
CAREPLAN_ACTIVITY_STATUS = {
    "not-started",
    "scheduled",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
    "stopped",
    "unknown",
    "entered-in-error",
}
CAREPLAN_INTENT = {"proposal", "plan", "order", "option"}
APPOINTMENT_STATUS = {
    "proposed": "booked",
    "pending": "booked",
    "booked": "booked",
    "waitlist": "booked",
    "arrived": "checked_in",
    "checked-in": "checked_in",
    "fulfilled": "completed",
    "cancelled": "cancelled",
    "entered-in-error": "cancelled",
    "noshow": "no_show",
}
TELEHEALTH_CODES = {"VR", "telehealth"}

# Types we keep; reference-only types get a link and no row (the tenant is the organization).
REFERENCE_ONLY = {"Organization", "Medication"}
TIERS: dict[str, int] = {
    "Organization": 0,
    "Medication": 0,
    "Location": 0,
    "Practitioner": 0,
    "Patient": 0,
    "Encounter": 1,
    "Appointment": 2,
    "Condition": 2,
    "Observation": 2,
    "MedicationRequest": 2,
    "MedicationStatement": 2,
    "AllergyIntolerance": 2,
    "Immunization": 2,
    "Procedure": 2,
    "CarePlan": 2,
    "QuestionnaireResponse": 2,
}
KEPT_TYPES = frozenset(TIERS)


class MappingError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Skip(Exception):  # noqa: N818 - a signal, not an error
    """A resource of a kept type that we do not keep (e.g. a survey observation)."""


@dataclass
class Mapped:
    model: type[models.Model] | None
    fields: dict[str, Any] = field(default_factory=dict)
    # model field name -> (FHIR path, reference string); resolved by the importer to an object id.
    refs: dict[str, tuple[str, str]] = field(default_factory=dict)
    optional_refs: set[str] = field(default_factory=set)
    # model field -> FHIR path, to name the element when the model refuses a value.
    paths: dict[str, str] = field(default_factory=dict)
    identifiers: list[tuple[str, str]] = field(default_factory=list)  # Patient: (system, value), MRN excluded
    medication_ref: tuple[str, str] | None = None
    # Appointment participants given as urn:uuid references: their type is known once resolved.
    participants: list[tuple[str, str]] = field(default_factory=list)
    # Data-quality warnings: (FHIR path, reason) of an element left out, the resource kept.
    warnings: list[tuple[str, str]] = field(default_factory=list)


# -- small readers ---------------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def first_coding(concept: Any) -> dict[str, Any]:
    for coding in _list((concept or {}).get("coding")):
        if isinstance(coding, dict) and coding.get("code"):
            return coding
    return {}


def concept_text(concept: Any) -> str:
    concept = concept or {}
    if concept.get("text"):
        return str(concept["text"])
    for coding in _list(concept.get("coding")):
        if coding.get("display"):
            return str(coding["display"])
    return ""


def parse_when(value: Any, path: str) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime (dates and partial dates at 00:00 UTC)."""
    if value in (None, ""):
        return None
    text = str(value)
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1, tzinfo=UTC)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        parsed = parse_datetime(text)
    except ValueError:
        parsed = None
    if parsed is None:
        raise MappingError(path, "not a valid FHIR date or dateTime")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_day(value: Any, path: str) -> date | None:
    when = parse_when(value, path)
    return when.date() if when else None


def decimal4(value: Any, path: str) -> Decimal | None:
    """A number that fits NUMERIC(12, 4)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise MappingError(path, "not a number")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise MappingError(path, "not a number") from None
    if not number.is_finite():
        raise MappingError(path, "not a finite number")
    # Checked before rounding: quantize() of a huge number raises InvalidOperation (precision).
    if abs(number) >= Decimal("1e8"):
        raise MappingError(path, "number too large (at most 8 digits before the decimal point)")
    return number.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _code(value: Any, allowed: set[str] | dict[str, str], path: str, default: str | None = None) -> str:
    if value in (None, ""):
        if default is None:
            raise MappingError(path, "required")
        return default
    if value not in allowed:
        raise MappingError(path, f"'{value}' is not a code of this value set" if _short(value) else "not a valid code")
    return allowed[value] if isinstance(allowed, dict) else str(value)


def _short(value: Any) -> bool:
    # Codes are echoed only when they look like codes: a coded element cannot carry PHI, free text might.
    return isinstance(value, str) and len(value) <= 32 and value.replace("-", "").isalnum()


def _fit(value: str, length: int, path: str) -> str:
    if len(value) > length:
        raise MappingError(path, f"longer than {length} characters")
    return value


def reference(res: dict[str, Any], key: str) -> str:
    ref = res.get(key)
    return str(ref.get("reference") or "") if isinstance(ref, dict) else ""


def _subject(res: dict[str, Any], rtype: str, key: str = "subject") -> tuple[str, str]:
    ref = reference(res, key)
    if not ref:
        raise MappingError(f"{rtype}.{key}", "a reference to the patient is required")
    return (f"{rtype}.{key}", ref)


# -- mappers ----------------------------------------------------------------------------------------


def is_mrn(identifier: dict[str, Any]) -> bool:
    return any(c.get("code") == "MR" for c in _list((identifier.get("type") or {}).get("coding")))


def patient_mrn(res: dict[str, Any]) -> tuple[str, str] | None:
    """The MRN identifier: the one typed MR (v2-0203), else the first identifier with a value."""
    identifiers = [i for i in _list(res.get("identifier")) if isinstance(i, dict) and i.get("value")]
    for identifier in identifiers:
        if is_mrn(identifier):
            return str(identifier.get("system") or ""), str(identifier["value"])
    if identifiers:
        return str(identifiers[0].get("system") or ""), str(identifiers[0]["value"])
    return None


def _extension(res: dict[str, Any], url: str) -> Any:
    for ext in _list(res.get("extension")):
        if isinstance(ext, dict) and ext.get("url") == url:
            for key, value in ext.items():
                if key.startswith("value"):
                    return value
    return None


def map_patient(res: dict[str, Any]) -> Mapped:
    mrn = patient_mrn(res)
    if mrn is None:
        raise MappingError("Patient.identifier", "a patient needs an identifier (the MRN) to be matched")
    names = [n for n in _list(res.get("name")) if isinstance(n, dict)]
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    usual = next((n for n in names if n.get("use") == "usual" and n is not official), None)
    given = " ".join(str(g) for g in _list(official.get("given")))
    family = str(official.get("family") or "")
    if not given and not family:
        raise MappingError("Patient.name", "a given or family name is required")
    birth = parse_day(res.get("birthDate"), "Patient.birthDate")
    if birth is None:
        raise MappingError("Patient.birthDate", "required")
    fields: dict[str, Any] = {
        "mrn": _fit(mrn[1].strip(), 64, "Patient.identifier.value"),
        "given_name": _fit(given, 100, "Patient.name.given"),
        "family_name": _fit(family, 100, "Patient.name.family"),
        "preferred_name": " ".join(str(g) for g in _list(usual.get("given"))) if usual else "",
        "date_of_birth": birth,
        "sex": _code(res.get("gender"), GENDERS, "Patient.gender", default="unknown"),
        "phone_mobile": "",
        "phone_home": "",
        "email": "",
    }
    for telecom in _list(res.get("telecom")):
        system, value = telecom.get("system"), str(telecom.get("value") or "")
        # A home phone is a landline until told otherwise: never the number text messages go to.
        use = telecom.get("use")
        if system == "phone" and value and use in (None, "mobile") and not fields["phone_mobile"]:
            fields["phone_mobile"] = value
        elif system == "phone" and value and use == "home" and not fields["phone_home"]:
            fields["phone_home"] = value
        elif system == "email" and value and not fields["email"]:
            fields["email"] = value
    addresses = [a for a in _list(res.get("address")) if isinstance(a, dict)]
    if addresses:
        address = addresses[0]
        lines = [str(x) for x in _list(address.get("line"))]
        country = str(address.get("country") or "")
        fields.update(
            address_line1=lines[0] if lines else "",
            address_line2=", ".join(lines[1:]),
            address_city=str(address.get("city") or ""),
            address_state=str(address.get("state") or ""),
            address_postal_code=str(address.get("postalCode") or ""),
            address_country=country.upper() if len(country) == 2 else "US",
        )
    for communication in _list(res.get("communication")):
        code = first_coding(communication.get("language")).get("code")
        if code:
            fields["preferred_language"] = str(code)
            if communication.get("preferred"):
                break
    contacts = [c for c in _list(res.get("contact")) if isinstance(c, dict)]
    if contacts:
        contact = contacts[0]
        name = contact.get("name") or {}
        contact_name = name.get("text") or " ".join(
            [*(str(g) for g in _list(name.get("given"))), str(name.get("family") or "")]
        )
        phone = next((str(t.get("value")) for t in _list(contact.get("telecom")) if t.get("system") == "phone"), "")
        fields.update(
            emergency_contact_name=contact_name.strip(),
            emergency_contact_relationship=next(
                (concept_text(r) for r in _list(contact.get("relationship")) if concept_text(r)), ""
            ),
            emergency_contact_phone=phone,
        )
    pronouns = _extension(res, EXT_PRONOUNS)
    if pronouns:
        fields["pronouns"] = str(pronouns)
    identity = _extension(res, EXT_GENDER_IDENTITY)
    if identity:
        fields["gender_identity"] = str(identity)
    if res.get("active") is False:
        fields["is_active"] = False
    identifiers = []
    for identifier in _list(res.get("identifier")):
        if isinstance(identifier, dict) and identifier.get("value") and identifier.get("system"):
            pair = (str(identifier["system"]), str(identifier["value"]))
            if pair != mrn:
                identifiers.append(pair)
    paths = {
        "mrn": "Patient.identifier",
        "given_name": "Patient.name.given",
        "family_name": "Patient.name.family",
        "date_of_birth": "Patient.birthDate",
        "sex": "Patient.gender",
        "phone_mobile": "Patient.telecom",
        "phone_home": "Patient.telecom",
        "email": "Patient.telecom",
        "preferred_language": "Patient.communication.language",
        "emergency_contact_phone": "Patient.contact.telecom",
        "address_postal_code": "Patient.address.postalCode",
        "address_state": "Patient.address.state",
    }
    return Mapped(Patient, fields, paths=paths, identifiers=identifiers)


def practitioner_npi(res: dict[str, Any]) -> str:
    for identifier in _list(res.get("identifier")):
        if isinstance(identifier, dict) and identifier.get("system") == NPI_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return ""


def map_practitioner(res: dict[str, Any]) -> Mapped:
    names = [n for n in _list(res.get("name")) if isinstance(n, dict)]
    name = names[0] if names else {}
    display = (
        name.get("text")
        or " ".join(
            [
                *(str(p) for p in _list(name.get("prefix"))),
                *(str(g) for g in _list(name.get("given"))),
                str(name.get("family") or ""),
            ]
        ).strip()
    )
    if not display:
        raise MappingError("Practitioner.name", "required")
    npi = practitioner_npi(res)
    warnings = []
    if npi and (len(npi) != 10 or not npi.isdigit()):
        # Real feeds send them (Synthea's practitioners): a data-quality warning, not a reason to
        # refuse the practitioner and every encounter that names them.
        warnings.append(("Practitioner.identifier", "an NPI has 10 digits: the practitioner was imported without it"))
        npi = ""
    specialty = next((concept_text(q.get("code")) for q in _list(res.get("qualification")) if isinstance(q, dict)), "")
    fields = {"display_name": _fit(display, 200, "Practitioner.name"), "npi": npi, "specialty": specialty[:100]}
    return Mapped(
        Practitioner,
        fields,
        paths={"display_name": "Practitioner.name", "npi": "Practitioner.identifier"},
        warnings=warnings,
    )


def map_location(res: dict[str, Any]) -> Mapped:
    name = str(res.get("name") or "").strip()
    if not name:
        raise MappingError("Location.name", "required")
    address = res.get("address") or {}
    text = address.get("text") or ", ".join(
        [*(str(x) for x in _list(address.get("line"))), str(address.get("city") or ""), str(address.get("state") or "")]
    ).strip(", ")
    phone = next((str(t.get("value")) for t in _list(res.get("telecom")) if t.get("system") == "phone"), "")
    fields = {"name": _fit(name, 200, "Location.name"), "address": text, "phone": phone[:32]}
    return Mapped(Location, fields, paths={"name": "Location.name"})


def map_condition(res: dict[str, Any]) -> Mapped:
    coding = first_coding(res.get("code"))
    if not coding:
        raise MappingError("Condition.code", "a coded condition is required")
    status = first_coding(res.get("clinicalStatus")).get("code")
    fields = {
        "code_system": str(coding.get("system") or SNOMED),
        "code": _fit(str(coding["code"]), 32, "Condition.code.coding.code"),
        "display": _fit(concept_text(res.get("code")) or str(coding["code"]), 255, "Condition.code.text"),
        "onset_date": parse_day(res.get("onsetDateTime"), "Condition.onsetDateTime")
        or parse_day((res.get("onsetPeriod") or {}).get("start"), "Condition.onsetPeriod.start"),
        "clinical_status": _code(status, CONDITION_CLINICAL, "Condition.clinicalStatus", default="active"),
    }
    return Mapped(
        Condition,
        fields,
        refs={"patient": _subject(res, "Condition")},
        paths={"code": "Condition.code", "display": "Condition.code", "onset_date": "Condition.onsetDateTime"},
    )


def _category(res: dict[str, Any]) -> str:
    for concept in _list(res.get("category")):
        for coding in _list((concept or {}).get("coding")):
            if coding.get("code") in OBSERVATION_CATEGORIES_KEPT:
                return str(coding["code"])
            # A questionnaire's total (PHQ-9, GAD-7, ...) is kept; other survey answers are not.
            if coding.get("code") == "survey" and first_coding(res.get("code")).get("code") in SCORE_CODES:
                return "survey"
    return ""


def _quantity(qty: Any, path: str) -> tuple[Decimal | None, str]:
    if not isinstance(qty, dict):
        return None, ""
    return decimal4(qty.get("value"), f"{path}.value"), str(qty.get("code") or qty.get("unit") or "")


def _range(res: dict[str, Any], path: str) -> tuple[Decimal | None, Decimal | None]:
    ranges = [r for r in _list(res.get("referenceRange")) if isinstance(r, dict)]
    if not ranges:
        return None, None
    low = decimal4((ranges[0].get("low") or {}).get("value"), f"{path}.referenceRange.low.value")
    high = decimal4((ranges[0].get("high") or {}).get("value"), f"{path}.referenceRange.high.value")
    if low is not None and high is not None and high < low:
        raise MappingError(f"{path}.referenceRange", "the high end is below the low end")
    return low, high


def map_observation(res: dict[str, Any]) -> Mapped:
    _code(res.get("status"), OBSERVATION_STATUS, "Observation.status")
    category = _category(res)
    if not category:
        raise Skip("only vital signs and laboratory results are kept")
    coding = first_coding(res.get("code"))
    if not coding:
        raise MappingError("Observation.code", "a coded observation is required")
    effective = parse_when(res.get("effectiveDateTime") or res.get("effectiveInstant"), "Observation.effectiveDateTime")
    if effective is None:
        effective = parse_when((res.get("effectivePeriod") or {}).get("start"), "Observation.effectivePeriod.start")
    if effective is None:
        effective = parse_when(res.get("issued"), "Observation.issued")
    if effective is None:
        raise MappingError("Observation.effective[x]", "when the observation was made is required")
    value, unit = _quantity(res.get("valueQuantity"), "Observation.valueQuantity")
    value_text = ""
    if res.get("valueCodeableConcept"):
        value_text = concept_text(res["valueCodeableConcept"])
    elif res.get("valueString") is not None:
        value_text = str(res["valueString"])
    low, high = _range(res, "Observation")
    components = []
    for i, component in enumerate(_list(res.get("component"))):
        path = f"Observation.component[{i}]"
        c_coding = first_coding(component.get("code"))
        c_value, c_unit = _quantity(component.get("valueQuantity"), f"{path}.valueQuantity")
        if not c_coding or c_value is None:
            continue  # a component without a number (e.g. a coded answer) is not kept
        c_low, c_high = _range(component, path)
        item = {
            "code": str(c_coding["code"]),
            "display": concept_text(component.get("code")),
            "value": str(c_value.normalize()),
            "unit": c_unit,
        }
        if c_low is not None:
            item["low"] = str(c_low.normalize())
        if c_high is not None:
            item["high"] = str(c_high.normalize())
        components.append(item)
        unit = unit or c_unit
    if value is None and not value_text and not components:
        raise Skip("an observation without a value is not kept")
    fields = {
        "code_system": str(coding.get("system") or LOINC),
        "code": _fit(str(coding["code"]), 32, "Observation.code.coding.code"),
        "display": _fit(concept_text(res.get("code")) or str(coding["code"]), 255, "Observation.code.text"),
        "category": category,
        "value_quantity": value,
        "value_text": value_text,
        "unit": _fit(unit, 32, "Observation.valueQuantity.unit"),
        "reference_low": low,
        "reference_high": high,
        "components": components,
        "effective_at": effective,
    }
    return Mapped(
        Observation,
        fields,
        refs={"patient": _subject(res, "Observation")},
        paths={"value_quantity": "Observation.valueQuantity", "effective_at": "Observation.effectiveDateTime"},
    )


def _medication(res: dict[str, Any], rtype: str, statuses: dict[str, str]) -> Mapped:
    status = _code(res.get("status"), statuses, f"{rtype}.status")
    mapped = Mapped(Medication, refs={"patient": _subject(res, rtype)})
    concept = res.get("medicationCodeableConcept")
    if concept:
        coding = first_coding(concept)
        name, code, system = concept_text(concept), str(coding.get("code") or ""), str(coding.get("system") or RXNORM)
    else:
        ref = res.get("medicationReference") or {}
        if not ref.get("reference") and not ref.get("display"):
            raise MappingError(f"{rtype}.medication[x]", "required")
        name, code, system = str(ref.get("display") or ""), "", RXNORM
        if ref.get("reference"):
            mapped.medication_ref = (f"{rtype}.medicationReference", str(ref["reference"]))
    dosages = [d for d in _list(res.get("dosageInstruction") or res.get("dosage")) if isinstance(d, dict)]
    dose_text = str(dosages[0].get("text") or "") if dosages else ""
    schedule_text = ""
    if dosages:
        schedule_text = str(
            dosages[0].get("patientInstruction") or concept_text((dosages[0].get("timing") or {}).get("code"))
        )
    if rtype == "MedicationRequest":
        start = parse_day(res.get("authoredOn"), "MedicationRequest.authoredOn")
        validity = ((res.get("dispenseRequest") or {}).get("validityPeriod")) or {}
        end = parse_day(validity.get("end"), "MedicationRequest.dispenseRequest.validityPeriod.end")
    else:
        period = res.get("effectivePeriod") or {}
        start = parse_day(period.get("start") or res.get("effectiveDateTime"), "MedicationStatement.effective[x]")
        end = parse_day(period.get("end"), "MedicationStatement.effectivePeriod.end")
    if start and end and end < start:
        raise MappingError(f"{rtype}.effectivePeriod", "ends before it starts")
    mapped.fields = {
        "name": _fit(name, 255, f"{rtype}.medication[x]"),
        "code": _fit(code, 32, f"{rtype}.medicationCodeableConcept.coding.code"),
        "code_system": system,
        "dose_text": dose_text[:255],
        "schedule_text": schedule_text[:255],
        "start_date": start,
        "end_date": end,
        "refill_due": parse_day(_extension(res, EXT_REFILL_DUE), f"{rtype}.extension"),
        "status": status,
    }
    mapped.paths = {"name": f"{rtype}.medication[x]", "end_date": f"{rtype}.effectivePeriod"}
    return mapped


def map_medication_request(res: dict[str, Any]) -> Mapped:
    return _medication(res, "MedicationRequest", MEDICATION_REQUEST_STATUS)


def map_medication_statement(res: dict[str, Any]) -> Mapped:
    return _medication(res, "MedicationStatement", MEDICATION_STATEMENT_STATUS)


def map_allergy(res: dict[str, Any]) -> Mapped:
    coding = first_coding(res.get("code"))
    display = concept_text(res.get("code"))
    if not display and not coding:
        raise MappingError("AllergyIntolerance.code", "the substance is required")
    reactions = []
    for reaction in _list(res.get("reaction")):
        for manifestation in _list((reaction or {}).get("manifestation")):
            text = concept_text(manifestation)
            if text and text not in reactions:
                reactions.append(text)
    fields = {
        "substance_system": str(coding.get("system") or SNOMED) if coding else "",
        "substance_code": _fit(str(coding.get("code") or ""), 32, "AllergyIntolerance.code.coding.code"),
        "substance_display": _fit(display or str(coding.get("code")), 255, "AllergyIntolerance.code.text"),
        "reaction": "; ".join(reactions),
        "criticality": _code(
            res.get("criticality"), ALLERGY_CRITICALITY, "AllergyIntolerance.criticality", default="unable-to-assess"
        ),
    }
    return Mapped(Allergy, fields, refs={"patient": _subject(res, "AllergyIntolerance", "patient")})


def map_immunization(res: dict[str, Any]) -> Mapped:
    status = _code(res.get("status"), IMMUNIZATION_STATUS, "Immunization.status")
    coding = first_coding(res.get("vaccineCode"))
    if not coding:
        raise MappingError("Immunization.vaccineCode", "a coded vaccine is required")
    occurred = parse_day(res.get("occurrenceDateTime"), "Immunization.occurrenceDateTime")
    if occurred is None:
        raise MappingError("Immunization.occurrenceDateTime", "a date is required")
    fields = {
        "vaccine_system": str(coding.get("system") or CVX),
        "vaccine_code": _fit(str(coding["code"]), 8, "Immunization.vaccineCode.coding.code"),
        "display": _fit(concept_text(res.get("vaccineCode")) or str(coding["code"]), 255, "Immunization.vaccineCode"),
        "occurrence_date": occurred,
        "lot_number": _fit(str(res.get("lotNumber") or ""), 64, "Immunization.lotNumber"),
        "status": status,
    }
    return Mapped(Immunization, fields, refs={"patient": _subject(res, "Immunization", "patient")})


def map_encounter(res: dict[str, Any]) -> Mapped:
    status = _code(res.get("status"), ENCOUNTER_STATUS, "Encounter.status")
    klass = res.get("class") or {}
    types = [t for t in _list(res.get("type")) if isinstance(t, dict)]
    coding = first_coding(types[0]) if types else {}
    period = res.get("period") or {}
    start = parse_when(period.get("start"), "Encounter.period.start")
    end = parse_when(period.get("end"), "Encounter.period.end")
    if start and end and end < start:
        raise MappingError("Encounter.period", "ends before it starts")
    mapped = Mapped(
        Encounter,
        {
            "status": status,
            "class_code": _fit(str(klass.get("code") or ""), 32, "Encounter.class.code"),
            "type_system": str(coding.get("system") or ""),
            "type_code": _fit(str(coding.get("code") or ""), 32, "Encounter.type.coding.code"),
            "type_display": concept_text(types[0])[:255] if types else "",
            "reason_display": next((concept_text(r) for r in _list(res.get("reasonCode")) if concept_text(r)), "")[
                :255
            ],
            "period_start": start,
            "period_end": end,
        },
        refs={"patient": _subject(res, "Encounter")},
        optional_refs={"practitioner", "location"},
    )
    for i, participant in enumerate(_list(res.get("participant"))):
        ref = reference(participant or {}, "individual")
        if ref.startswith("Practitioner") or "/Practitioner/" in ref or ref.startswith("urn:"):
            mapped.refs["practitioner"] = (f"Encounter.participant[{i}].individual", ref)
            break
    for i, loc in enumerate(_list(res.get("location"))):
        ref = reference(loc or {}, "location")
        if ref:
            mapped.refs["location"] = (f"Encounter.location[{i}].location", ref)
            break
    return mapped


def map_procedure(res: dict[str, Any]) -> Mapped:
    status = _code(res.get("status"), EVENT_STATUS, "Procedure.status")
    coding = first_coding(res.get("code"))
    if not coding:
        raise MappingError("Procedure.code", "a coded procedure is required")
    period = res.get("performedPeriod") or {}
    start = parse_when(res.get("performedDateTime") or period.get("start"), "Procedure.performed[x]")
    end = parse_when(period.get("end"), "Procedure.performedPeriod.end")
    mapped = Mapped(
        Procedure,
        {
            "status": status,
            "code_system": str(coding.get("system") or SNOMED),
            "code": _fit(str(coding["code"]), 32, "Procedure.code.coding.code"),
            "display": _fit(concept_text(res.get("code")) or str(coding["code"]), 255, "Procedure.code"),
            "performed_start": start,
            "performed_end": end,
        },
        refs={"patient": _subject(res, "Procedure")},
        optional_refs={"encounter"},
    )
    if reference(res, "encounter"):
        mapped.refs["encounter"] = ("Procedure.encounter", reference(res, "encounter"))
    return mapped


def map_careplan(res: dict[str, Any]) -> Mapped:
    status = _code(res.get("status"), REQUEST_STATUS, "CarePlan.status")
    intent = _code(res.get("intent"), CAREPLAN_INTENT, "CarePlan.intent")
    categories = [c for c in _list(res.get("category")) if isinstance(c, dict)]
    coding = first_coding(categories[0]) if categories else {}
    activities, statuses, warnings = [], [], []
    for i, activity in enumerate(_list(res.get("activity"))):
        detail = (activity or {}).get("detail") or {}
        text = concept_text(detail.get("code"))
        if text:
            activities.append(text.replace("\n", " "))
            activity_status = detail.get("status") or "unknown"
            if activity_status not in CAREPLAN_ACTIVITY_STATUS:
                warnings.append(
                    (f"CarePlan.activity[{i}].detail.status", "not a code of this value set: kept as unknown")
                )
                activity_status = "unknown"
            statuses.append(activity_status)
    period = res.get("period") or {}
    title = str(res.get("title") or (concept_text(categories[0]) if categories else ""))
    return Mapped(
        EhrCarePlan,
        {
            "status": status,
            "intent": intent,
            "category_system": str(coding.get("system") or ""),
            "category_code": _fit(str(coding.get("code") or ""), 32, "CarePlan.category.coding.code"),
            "title": title[:255],
            "description": str(res.get("description") or ""),
            "activities": "\n".join(activities),
            "activity_statuses": statuses,
            "period_start": parse_when(period.get("start"), "CarePlan.period.start"),
            "period_end": parse_when(period.get("end"), "CarePlan.period.end"),
        },
        refs={"patient": _subject(res, "CarePlan")},
        warnings=warnings,
    )


def map_appointment(res: dict[str, Any]) -> Mapped:
    status = _code(res.get("status"), APPOINTMENT_STATUS, "Appointment.status")
    start = parse_when(res.get("start"), "Appointment.start")
    end = parse_when(res.get("end"), "Appointment.end")
    if start is None or end is None:
        raise MappingError("Appointment.start", "start and end are required")
    if end <= start:
        raise MappingError("Appointment.end", "must be after the start")
    codes = {c.get("code") for c in _list((res.get("appointmentType") or {}).get("coding"))}
    mapped = Mapped(
        Appointment,
        {
            "status": status,
            "starts_at": start,
            "ends_at": end,
            "kind": "telehealth" if codes & TELEHEALTH_CODES else "in_person",
            "reason": next((concept_text(r) for r in _list(res.get("reasonCode")) if concept_text(r)), "")
            or str(res.get("description") or ""),
        },
        paths={"starts_at": "Appointment.start", "ends_at": "Appointment.end"},
    )
    for i, participant in enumerate(_list(res.get("participant"))):
        ref = reference(participant or {}, "actor")
        kind = _ref_type(ref)
        if kind == "Patient" and "patient" not in mapped.refs:
            mapped.refs["patient"] = (f"Appointment.participant[{i}].actor", ref)
        elif kind == "Practitioner" and "practitioner" not in mapped.refs:
            mapped.refs["practitioner"] = (f"Appointment.participant[{i}].actor", ref)
        elif kind == "Location" and "location" not in mapped.refs:
            mapped.refs["location"] = (f"Appointment.participant[{i}].actor", ref)
        elif kind == "" and ref:
            mapped.participants.append((f"Appointment.participant[{i}].actor", ref))
    return mapped


QUESTIONNAIRE_RESPONSE_STATUS = {"in-progress", "completed", "amended", "entered-in-error", "stopped"}


def map_questionnaire_response(res: dict[str, Any]) -> Mapped:
    """A patient's answers, kept whole (encrypted), linked to this organization's definition of the
    same canonical URL when it has one (and then scored like answers given here)."""
    _code(res.get("status"), QUESTIONNAIRE_RESPONSE_STATUS, "QuestionnaireResponse.status")
    authored = parse_when(res.get("authored"), "QuestionnaireResponse.authored")
    if authored is None:
        raise MappingError("QuestionnaireResponse.authored", "when it was answered is required")
    if len(str(res.get("questionnaire") or "")) > 255:
        raise MappingError("QuestionnaireResponse.questionnaire", "longer than 255 characters")
    return Mapped(
        QuestionnaireResponse,
        response_fields_from_fhir(res, authored=authored),
        refs={"patient": _subject(res, "QuestionnaireResponse")},
        paths={"resource": "QuestionnaireResponse", "authored_at": "QuestionnaireResponse.authored"},
    )


def _ref_type(ref: str) -> str:
    """The resource type a reference names ('' for urn:uuid references, resolved by the importer)."""
    if ref.startswith("urn:"):
        return ""
    path = ref.split("?", 1)[0].rstrip("/")
    parts = path.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2:
        return parts[-2]
    return parts[0] if "?" in ref else ""


MAPPERS = {
    "Patient": map_patient,
    "Practitioner": map_practitioner,
    "Location": map_location,
    "Encounter": map_encounter,
    "Appointment": map_appointment,
    "Condition": map_condition,
    "Observation": map_observation,
    "MedicationRequest": map_medication_request,
    "MedicationStatement": map_medication_statement,
    "AllergyIntolerance": map_allergy,
    "Immunization": map_immunization,
    "Procedure": map_procedure,
    "QuestionnaireResponse": map_questionnaire_response,
    "CarePlan": map_careplan,
}
