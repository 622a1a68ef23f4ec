"""Writes on patient records: validated, atomic, audited (django-auditlog, same transaction).

Every service validates with `full_clean()` (field validators, check and unique constraints) before
saving, and raises ValidationError with nothing saved.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from healthcrm.crypto import normalize_phone
from healthcrm.models import Location
from integrations.telehealth import telehealth_join_url
from patients.models import (
    BLOOD_PRESSURE,
    DIASTOLIC,
    LOINC,
    RXNORM,
    SNOMED,
    SYSTOLIC,
    Allergy,
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Condition,
    Coverage,
    Medication,
    Observation,
    Patient,
    PatientIdentifier,
    Practitioner,
)

_PHONE_FIELDS = ("phone_mobile", "emergency_contact_phone")


def _clean_phone(value: object) -> str:
    return normalize_phone(str(value)) if value else ""


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
    **details: Any,
) -> Patient:
    """Create a patient in the current organization. Raises ValidationError (nothing saved).

    `details` are the other Patient fields (preferred name, address, preferences, emergency contact).
    """
    patient = Patient(
        mrn=mrn.strip(),
        given_name=given_name.strip(),
        family_name=family_name.strip(),
        date_of_birth=date_of_birth,
        sex=sex,
        phone_mobile=_clean_phone(phone_mobile),
        email=email.strip().lower(),
    )
    _apply(patient, details)
    patient.full_clean()
    patient.save()
    return patient


def _apply(patient: Patient, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if name in _PHONE_FIELDS:
            value = _clean_phone(value)
        elif name == "email" and value:
            value = str(value).strip().lower()
        elif isinstance(value, str):
            value = value.strip()
        setattr(patient, name, value)


@transaction.atomic
def patient_update(*, patient: Patient, **changes: Any) -> Patient:
    """Apply changes to a patient. Raises ValidationError (nothing saved)."""
    _apply(patient, changes)
    patient.full_clean()
    patient.save()
    return patient


@transaction.atomic
def patient_identifier_add(*, patient: Patient, system: str, value: str) -> PatientIdentifier:
    """Record an identifier another system gives the patient (unique per system in the organization)."""
    identifier = PatientIdentifier(patient=patient, system=system.strip(), value=value.strip())
    identifier.full_clean()
    identifier.save()
    return identifier


@transaction.atomic
def coverage_add(
    *,
    patient: Patient,
    payer_name: str,
    member_id: str,
    valid_from: date,
    valid_to: date | None = None,
    group_number: str = "",
    is_primary: bool = True,
) -> Coverage:
    """Record an insurance coverage."""
    coverage = Coverage(
        patient=patient,
        payer_name=payer_name.strip(),
        member_id=member_id.strip(),
        group_number=group_number.strip(),
        valid_from=valid_from,
        valid_to=valid_to,
        is_primary=is_primary,
    )
    coverage.full_clean()
    coverage.save()
    return coverage


@transaction.atomic
def condition_add(
    *,
    patient: Patient,
    code: str,
    display: str,
    code_system: str = SNOMED,
    onset_date: date | None = None,
    clinical_status: str = "active",
) -> Condition:
    """Add a problem to the patient's list."""
    condition = Condition(
        patient=patient,
        code_system=code_system.strip(),
        code=code.strip(),
        display=display.strip(),
        onset_date=onset_date,
        clinical_status=clinical_status,
    )
    condition.full_clean()
    condition.save()
    return condition


@transaction.atomic
def medication_add(
    *,
    patient: Patient,
    name: str,
    code: str = "",
    code_system: str = RXNORM,
    dose_text: str = "",
    schedule_text: str = "",
    start_date: date | None = None,
    end_date: date | None = None,
    refill_due: date | None = None,
    status: str = "active",
) -> Medication:
    """Add a medication to the patient's list."""
    medication = Medication(
        patient=patient,
        name=name.strip(),
        code=code.strip(),
        code_system=code_system,
        dose_text=dose_text.strip(),
        schedule_text=schedule_text.strip(),
        start_date=start_date,
        end_date=end_date,
        refill_due=refill_due,
        status=status,
    )
    medication.full_clean()
    medication.save()
    return medication


@transaction.atomic
def allergy_add(
    *,
    patient: Patient,
    substance_display: str,
    substance_code: str = "",
    substance_system: str = SNOMED,
    reaction: str = "",
    criticality: str = "low",
) -> Allergy:
    """Record an allergy or intolerance."""
    allergy = Allergy(
        patient=patient,
        substance_display=substance_display.strip(),
        substance_code=substance_code.strip(),
        substance_system=substance_system,
        reaction=reaction.strip(),
        criticality=criticality,
    )
    allergy.full_clean()
    allergy.save()
    return allergy


# LOINC codes the observation form offers: display, UCUM unit, category, default reference range.
OBSERVATION_PRESETS: dict[str, tuple[str, str, str, Decimal | None, Decimal | None]] = {
    BLOOD_PRESSURE: ("Blood pressure panel", "mm[Hg]", "vital-signs", None, None),
    "29463-7": ("Body weight", "kg", "vital-signs", None, None),
    "8867-4": ("Heart rate", "/min", "vital-signs", Decimal("60"), Decimal("100")),
    "4548-4": ("Hemoglobin A1c/Hemoglobin.total in Blood", "%", "laboratory", Decimal("4.0"), Decimal("5.6")),
    "2339-0": ("Glucose [Mass/volume] in Blood", "mg/dL", "laboratory", Decimal("70"), Decimal("99")),
}
# Adult reference ranges of the blood pressure components (mm[Hg]).
BP_RANGES = {SYSTOLIC: (Decimal("90"), Decimal("139")), DIASTOLIC: (Decimal("60"), Decimal("89"))}


def blood_pressure_components(systolic: Decimal, diastolic: Decimal) -> list[dict[str, str]]:
    """The FHIR-style components of a blood pressure observation, with their reference ranges."""
    return [
        {
            "code": SYSTOLIC,
            "display": "Systolic blood pressure",
            "value": str(systolic),
            "unit": "mm[Hg]",
            "low": str(BP_RANGES[SYSTOLIC][0]),
            "high": str(BP_RANGES[SYSTOLIC][1]),
        },
        {
            "code": DIASTOLIC,
            "display": "Diastolic blood pressure",
            "value": str(diastolic),
            "unit": "mm[Hg]",
            "low": str(BP_RANGES[DIASTOLIC][0]),
            "high": str(BP_RANGES[DIASTOLIC][1]),
        },
    ]


@transaction.atomic
def observation_record(
    *,
    patient: Patient,
    code: str,
    effective_at: datetime,
    value_quantity: Decimal | None = None,
    value_text: str = "",
    unit: str | None = None,
    display: str | None = None,
    category: str | None = None,
    reference_low: Decimal | None = None,
    reference_high: Decimal | None = None,
    systolic: Decimal | None = None,
    diastolic: Decimal | None = None,
) -> Observation:
    """Record a measurement; the abnormal flag is computed from the reference range.

    Known LOINC codes (OBSERVATION_PRESETS) fill in display, unit, category and range; blood
    pressure (85354-9) takes `systolic` and `diastolic` and is stored as one observation with two
    components.
    """
    preset = OBSERVATION_PRESETS.get(code)
    if preset:
        display = display or preset[0]
        unit = unit if unit is not None else preset[1]
        category = category or preset[2]
        reference_low = reference_low if reference_low is not None else preset[3]
        reference_high = reference_high if reference_high is not None else preset[4]
    components: list[dict[str, str]] = []
    if code == BLOOD_PRESSURE and systolic is not None and diastolic is not None:
        components = blood_pressure_components(systolic, diastolic)
        value_quantity = None
    observation = Observation(
        patient=patient,
        code_system=LOINC,
        code=code.strip(),
        display=(display or "").strip(),
        category=category or "",
        value_quantity=value_quantity,
        value_text=value_text.strip(),
        unit=unit or "",
        reference_low=reference_low,
        reference_high=reference_high,
        components=components,
        effective_at=effective_at,
    )
    observation.full_clean()
    observation.save()
    return observation


# -- Appointments --------------------------------------------------------------------------------

DOUBLE_BOOKED = "This practitioner already has an appointment at that time."


def _save(appointment: Appointment) -> Appointment:
    """Validate (the double-booking check included) and save; the database settles races."""
    appointment.full_clean()
    try:
        with transaction.atomic():
            appointment.save()
    except IntegrityError as exc:
        if "appointment_no_double_booking" in str(exc):
            raise ValidationError({"starts_at": DOUBLE_BOOKED}) from None
        raise
    return appointment


@transaction.atomic
def appointment_book(
    *,
    patient: Patient,
    practitioner: Practitioner,
    starts_at: datetime,
    ends_at: datetime,
    kind: str = AppointmentKind.IN_PERSON,
    appointment_type: str = "follow_up",
    location: Location | None = None,
    reason: str = "",
    actor: Any = None,
) -> Appointment:
    """Book an appointment. Raises ValidationError (nothing saved) on bad times or double booking."""
    appointment = Appointment(
        patient=patient,
        practitioner=practitioner,
        location=location,
        kind=kind,
        appointment_type=appointment_type,
        reason=reason.strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        status=AppointmentStatus.BOOKED,
        status_changed_at=timezone.now(),
        status_changed_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    if kind == AppointmentKind.TELEHEALTH:
        appointment.telehealth_url = telehealth_join_url()
    return _save(appointment)


@transaction.atomic
def appointment_reschedule(
    *,
    appointment: Appointment,
    starts_at: datetime,
    ends_at: datetime,
    practitioner: Practitioner | None = None,
    actor: Any = None,
) -> Appointment:
    """Move an appointment (and optionally to another practitioner); it is booked again, unconfirmed."""
    if appointment.is_final:
        raise ValidationError(f"A {appointment.get_status_display().lower()} appointment cannot be rescheduled.")
    appointment.starts_at = starts_at
    appointment.ends_at = ends_at
    if practitioner is not None:
        appointment.practitioner = practitioner
    if appointment.status == AppointmentStatus.CONFIRMED:
        appointment.status = AppointmentStatus.BOOKED
    appointment.status_changed_at = timezone.now()
    appointment.status_changed_by = actor if getattr(actor, "is_authenticated", False) else None
    return _save(appointment)


@transaction.atomic
def appointment_set_status(*, appointment: Appointment, status: str, actor: Any = None) -> Appointment:
    """Move an appointment along its lifecycle; refuses transitions that make no sense."""
    if status == appointment.status:
        return appointment  # idempotent: a replayed confirmation changes nothing
    if not appointment.can_become(status):
        raise ValidationError(
            f"An appointment that is {appointment.get_status_display().lower()} cannot become "
            f"{AppointmentStatus(status).label.lower()}."
        )
    appointment.status = status
    appointment.status_changed_at = timezone.now()
    appointment.status_changed_by = actor if getattr(actor, "is_authenticated", False) else None
    appointment.full_clean()
    appointment.save(update_fields=["status", "status_changed_at", "status_changed_by", "updated_at"])
    return appointment


def appointment_confirm(*, appointment: Appointment, actor: Any = None) -> Appointment:
    return appointment_set_status(appointment=appointment, status=AppointmentStatus.CONFIRMED, actor=actor)


def appointment_cancel(*, appointment: Appointment, actor: Any = None) -> Appointment:
    return appointment_set_status(appointment=appointment, status=AppointmentStatus.CANCELLED, actor=actor)
