"""Education items, their language versions, and sends to patients.

An item is what a clinic chose to share (an article or a short video link) and what it suits:
condition codes (SNOMED CT, or ICD-10-CM where a code also covers its sub-codes: "E11" suits
"E11.9"), RxNorm medication codes and care-plan template codes. Each language version has its own
title and body (sanitised HTML, engagement/education/sanitize.py). A send names the patient, the
item and the language chosen, and points at the outbox message that carries its link.

"Once per patient and item" for rule-triggered sends is a partial unique constraint: a diagnosis
recorded twice, or a condition and a medication that both suit the item, send it once; staff may
still send it again from the record (their sends are idempotent per form, through the outbox key).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import Q

from healthcrm.models import TenantModel


class EducationFormat(models.TextChoices):
    ARTICLE = "article", "Article"
    VIDEO = "video", "Short video"


class ReadingLevel(models.TextChoices):
    EASY = "easy", "Easy (grade 5 or below)"
    STANDARD = "standard", "Standard (grades 6-8)"
    DETAILED = "detailed", "Detailed (grade 9 and above)"


BODY_MAX_LENGTH = 20_000


class EducationItem(TenantModel):
    """One piece of content of the organization's library, in one or more languages."""

    key = models.SlugField(max_length=64, help_text="Short stable name, e.g. hypertension-what-to-expect.")
    format = models.CharField(max_length=8, choices=EducationFormat.choices, default=EducationFormat.ARTICLE)
    reading_level = models.CharField(max_length=10, choices=ReadingLevel.choices, default=ReadingLevel.STANDARD)
    condition_codes = ArrayField(
        models.CharField(max_length=32),
        default=list,
        blank=True,
        help_text="SNOMED CT or ICD-10-CM codes it suits (an ICD-10 code covers its sub-codes: E11 suits E11.9).",
    )
    medication_codes = ArrayField(
        models.CharField(max_length=32), default=list, blank=True, help_text="RxNorm codes it suits."
    )
    care_plan_templates = ArrayField(
        models.SlugField(max_length=64), default=list, blank=True, help_text="Care-plan template codes it suits."
    )
    is_active = models.BooleanField(default=True, help_text="Inactive items are neither offered nor sent.")

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "key"],
                name="educationitem_key_unique_per_org",
                violation_error_message="An education item with this key already exists.",
            ),
            models.CheckConstraint(condition=Q(format__in=EducationFormat.values), name="educationitem_format_valid"),
            models.CheckConstraint(
                condition=Q(reading_level__in=ReadingLevel.values), name="educationitem_reading_level_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.key


class EducationVersion(TenantModel):
    """An item in one language: title, summary, body (sanitised HTML) and, for a video, its link."""

    item = models.ForeignKey(EducationItem, on_delete=models.CASCADE, related_name="versions")
    language = models.CharField(max_length=35, default="en", help_text="BCP 47, e.g. en, es, es-MX.")
    title = models.CharField(max_length=200)
    summary = models.CharField(max_length=300, blank=True)
    body = models.TextField(max_length=BODY_MAX_LENGTH, blank=True, validators=[MaxLengthValidator(BODY_MAX_LENGTH)])
    video_url = models.URLField(max_length=500, blank=True, help_text="https link to the video (short videos).")

    class Meta:
        ordering = ["item", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "item", "language"],
                name="educationversion_one_per_language",
                violation_error_message="This item already has a version in this language.",
            ),
        ]

    def __str__(self) -> str:
        return f"Education version #{self.pk} ({self.language})"


class EducationTrigger(models.TextChoices):
    STAFF = "staff", "Sent by staff"
    CONDITION = "condition", "New diagnosis"
    MEDICATION = "medication", "New medication"
    CARE_PLAN = "care_plan", "Care plan started"


class EducationSend(TenantModel):
    """An item sent (or being sent) to a patient: the outbox message carries its signed link.

    The message's subject is the item ("education", item id) and its slot says who sent it ("rule",
    or "staff:<form key>"), so the outbox key makes each send exactly-once; this row, one per
    message, keeps the language chosen and why it was sent.
    """

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="education_sends")
    item = models.ForeignKey(EducationItem, on_delete=models.PROTECT, related_name="sends")
    language = models.CharField(max_length=35, help_text="The version sent (the patient's language, or the fallback).")
    trigger = models.CharField(max_length=12, choices=EducationTrigger.choices)
    # The code that matched (SNOMED/ICD-10/RxNorm/template code): plain, as on the problem list.
    trigger_code = models.CharField(max_length=64, blank=True)
    message = models.OneToOneField(
        "engagement.OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="education_send"
    )
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "patient", "item"],
                condition=~Q(trigger="staff"),
                name="educationsend_rule_once_per_patient_item",
                violation_error_message="This item was already sent to this patient by a rule.",
            ),
            models.CheckConstraint(
                condition=Q(trigger__in=EducationTrigger.values), name="educationsend_trigger_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "patient", "-created_at"], name="educationsend_patient"),
            models.Index(fields=["organization", "created_at"], name="educationsend_org_time"),
        ]

    def __str__(self) -> str:
        return f"Education send #{self.pk}"
