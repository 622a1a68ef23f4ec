"""Reads on patient records, always within the current organization."""

from __future__ import annotations

import re
from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from healthcrm.guards import get_object_for_user
from healthcrm.models import blind_q
from patients.models import Patient

_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y")


def _as_date(text: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def search_kind(query: str) -> str:
    """What a search box entry looks like: 'date', 'email', 'phone' or 'text' (MRN or name)."""
    text = query.strip()
    if _as_date(text):
        return "date"
    if "@" in text:
        return "email"
    if len(re.sub(r"\D", "", text)) >= 7 and re.fullmatch(r"[\d\s()+.\-]+", text):
        return "phone"
    return "text"


def patient_list(*, query: str = "") -> QuerySet[Patient]:
    """Active patients of the current organization, optionally matched exactly by a search entry.

    Every match goes through blind indexes: MRN, phone (any format, as E.164), email, date of
    birth, or a given or family name; nothing is decrypted to search.
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
            return patients.blind_match(phone_mobile=text)
        except ValidationError:
            pass  # digits that are no phone number may still be an MRN
    return patients.filter(
        blind_q(Patient, mrn=text) | blind_q(Patient, given_name=text) | blind_q(Patient, family_name=text)
    )


def get_patient_for_user(request: HttpRequest, pk: object, perm: str = "patients.view_patient") -> Patient:
    """The guarded fetch for patients: 404 across organizations, 403 without `perm`."""
    return get_object_for_user(request, Patient.objects.all(), pk, perm)
