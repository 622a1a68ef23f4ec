"""Writes on patient records: validated, atomic, audited (django-auditlog, same transaction)."""

from __future__ import annotations

from datetime import date

from django.db import transaction

from healthcrm.crypto import normalize_phone
from patients.models import Patient


@transaction.atomic
def patient_create(
    *,
    mrn: str,
    given_name: str,
    family_name: str,
    date_of_birth: date,
    sex: str = "unknown",
    phone_mobile: str = "",
    email: str = "",
) -> Patient:
    """Create a patient in the current organization. Raises ValidationError (nothing saved)."""
    patient = Patient(
        mrn=mrn.strip(),
        given_name=given_name.strip(),
        family_name=family_name.strip(),
        date_of_birth=date_of_birth,
        sex=sex,
        phone_mobile=normalize_phone(phone_mobile) if phone_mobile else "",
        email=email.strip().lower(),
    )
    patient.full_clean()
    patient.save()
    return patient


@transaction.atomic
def patient_update(*, patient: Patient, **changes: object) -> Patient:
    """Apply changes to a patient. Raises ValidationError (nothing saved)."""
    for name, value in changes.items():
        if name == "phone_mobile" and value:
            value = normalize_phone(str(value))
        setattr(patient, name, value)
    patient.full_clean()
    patient.save()
    return patient
