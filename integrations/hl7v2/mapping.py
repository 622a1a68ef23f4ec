"""HL7 v2.5.1 segments -> HealthCRM's records, as plain values (no database access).

PID (identifiers with their assigning authority, name, birth date, sex, address, phones, language)
-> patient fields; SCH/TQ1/AIS/AIP/AIL -> appointment fields. A value we cannot use raises Hl7Error
naming the field; a value we can do without (a phone number that is not one) becomes a warning
and is left out, as the FHIR import does: one bad optional field must not refuse the whole record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.utils import timezone

from healthcrm.crypto import normalize_phone, validate_phone
from integrations.hl7v2.parsing import REQUIRED_FIELD_MISSING, Hl7Error, Message, parse_date, parse_datetime

# Identifier type codes (HL7 table 0203) and the system patients' records use for the MRN type.
MR_TYPE = "MR"
MAX_IDENTIFIERS = 10

# HL7 table 0001 -> Patient.sex.
SEX = {"F": "female", "M": "male", "O": "other", "A": "other", "N": "unknown", "U": "unknown", "X": "other"}

# ISO 639-2 / common PM codes -> BCP-47 (PID-15); a two-letter code is taken as it is.
LANGUAGES = {
    "ENG": "en",
    "SPA": "es",
    "FRE": "fr",
    "FRA": "fr",
    "POR": "pt",
    "CHI": "zh",
    "ZHO": "zh",
    "VIE": "vi",
    "KOR": "ko",
    "RUS": "ru",
    "ARA": "ar",
    "GER": "de",
    "DEU": "de",
    "ITA": "it",
    "HAT": "ht",
    "TGL": "tl",
    "POL": "pl",
    "JPN": "ja",
    "HIN": "hi",
}
COUNTRIES = {"USA": "US", "CAN": "CA", "MEX": "MX", "GBR": "GB", "PRI": "PR"}

# SCH-25 filler status codes (HL7 table 0278) -> Appointment.status.
STATUSES = {
    "BOOKED": "booked",
    "PENDING": "booked",
    "WAITLIST": "booked",
    "OVERBOOK": "booked",
    "CONFIRMED": "confirmed",
    "STARTED": "checked_in",
    "ARRIVED": "checked_in",
    "COMPLETE": "completed",
    "COMPLETED": "completed",
    "CANCELLED": "cancelled",
    "CANCELED": "cancelled",
    "DELETED": "cancelled",
    "NOSHOW": "no_show",
    "NO-SHOW": "no_show",
    "DC": "cancelled",
}

# SCH-8 appointment type (HL7 table 0277 and common PM codes) -> Appointment.appointment_type.
APPOINTMENT_TYPES = {
    "NEW": "new_patient",
    "NEWPATIENT": "new_patient",
    "FOLLOWUP": "follow_up",
    "ROUTINE": "follow_up",
    "CHECKUP": "annual",
    "ANNUAL": "annual",
    "WELLNESS": "annual",
    "PHYSICAL": "annual",
    "CHRONIC": "chronic_care",
    "PRENATAL": "prenatal",
    "DISCHARGE": "post_discharge",
    "LAB": "lab",
}
TELEHEALTH_WORDS = ("TELE", "VIDEO", "VIRTUAL")


@dataclass
class MappedPatient:
    mrn: str
    identifiers: list[tuple[str, str]]
    fields: dict[str, object]
    warnings: list[tuple[str, str]] = field(default_factory=list)


def identifier_system(authority: str, type_code: str) -> str:
    """The PatientIdentifier.system of an HL7 CX: its assigning authority and identifier type."""
    return f"urn:hl7v2:{authority or 'unknown'}:{type_code or 'ID'}"[:255]


def _identifiers(msg: Message, segment: str, field_no: int) -> tuple[str, list[tuple[str, str]]]:
    """(MRN, [(system, value)]) from a CX list (PID-3, MRG-1): the MRN is the MR-typed identifier, else the first."""
    mrn = ""
    identifiers: list[tuple[str, str]] = []
    for rep in msg.repetitions(segment, field_no, most=MAX_IDENTIFIERS):
        value = msg.get(segment, field_no, rep, 1)
        if not value:
            continue
        authority = msg.get(segment, field_no, rep, 4, 1) or msg.get(segment, field_no, rep, 4, 2)
        type_code = msg.get(segment, field_no, rep, 5).upper()
        if type_code == MR_TYPE and not mrn:
            mrn = value
        identifiers.append((identifier_system(authority, type_code), value[:128]))
    if not mrn and identifiers:
        mrn = identifiers[0][1]
    return mrn[:64], identifiers


def patient_keys(msg: Message, segment: str = "PID", field_no: int = 3) -> tuple[str, list[tuple[str, str]]]:
    """How to find a patient the message names: its MRN and identifiers (Hl7Error if none)."""
    mrn, identifiers = _identifiers(msg, segment, field_no)
    if not identifiers:
        raise Hl7Error(f"{segment}-{field_no}", "no patient identifier", code=REQUIRED_FIELD_MISSING)
    return mrn, identifiers


def _phone(msg: Message, rep: int) -> str:
    legacy = msg.get("PID", 13, rep, 1)
    if legacy:
        return legacy
    parts = [msg.get("PID", 13, rep, c) for c in (5, 6, 7)]
    local = "".join(parts[1:])
    if not local:
        return ""
    return f"+{parts[0]}{local}" if parts[0] else local


def _valid_phone(value: str) -> str | None:
    try:
        normalized = normalize_phone(value)
        validate_phone(normalized)
    except (ValidationError, ValueError):
        return None
    return normalized or None


def map_patient(msg: Message, *, require_demographics: bool = True) -> MappedPatient:
    """PID -> patient fields (the names the patients services take)."""
    mrn, identifiers = patient_keys(msg)
    fields: dict[str, object] = {}
    warnings: list[tuple[str, str]] = []
    family = msg.get("PID", 5, 1, 1, 1)
    given = msg.get("PID", 5, 1, 2)
    if family or given or require_demographics:
        if not family:
            raise Hl7Error("PID-5", "the family name is missing", code=REQUIRED_FIELD_MISSING)
        if not given:
            raise Hl7Error("PID-5", "the given name is missing", code=REQUIRED_FIELD_MISSING)
        if len(family) > 100 or len(given) > 100:
            raise Hl7Error("PID-5", "a name is longer than 100 characters")
        fields["family_name"] = family
        fields["given_name"] = given
    birth = msg.get("PID", 7)
    if birth:
        born = parse_date(birth, "PID-7")
        if born > timezone.now().date() or born.year < 1850:
            raise Hl7Error("PID-7", "the birth date is not plausible")
        fields["date_of_birth"] = born
    elif require_demographics:
        raise Hl7Error("PID-7", "the birth date is missing", code=REQUIRED_FIELD_MISSING)
    sex = msg.get("PID", 8).upper()
    if sex:
        if sex not in SEX:
            raise Hl7Error("PID-8", "not a code of HL7 table 0001")
        fields["sex"] = SEX[sex]
    if msg.get("PID", 11, 1, 1) or msg.get("PID", 11, 1, 3):
        address = {
            "address_line1": msg.get("PID", 11, 1, 1),
            "address_line2": msg.get("PID", 11, 1, 2),
            "address_city": msg.get("PID", 11, 1, 3),
            "address_state": msg.get("PID", 11, 1, 4),
            "address_postal_code": msg.get("PID", 11, 1, 5),
        }
        limits = {"address_line1": 200, "address_line2": 200, "address_city": 100, "address_state": 64}
        limits["address_postal_code"] = 16
        for name, value in address.items():
            if len(value) > limits[name]:
                raise Hl7Error("PID-11", "an address part is too long")
        fields.update(address)
        country = msg.get("PID", 11, 1, 6).upper()
        if country:
            code = COUNTRIES.get(country, country if len(country) == 2 and country.isalpha() else "")
            if code:
                fields["address_country"] = code
            else:
                warnings.append(("PID-11", "the country is not an ISO 3166 code: left out"))
    for rep in msg.repetitions("PID", 13):
        use = msg.get("PID", 13, rep, 2).upper()
        equipment = msg.get("PID", 13, rep, 3).upper()
        if use == "NET" or equipment in ("INTERNET", "X.400"):
            email = msg.get("PID", 13, rep, 4)
            if email and "email" not in fields and len(email) <= 254 and "@" in email:
                fields["email"] = email
            continue
        number = _phone(msg, rep)
        if not number:
            continue
        target = "phone_mobile" if equipment == "CP" else "phone_home" if equipment in ("PH", "") else ""
        if not target or target in fields:
            continue
        normalized = _valid_phone(number)
        if normalized is None:
            warnings.append(("PID-13", "not a phone number: left out"))
            continue
        fields[target] = normalized
    language = msg.get("PID", 15, 1, 1)
    if language:
        tag = LANGUAGES.get(language.upper(), language.lower() if len(language) == 2 and language.isalpha() else "")
        if tag:
            fields["preferred_language"] = tag
        else:
            warnings.append(("PID-15", "not a language code we know: left out"))
    return MappedPatient(mrn=mrn, identifiers=identifiers, fields=fields, warnings=warnings)


@dataclass
class MappedAppointment:
    key: str
    starts_at: datetime | None
    ends_at: datetime | None
    status: str | None
    reason: str
    appointment_type: str | None
    telehealth: bool
    practitioner_id: str
    practitioner_npi: str
    practitioner_name: str
    location_id: str
    location_name: str


def appointment_key(msg: Message) -> str:
    """The sender's id of the appointment: SCH-2 (filler), else SCH-1 (placer)."""
    key = msg.get("SCH", 2, 1, 1) or msg.get("SCH", 1, 1, 1)
    if not key:
        raise Hl7Error("SCH-2", "no appointment id (SCH-1 or SCH-2)", code=REQUIRED_FIELD_MISSING)
    if len(key) > 64:
        raise Hl7Error("SCH-2", "the appointment id is longer than 64 characters")
    return key


def _when(msg: Message, zone: ZoneInfo) -> tuple[datetime | None, datetime | None, str]:
    """(start, end, the field the start came from): TQ1-7/8, SCH-11.4/5, AIS-4, AIP-6, AIL-6."""
    for segment, start_field, start_comp, end_field, end_comp in (
        ("TQ1", 7, 1, 8, 1),
        ("SCH", 11, 4, 11, 5),
        ("AIS", 4, 1, 0, 0),
        ("AIP", 6, 1, 0, 0),
        ("AIL", 6, 1, 0, 0),
    ):
        value = msg.get(segment, start_field, 1, start_comp)
        if not value:
            continue
        name = f"{segment}-{start_field}"
        start = parse_datetime(value, name, zone)
        end_value = msg.get(segment, end_field, 1, end_comp) if end_field else ""
        end = parse_datetime(end_value, f"{segment}-{end_field}", zone) if end_value else None
        return start, end, name
    return None, None, ""


def _minutes(value: str, units: str, field_name: str, units_field: str) -> int:
    try:
        amount = float(value)
    except ValueError:
        raise Hl7Error(field_name, "not a number") from None
    unit = units.upper()
    factor = {"": 1, "MIN": 1, "M": 1, "MINUTES": 1, "S": 1 / 60, "SEC": 1 / 60, "H": 60, "HR": 60, "HOURS": 60}.get(
        unit
    )
    if factor is None:
        raise Hl7Error(units_field, "not a unit of time we know")
    minutes = int(round(amount * factor))
    if not 1 <= minutes <= 24 * 60:
        raise Hl7Error(field_name, "the duration is not between 1 minute and 24 hours")
    return minutes


def map_appointment(msg: Message, *, zone: ZoneInfo, default_minutes: int, need_times: bool) -> MappedAppointment:
    """SCH (+TQ1, AIS, AIP, AIL) -> appointment values; times required for a booking or a move."""
    key = appointment_key(msg)
    start, end, start_field = _when(msg, zone)
    if start is None and need_times:
        raise Hl7Error("TQ1-7", "no start time (TQ1-7, SCH-11 or AIS-4)", code=REQUIRED_FIELD_MISSING)
    if start is not None and end is None:
        duration = ""
        duration_field = units_field = ""
        units = ""
        for segment, dur_field, unit_field in (("SCH", 9, 10), ("AIS", 7, 8), ("AIP", 8, 9), ("AIL", 8, 9)):
            duration = msg.get(segment, dur_field)
            if duration:
                duration_field, units_field = f"{segment}-{dur_field}", f"{segment}-{unit_field}"
                units = msg.get(segment, unit_field, 1, 1)
                break
        minutes = _minutes(duration, units, duration_field, units_field) if duration else default_minutes
        end = start + timedelta(minutes=minutes)
    if start is not None and end is not None and end <= start:
        raise Hl7Error("TQ1-8" if start_field == "TQ1-7" else start_field, "ends before it starts")
    status_code = msg.get("SCH", 25, 1, 1).upper().replace(" ", "")
    status = None
    if status_code:
        status = STATUSES.get(status_code)
        if status is None:
            raise Hl7Error("SCH-25", "not a filler status code of HL7 table 0278", code="103")
    reason = msg.get("SCH", 7, 1, 2) or msg.get("SCH", 7, 1, 1) or msg.get("SCH", 6, 1, 2)
    type_text = (msg.get("SCH", 8, 1, 1) or msg.get("SCH", 8, 1, 2)).upper().replace(" ", "").replace("-", "")
    appointment_type = APPOINTMENT_TYPES.get(type_text)
    telehealth = any(word in type_text for word in TELEHEALTH_WORDS)
    # AIP-3: the personnel resource (XCN: id^family^given^...^assigning authority (9)).
    practitioner_id = msg.get("AIP", 3, 1, 1)
    authority = msg.get("AIP", 3, 1, 9, 1).upper()
    npi = practitioner_id if (authority == "NPI" or len(practitioner_id) == 10) and practitioner_id.isdigit() else ""
    family, given, prefix = msg.get("AIP", 3, 1, 2, 1), msg.get("AIP", 3, 1, 3), msg.get("AIP", 3, 1, 6)
    name = " ".join(p for p in (prefix, given, family) if p)
    # AIL-3: the location (PL: point of care^room^bed^facility^...^description (9)).
    location_name = msg.get("AIL", 3, 1, 9) or msg.get("AIL", 3, 1, 4, 1) or msg.get("AIL", 3, 1, 1)
    location_id = msg.get("AIL", 3, 1, 1) or location_name
    return MappedAppointment(
        key=key,
        starts_at=start,
        ends_at=end,
        status=status,
        reason=reason[:2000],
        appointment_type=appointment_type,
        telehealth=telehealth,
        practitioner_id=(practitioner_id or name)[:64],
        practitioner_npi=npi,
        practitioner_name=name[:200],
        location_id=location_id[:64],
        location_name=location_name[:200],
    )
