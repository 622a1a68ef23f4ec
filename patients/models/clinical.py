"""The clinical summary: problems, medications, allergies, observations, immunizations.

What is encrypted, and why (every row here is PHI in the HIPAA sense, being about one patient's
health; the question is which columns must be unreadable in the database too):

- **Encrypted**: free text and anything that identifies or describes this person in words:
  condition display text and onset date (a date tied to a person is a HIPAA identifier),
  medication name, dose and schedule as written, allergy substance text and reaction, observation
  text values, vaccine lot numbers.
- **Plain**: standard codes (SNOMED, ICD-10, RxNorm, LOINC, CVX, UCUM), numeric observation values
  and their reference ranges, status fields and the dates the application must query (refill due,
  effective time, occurrence). Encrypting them would break what they are for: "latest HbA1c",
  "refills due this week", cohort counts and averages in analytics, all computed in SQL. A code or
  a number is not identifying without the patient row, and it can only be reached through it: the
  row carries the organization (tenant manager + row-level security), the patient's name, MRN,
  date of birth and contacts are encrypted, and the audit log redacts every encrypted column.
  If a deployment must encrypt these too, analytics would need a separate de-identified store.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from healthcrm.crypto import EncryptedCharField, EncryptedDateField, EncryptedTextField
from healthcrm.models import TenantModel
from patients.models.patient import Patient

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"

BLOOD_PRESSURE = "85354-9"
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"


class ConditionStatus(models.TextChoices):  # FHIR condition-clinical
    ACTIVE = "active", "Active"
    RECURRENCE = "recurrence", "Recurrence"
    RELAPSE = "relapse", "Relapse"
    INACTIVE = "inactive", "Inactive"
    REMISSION = "remission", "Remission"
    RESOLVED = "resolved", "Resolved"


class MedicationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped"


class Criticality(models.TextChoices):  # FHIR allergy-intolerance-criticality
    LOW = "low", "Low"
    HIGH = "high", "High"
    UNABLE_TO_ASSESS = "unable-to-assess", "Unable to assess"


class ObservationCategory(models.TextChoices):
    VITAL_SIGNS = "vital-signs", "Vital signs"
    LABORATORY = "laboratory", "Laboratory"
    SURVEY = "survey", "Survey"  # questionnaire scores (PHQ-9, GAD-7 totals)


class AbnormalFlag(models.TextChoices):  # HL7 v3 ObservationInterpretation, the three we compute
    LOW = "L", "Low"
    HIGH = "H", "High"
    NORMAL = "N", "Normal"


class ImmunizationStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    ENTERED_IN_ERROR = "entered-in-error", "Entered in error"
    NOT_DONE = "not-done", "Not done"


class ClinicalRecord(TenantModel):
    """Base of the summary models. Each has a `patient` (CASCADE: they are parts of the record)."""

    class Meta:
        abstract = True

    def __str__(self) -> str:
        # Never PHI: django-auditlog stores this string as object_repr.
        return f"{str(self._meta.verbose_name).capitalize()} #{self.pk}"


class Condition(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="conditions")
    code_system = models.CharField(max_length=255, default=SNOMED)
    code = models.CharField(max_length=32)
    display = EncryptedCharField(max_length=255)
    onset_date = EncryptedDateField(null=True, blank=True)
    clinical_status = models.CharField(max_length=16, choices=ConditionStatus.choices, default=ConditionStatus.ACTIVE)

    class Meta:
        ordering = ["clinical_status", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(clinical_status__in=ConditionStatus.values), name="condition_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "code_system", "code"], name="condition_org_code"),
            # What changed since the last analytics refresh (analytics.population.changed_patient_ids).
            models.Index(fields=["organization", "updated_at"], name="condition_org_updated"),
        ]


class Medication(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="medications")
    code_system = models.CharField(max_length=255, default=RXNORM)
    code = models.CharField(max_length=32, blank=True)
    name = EncryptedCharField(max_length=255)
    dose_text = EncryptedCharField(max_length=255, blank=True)
    schedule_text = EncryptedCharField(max_length=255, blank=True)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    refill_due = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=MedicationStatus.choices, default=MedicationStatus.ACTIVE)

    class Meta:
        ordering = ["status", "refill_due", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=MedicationStatus.values), name="medication_status_valid"),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(start_date__isnull=True) | Q(end_date__gte=F("start_date")),
                name="medication_dates_ordered",
                violation_error_message="The end date cannot be before the start date.",
            ),
        ]
        indexes = [models.Index(fields=["organization", "status", "refill_due"], name="medication_org_refill")]


class Allergy(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="allergies")
    substance_system = models.CharField(max_length=255, default=SNOMED, blank=True)
    substance_code = models.CharField(max_length=32, blank=True)
    substance_display = EncryptedCharField(max_length=255)
    reaction = EncryptedTextField(max_length=2000, blank=True)
    criticality = models.CharField(max_length=16, choices=Criticality.choices, default=Criticality.LOW)

    class Meta:
        verbose_name_plural = "allergies"
        ordering = ["-criticality", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(criticality__in=Criticality.values), name="allergy_criticality_valid"),
        ]


def abnormal_flag(value: Decimal | None, low: Decimal | None, high: Decimal | None) -> str:
    """'L' below the range, 'H' above it, 'N' within it, '' when there is nothing to compare."""
    if value is None or (low is None and high is None):
        return ""
    if low is not None and value < low:
        return AbnormalFlag.LOW
    if high is not None and value > high:
        return AbnormalFlag.HIGH
    return AbnormalFlag.NORMAL


class Observation(ClinicalRecord):
    """A measurement (FHIR Observation). Blood pressure is one observation (LOINC 85354-9) whose
    `components` hold systolic (8480-6) and diastolic (8462-4) values, each with its own range:
    [{"code": "8480-6", "display": "Systolic", "value": "128", "unit": "mm[Hg]", "low": "90", "high": "139"}].
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="observations")
    code_system = models.CharField(max_length=255, default=LOINC)
    code = models.CharField(max_length=32)
    display = models.CharField(max_length=255)
    category = models.CharField(max_length=16, choices=ObservationCategory.choices)
    value_quantity = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    value_text = EncryptedTextField(max_length=10_000, blank=True)
    unit = models.CharField(max_length=32, blank=True, help_text="UCUM, e.g. kg, %, mm[Hg].")
    reference_low = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    reference_high = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    components = models.JSONField(default=list, blank=True)
    effective_at = models.DateTimeField()
    abnormal_flag = models.CharField(max_length=1, choices=AbnormalFlag.choices, blank=True, editable=False)

    class Meta:
        ordering = ["-effective_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(category__in=ObservationCategory.values), name="observation_category_valid"
            ),
            models.CheckConstraint(
                condition=Q(abnormal_flag__in=["", *AbnormalFlag.values]), name="observation_flag_valid"
            ),
            models.CheckConstraint(
                condition=Q(reference_low__isnull=True)
                | Q(reference_high__isnull=True)
                | Q(reference_high__gte=F("reference_low")),
                name="observation_range_ordered",
                violation_error_message="The reference range's high end cannot be below its low end.",
            ),
        ]
        indexes = [
            models.Index(fields=["patient", "code", "-effective_at"], name="observation_latest"),
            # What changed since the last analytics refresh (analytics.population.changed_patient_ids).
            models.Index(fields=["organization", "updated_at"], name="observation_org_updated"),
        ]

    def compute_abnormal_flag(self) -> str:
        if self.components:
            flags = [
                abnormal_flag(_dec(c.get("value")), _dec(c.get("low")), _dec(c.get("high"))) for c in self.components
            ]
            for flag in (AbnormalFlag.HIGH, AbnormalFlag.LOW, AbnormalFlag.NORMAL):
                if flag in flags:
                    return flag
            return ""
        return abnormal_flag(self.value_quantity, self.reference_low, self.reference_high)

    def component(self, code: str) -> dict[str, Any] | None:
        return next((c for c in self.components if c.get("code") == code), None)

    @property
    def value_display(self) -> str:
        """The value as shown: '128/82 mm[Hg]' for blood pressure, '7.2 %' for a quantity."""
        if self.code == BLOOD_PRESSURE:
            systolic, diastolic = self.component(SYSTOLIC), self.component(DIASTOLIC)
            if systolic and diastolic:
                return f"{_plain(systolic['value'])}/{_plain(diastolic['value'])} {self.unit}".strip()
        if self.value_quantity is not None:
            unit = "" if self.unit.startswith("{") else self.unit  # a UCUM annotation ("{score}") reads as none
            return f"{_plain(self.value_quantity)} {unit}".strip()
        return self.value_text

    def clean(self) -> None:
        has_value = self.value_quantity is not None or bool(self.value_text) or bool(self.components)
        if not has_value:
            raise ValidationError("Enter a value.", code="no_value")
        for item in self.components:
            if not isinstance(item, dict) or not item.get("code") or _dec(item.get("value")) is None:
                raise ValidationError("Each component needs a code and a numeric value.", code="bad_component")
        self.abnormal_flag = self.compute_abnormal_flag()

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.abnormal_flag = self.compute_abnormal_flag()
        super().save(*args, **kwargs)


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _plain(value: Any) -> str:
    """A decimal without trailing zeros: 7.2000 -> 7.2, 128.0000 -> 128."""
    number = _dec(value)
    if number is None:
        return str(value)
    return format(number.normalize(), "f")


class Immunization(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="immunizations")
    vaccine_system = models.CharField(max_length=255, default=CVX)
    vaccine_code = models.CharField("CVX code", max_length=8)
    display = models.CharField(max_length=255)
    occurrence_date = models.DateField()
    lot_number = EncryptedCharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=ImmunizationStatus.choices, default=ImmunizationStatus.COMPLETED)

    class Meta:
        ordering = ["-occurrence_date", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ImmunizationStatus.values), name="immunization_status_valid"),
        ]
