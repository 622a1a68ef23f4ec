"""Writes on patient records: validated, atomic, audited (django-auditlog, same transaction).

Every service validates with `full_clean()` (field validators, check and unique constraints) before
saving, and raises ValidationError with nothing saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from auditlog.diff import model_instance_diff
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models, transaction

from healthcrm.crypto import is_blind_index, normalize_phone
from patients.merge import patient_merge  # noqa: F401 - the merge is a write of patients like the others
from patients.models import (
    BLOOD_PRESSURE,
    DIASTOLIC,
    LOINC,
    RXNORM,
    SNOMED,
    SYSTOLIC,
    Allergy,
    Channel,
    Condition,
    Coverage,
    Medication,
    Observation,
    Patient,
    PatientIdentifier,
)

# Scheduling lives in patients/scheduling/; the appointment writes other apps call stay importable here.
from patients.scheduling.services import (  # noqa: F401
    appointment_book,
    appointment_cancel,
    appointment_confirm,
    appointment_reschedule,
    appointment_set_status,
)
from patients.signals import patient_created

M = TypeVar("M", bound=models.Model)

_PHONE_FIELDS = ("phone_mobile", "phone_home", "emergency_contact_phone")


def _clean_phone(value: object) -> str:
    return normalize_phone(str(value)) if value else ""


def default_channel(*, phone_mobile: str, email: str, sms_consent: bool, email_consent: bool) -> str:
    """The preferred channel of a new patient: text messages when there is a mobile number and the
    patient agreed to texts, else email when there is an address and they agreed to email, else
    no outreach."""
    if phone_mobile and sms_consent:
        return Channel.SMS
    if email and email_consent:
        return Channel.EMAIL
    return Channel.NONE


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
    sms_consent: bool = False,
    email_consent: bool = False,
    **details: Any,
) -> Patient:
    """Create a patient in the current organization. Raises ValidationError (nothing saved).

    `details` are the other Patient fields (preferred name, address, preferences, emergency contact).
    `sms_consent` / `email_consent`: what the patient agreed to at intake; they choose the preferred
    channel when none is given (`default_channel`) and are announced with `patient_created` (outreach
    records them as consents, in this transaction).
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
    details.setdefault(
        "preferred_channel",
        default_channel(
            phone_mobile=patient.phone_mobile, email=patient.email, sms_consent=sms_consent, email_consent=email_consent
        ),
    )
    _apply(patient, details)
    patient.full_clean()
    patient.save()
    consents = tuple(channel for channel, given in (("sms", sms_consent), ("email", email_consent)) if given)
    patient_created.send(
        sender=Patient, organization_id=patient.organization_id, patient_id=patient.pk, consents=consents
    )
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
def patient_access_flag_set(*, patient: Patient, flag: str) -> Patient:
    """Flag a record as VIP or employee (or clear the flag): every opening of a flagged record
    raises an anomaly alert. Audited through the change log like any change of the patient."""
    patient.access_flag = flag
    patient.full_clean()
    patient.save(update_fields=["access_flag", "updated_at"])
    return patient


SEARCH_INDEX_BATCH = 2000


@transaction.atomic
def patient_search_indexes_rebuild(*, batch_size: int = SEARCH_INDEX_BATCH) -> int:
    """Recompute every blind index of the current organization's patients (after a change of
    BLIND_INDEX_KEY or of how values are normalized; rows written by raw SQL); returns how many
    patients were rewritten. The name-search lookup rows follow by trigger.

    `bulk_update`: no audit entries (the hashes are derived values, the record is unchanged)."""
    fields = [f for f in Patient._meta.concrete_fields if is_blind_index(f)]
    names = [f.name for f in fields]
    changed, batch = 0, []
    for patient in Patient.objects.order_by("pk").iterator(chunk_size=batch_size):
        before = [getattr(patient, name) for name in names]
        patient.refresh_blind_indexes()
        if [getattr(patient, name) for name in names] != before:
            batch.append(patient)
        if len(batch) >= batch_size:
            changed += Patient.objects.bulk_update(batch, names)
            batch = []
    if batch:
        changed += Patient.objects.bulk_update(batch, names)
    return changed


@transaction.atomic
def patient_identifier_add(*, patient: Patient, system: str, value: str) -> PatientIdentifier:
    """Record an identifier another system gives the patient (unique per system in the organization)."""
    identifier = PatientIdentifier(patient=patient, system=system.strip(), value=value.strip())
    identifier.full_clean()
    identifier.save()
    return identifier


@transaction.atomic
def patient_identifier_update(*, identifier: PatientIdentifier, system: str, value: str) -> PatientIdentifier:
    """Correct an identifier (still unique per system in the organization). Raises ValidationError."""
    identifier.system = system.strip()
    identifier.value = value.strip()  # type: ignore[assignment]  # the descriptor stores text
    identifier.full_clean()
    identifier.save()
    return identifier


@transaction.atomic
def patient_identifier_remove(*, identifier: PatientIdentifier) -> None:
    """Remove an identifier from the record (django-auditlog keeps the deletion, values redacted)."""
    identifier.delete()


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


_COVERAGE_FIELDS = ("payer_name", "member_id", "group_number", "valid_from", "valid_to", "is_primary")


@transaction.atomic
def coverage_update(*, coverage: Coverage, **changes: Any) -> Coverage:
    """Change an insurance coverage (payer, member and group numbers, dates, primary). Raises
    ValidationError, nothing saved."""
    for name, value in changes.items():
        if name not in _COVERAGE_FIELDS:
            raise TypeError(f"coverage_update() got an unexpected field {name!r}")
        setattr(coverage, name, value.strip() if isinstance(value, str) else value)
    coverage.full_clean()
    coverage.save()
    return coverage


@transaction.atomic
def coverage_remove(*, coverage: Coverage) -> None:
    """Remove a coverage from the record (django-auditlog keeps the deletion, values redacted)."""
    coverage.delete()


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


# -- Bulk writes of record rows (imports) -------------------------------------------------------


class ClinicalRowInvalid(Exception):  # noqa: N818 - names the refused row, like ValidationError
    """A row `clinical_rows_create` refused: its position in `rows` and the ValidationError.

    The message holds the position only: validation messages can echo values (PHI).
    """

    def __init__(self, *, index: int, error: ValidationError) -> None:
        super().__init__(f"row {index} is invalid")
        self.index = index
        self.error = error


def _require_record_row(model: type[models.Model]) -> None:
    try:
        related = model._meta.get_field("patient").related_model
    except FieldDoesNotExist:
        related = None
    if related is not Patient:
        raise TypeError(f"{model.__name__} is not a row of a patient's record")


@transaction.atomic
def clinical_rows_create(*, rows: Sequence[models.Model], actor: Any = None) -> list[models.Model]:
    """Insert many rows of patients' records at once (an import's conditions, observations, ...).

    Each row is validated with `full_clean()`, foreign keys and constraints excepted (each is a
    query per row; the caller resolved the ids and the database enforces both), and the first
    refused row raises ClinicalRowInvalid before anything of this call is written. Then one
    multi-row INSERT per model, and the audit entries django-auditlog would have written one by one
    (it writes none for bulk_create), encrypted fields redacted, in the same transaction. Returns
    the rows, with their primary keys, in the order given.
    """
    by_model: dict[type[models.Model], list[models.Model]] = {}
    for index, row in enumerate(rows):
        model = type(row)
        if model not in by_model:
            _require_record_row(model)
            by_model[model] = []
        exclude = [f.name for f in row._meta.concrete_fields if f.is_relation]
        try:
            row.full_clean(exclude=exclude, validate_constraints=False)
        except ValidationError as exc:
            raise ClinicalRowInvalid(index=index, error=exc) from None
        by_model[model].append(row)
    actor = actor if getattr(actor, "is_authenticated", False) else None
    for model, objs in by_model.items():
        cast(Any, model).objects.bulk_create(objs, batch_size=1000)
        _audit_created(model, objs, actor)
    return list(rows)


def _audit_created(model: type[models.Model], objs: list[models.Model], actor: Any) -> None:
    if not auditlog.contains(model):
        return
    content_type = ContentType.objects.get_for_model(model)
    entries = [
        LogEntry(
            content_type=content_type,
            object_pk=str(obj.pk),
            object_id=obj.pk,
            object_repr=str(obj),
            action=LogEntry.Action.CREATE,
            changes=model_instance_diff(None, obj) or {},
            actor=actor,
            additional_data=cast(Any, obj).get_additional_data(),
        )
        for obj in objs
    ]
    LogEntry.objects.bulk_create(entries, batch_size=1000)


@transaction.atomic
def clinical_row_create(*, row: M) -> M:
    """Insert one row of a patient's record built from another system's data (a device reading).

    Validated with `full_clean()` (constraints included); raises ValidationError, nothing saved.
    Saved one by one, so django-auditlog writes its CREATE entry (redacted) itself.
    """
    _require_record_row(type(row))
    row.full_clean()
    row.save()
    return row


@transaction.atomic
def clinical_row_update(*, row: models.Model, **changes: Any) -> models.Model:
    """Apply changes to one row of a patient's record (an import's changed resource).

    Validated with `full_clean()` (constraints included); raises ValidationError, nothing saved.
    Saved one by one, so django-auditlog writes its UPDATE entry (redacted) itself.
    """
    _require_record_row(type(row))
    for name, value in changes.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    return row
