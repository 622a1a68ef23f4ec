"""The patient record, its external identifiers and its insurance coverage.

Every PHI value is encrypted; searchable ones carry a blind index beside them. Preferences that say
nothing about a person's health or identity on their own (language, channel, contact window, time
zone, country) are plain columns, so outreach can filter on them.
"""

from __future__ import annotations

import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from healthcrm.crypto import (
    BlindIndexField,
    BlindNameIndexField,
    EncryptedCharField,
    EncryptedDateField,
    EncryptedEmailField,
    validate_phone,
)
from healthcrm.models import TenantModel, validate_timezone

# BCP-47 as used in practice: a 2-3 letter language, optional script, region or variant subtags.
_BCP47 = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{4})?(-([A-Z]{2}|\d{3}))?(-[A-Za-z0-9]{5,8})*$")


def validate_language_tag(value: str) -> None:
    if value and not _BCP47.match(value):
        raise ValidationError("Enter a BCP-47 language tag such as en, es or pt-BR.", code="invalid_language")


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class AccessFlag(models.TextChoices):
    """Records whose every opening the compliance officer wants to know about (anomaly alerts)."""

    NONE = "", "None"
    VIP = "vip", "VIP (public figure)"
    EMPLOYEE = "employee", "Employee of the organization"


class Channel(models.TextChoices):
    SMS = "sms", "Text message"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone call"
    NONE = "none", "No outreach"


class Patient(TenantModel):
    mrn = EncryptedCharField("MRN", max_length=64)
    mrn_bidx = BlindIndexField(source="mrn", kind="identifier")
    # The number after the MRN's letters, unpadded ("NS-000123" is found by "123" and "000123").
    mrn_digits_bidx = BlindIndexField(source="mrn", kind="identifier_digits")
    given_name = EncryptedCharField(max_length=100)
    given_name_bidx = BlindIndexField(source="given_name", kind="name")
    family_name = EncryptedCharField(max_length=100)
    family_name_bidx = BlindIndexField(source="family_name", kind="name")
    preferred_name = EncryptedCharField(max_length=100, blank=True)
    # Every word of the three names by prefix, whole word and initial (healthcrm.crypto,
    # "Name search by words"); copied by a trigger into PatientNamePrefix, which search reads.
    name_search_digests = BlindNameIndexField(sources=("given_name", "family_name", "preferred_name"))
    date_of_birth = EncryptedDateField()
    date_of_birth_bidx = BlindIndexField(source="date_of_birth", kind="date")
    sex = EncryptedCharField(max_length=16, choices=Sex.choices, default=Sex.UNKNOWN)
    gender_identity = EncryptedCharField(max_length=64, blank=True)
    pronouns = EncryptedCharField(max_length=32, blank=True)
    phone_mobile = EncryptedCharField("mobile phone", max_length=32, blank=True, validators=[validate_phone])
    phone_mobile_bidx = BlindIndexField(source="phone_mobile", kind="phone")
    # The last 7 and 10 digits: a local number without its area code, a number without its country code.
    phone_mobile_last7_bidx = BlindIndexField(source="phone_mobile", kind="phone_last7")
    phone_mobile_last10_bidx = BlindIndexField(source="phone_mobile", kind="phone_last10")
    # A landline is kept apart from the mobile: text messages go to the mobile only.
    phone_home = EncryptedCharField("home phone", max_length=32, blank=True, validators=[validate_phone])
    email = EncryptedEmailField(blank=True)
    email_bidx = BlindIndexField(source="email", kind="email")

    # Not PHI on their own: plain, so outreach can filter on them.
    preferred_language = models.CharField(
        max_length=35, default="en", validators=[validate_language_tag], help_text="BCP-47 tag, e.g. en, es, pt-BR."
    )
    preferred_channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.NONE)
    contact_window_start = models.TimeField(null=True, blank=True, help_text="Local time, e.g. 09:00.")
    contact_window_end = models.TimeField(
        null=True, blank=True, help_text="Local time; earlier than the start means overnight."
    )
    timezone = models.CharField(
        max_length=64, blank=True, validators=[validate_timezone], help_text="Leave empty to use the organization's."
    )

    address_line1 = EncryptedCharField("address line 1", max_length=200, blank=True)
    address_line2 = EncryptedCharField("address line 2", max_length=200, blank=True)
    address_city = EncryptedCharField("city", max_length=100, blank=True)
    address_state = EncryptedCharField("state", max_length=64, blank=True)
    address_postal_code = EncryptedCharField("postal code", max_length=16, blank=True)
    address_country = models.CharField("country", max_length=2, default="US", blank=True, help_text="ISO 3166 code.")

    emergency_contact_name = EncryptedCharField(max_length=200, blank=True)
    emergency_contact_relationship = EncryptedCharField(max_length=64, blank=True)
    emergency_contact_phone = EncryptedCharField(max_length=32, blank=True, validators=[validate_phone])

    is_active = models.BooleanField(default=True)
    # Set by administrators and compliance (patient_access_flag_set, audited); every opening of a
    # flagged record raises an anomaly alert (compliance/anomalies.py).
    access_flag = models.CharField(max_length=8, choices=AccessFlag.choices, default="", blank=True)
    # A duplicate record merged into another (patients.merge.patient_merge): inactive, kept so its
    # ids stay traceable; its page points to the surviving record.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from", editable=False
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            # Field groups: roles without it (front desk) see demographics and appointments only.
            ("view_clinical_summary", "Can see clinical details (problems, medications, care plans, notes)"),
            ("merge_patient", "Can merge a duplicate patient record into another"),
            ("flag_patient", "Can flag a record as VIP or employee (alerts on every opening)"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "mrn_bidx"],
                name="patient_mrn_unique_per_org",
                violation_error_message="A patient with this MRN already exists in this organization.",
            ),
            models.CheckConstraint(condition=Q(preferred_channel__in=Channel.values), name="patient_channel_valid"),
            models.CheckConstraint(condition=Q(access_flag__in=AccessFlag.values), name="patient_access_flag_valid"),
            models.CheckConstraint(
                condition=Q(merged_into__isnull=True) | Q(is_active=False),
                name="patient_merged_is_inactive",
                violation_error_message="A merged record cannot be active.",
            ),
            models.CheckConstraint(
                condition=Q(contact_window_start__isnull=True, contact_window_end__isnull=True)
                | Q(contact_window_start__isnull=False, contact_window_end__isnull=False),
                name="patient_contact_window_complete",
                violation_error_message="Give both ends of the contact window, or neither.",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="patient_org_created"),
            # The patient list: active patients, newest first; the page's ids come from this index
            # alone (healthcrm.pagination.paginate_by_pk).
            models.Index(
                fields=["organization", "-created_at", "-id"], condition=Q(is_active=True), name="patient_active_recent"
            ),
        ]

    def __str__(self) -> str:
        # Never PHI: django-auditlog stores this string as object_repr.
        return f"Patient #{self.pk}"

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip()

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The patient's time zone, or the organization's when none is set."""
        return zoneinfo.ZoneInfo(self.timezone) if self.timezone else self.organization.zone


class PatientNamePrefix(models.Model):
    """One row per name-search hash of a patient (`Patient.name_search_digests`: prefixes, long
    words, initials beside a word), kept in step by a database trigger (migrations 0005, 0008).

    Name search looks the hashes up here rather than in a GIN index on the patient's prefix arrays:
    under row-level security PostgreSQL uses an index only for leakproof operators, and array
    containment (@>) is not leakproof, so the arrays' index was never used (a sequential scan of
    every patient per search); equality on a varchar is leakproof and uses the b-tree below.
    """

    organization = models.ForeignKey("healthcrm.Organization", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)

    class Meta:
        # Covering (patient last): the search reads the ids from the index alone.
        indexes = [models.Index(fields=["organization", "digest", "patient"], name="patient_prefix_lookup")]

    def __str__(self) -> str:
        return f"Name prefix of patient #{self.patient_id}"


class PatientIdentifier(TenantModel):
    """An identifier another system gives the patient (FHIR Identifier: system + value)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="identifiers")
    system = models.CharField(max_length=255, help_text='A URI such as "http://hospital.example/mrn" or an EHR name.')
    value = EncryptedCharField(max_length=128)
    value_bidx = BlindIndexField(source="value", kind="identifier")

    class Meta:
        ordering = ["system", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "system", "value_bidx"],
                name="patientidentifier_unique_per_org",
                violation_error_message="Another patient already has this identifier in this system.",
            ),
        ]

    def __str__(self) -> str:
        return f"Identifier #{self.pk}"


class Coverage(TenantModel):
    """An insurance coverage. The payer's name is not PHI on its own; member and group numbers are."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="coverages")
    payer_name = models.CharField(max_length=200)
    member_id = EncryptedCharField("member id", max_length=64)
    member_id_bidx = BlindIndexField(source="member_id", kind="identifier")
    group_number = EncryptedCharField(max_length=64, blank=True)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)
    is_primary = models.BooleanField(default=True)

    class Meta:
        ordering = ["-is_primary", "-valid_from", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=F("valid_from")),
                name="coverage_valid_range",
                violation_error_message="The coverage cannot end before it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"Coverage #{self.pk}"


class PatientMerge(TenantModel):
    """One merge of a duplicate record into a surviving one: who, when, and what moved (counts per
    kind) or stayed on the duplicate because the survivor already had its equal (ids per kind).
    Ids and counts only, no PHI. Written by `patients.merge.patient_merge`, never changed."""

    survivor = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    duplicate = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=254, blank=True)
    moved = models.JSONField(default=dict, blank=True, help_text="Rows moved to the survivor, per model label.")
    kept = models.JSONField(
        default=dict, blank=True, help_text="Ids of rows left on the duplicate (the survivor had their equal)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "duplicate"],
                name="patientmerge_duplicate_once",
                violation_error_message="This record has already been merged.",
            ),
            models.CheckConstraint(condition=~Q(survivor=F("duplicate")), name="patientmerge_not_itself"),
        ]

    def __str__(self) -> str:
        return f"Merge of patient #{self.duplicate_id} into #{self.survivor_id}"
