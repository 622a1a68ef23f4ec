"""Message templates: `{{ variable }}` substitution, the lint, and the SMS segment counter.

Templates are not Django templates: a clinic admin writes them, so they get a fixed list of
variables and nothing else (no attribute lookups, no filters, no tags).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

VARIABLE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")

# What a template may use. SMS carry the minimum: first name, clinic, time, place, links.
ALLOWED_VARIABLES: dict[str, str] = {
    "first_name": "The patient's first (or preferred) name",
    "clinic_name": "The organization's name",
    "clinic_phone": "The clinic's contact phone",
    "appointment_time": "Appointment date and time in the patient's time zone",
    "appointment_date": "Appointment date in the patient's time zone",
    "location": "The appointment's location name",
    "telehealth_link": "The telehealth join link (telehealth appointments)",
    "confirm_link": "Signed link to confirm the appointment",
    "cancel_link": "Signed link to cancel the appointment",
    "unsubscribe_link": "Signed link to stop these messages",
    "survey_link": "Signed link to the satisfaction survey of the visit (survey messages)",
    "portal_link": "Where to see details after signing in",
    "slot_link": "Signed link to take a freed slot offered from the waitlist (waitlist offers)",
    "education_link": "Signed link to the education page sent (education messages)",
    "questionnaire_link": "Signed link to the questionnaire's form (questionnaire messages)",
}

# Refused in SMS whatever the spelling: what a lock screen must never show.
SENSITIVE_VARIABLES = frozenset(
    {
        "diagnosis",
        "diagnoses",
        "condition",
        "conditions",
        "problem",
        "medication",
        "medications",
        "medication_name",
        "drug",
        "dose",
        "result",
        "results",
        "lab_result",
        "lab_value",
        "observation",
        "value",
        "date_of_birth",
        "dob",
        "birth_date",
        "birthdate",
        "mrn",
        "ssn",
        "last_name",
        "family_name",
        "reason",
        "notes",
        "procedure",
    }
)


def variables_in(text: str) -> list[str]:
    return [m.group(1).lower() for m in VARIABLE.finditer(text or "")]


def lint(*, body: str, channel: str, subject: str = "") -> list[str]:
    """Problems that make a template unusable (empty list: fine)."""
    problems = []
    used = variables_in(body) + variables_in(subject)
    for name in dict.fromkeys(used):
        if name in SENSITIVE_VARIABLES or any(part in SENSITIVE_VARIABLES for part in name.split("_")):
            if channel == "sms":
                problems.append(
                    f"SMS may not carry {{{{ {name} }}}}: text messages carry the minimum (no clinical data)."
                )
            else:
                problems.append(f"Messages may not carry {{{{ {name} }}}}: patients read the details after signing in.")
        elif name not in ALLOWED_VARIABLES:
            problems.append(f"Unknown variable {{{{ {name} }}}}: use one of {', '.join(ALLOWED_VARIABLES)}.")
    if not (body or "").strip():
        problems.append("The message is empty.")
    return problems


def render(text: str, context: Mapping[str, object]) -> str:
    """Substitute variables; a missing value becomes empty (the lint refused unknown names)."""
    return VARIABLE.sub(lambda m: str(context.get(m.group(1).lower(), "") or ""), text or "")


# -- SMS segments --------------------------------------------------------------------------------

# GSM 03.38 basic character set, and the extension table (each costs two septets).
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SegmentCount:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int
    non_gsm: tuple[str, ...] = ()


def count_segments(text: str) -> SegmentCount:
    """How many SMS segments a text costs: 160/153 GSM-7 septets, or 70/67 UCS-2 units."""
    non_gsm = tuple(dict.fromkeys(ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENDED))
    if not non_gsm:
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # emoji outside the BMP take two units
        single, multi, encoding = 70, 67, "UCS-2"
    if units == 0:
        return SegmentCount(encoding, 0, 0, single, non_gsm)
    if units <= single:
        return SegmentCount(encoding, units, 1, single, non_gsm)
    return SegmentCount(encoding, units, -(-units // multi), multi, non_gsm)
