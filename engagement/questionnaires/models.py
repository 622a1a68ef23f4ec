"""Questionnaire definitions and the patients' responses (imported into engagement.models, so they
belong to the engagement app)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from healthcrm.crypto import EncryptedTextField
from healthcrm.models import TenantModel


class Questionnaire(TenantModel):
    """A FHIR R4 Questionnaire an organization sends (`resource`: the validated definition; holds no
    PHI), with how its total is scored and written to the record."""

    key = models.SlugField(max_length=64, help_text="Short name, e.g. phq-9.")
    title = models.CharField(max_length=200)
    url = models.CharField("canonical URL", max_length=255)
    version = models.CharField(max_length=32, blank=True)
    resource = models.JSONField()
    total_system = models.CharField(max_length=255, blank=True)
    total_code = models.CharField(max_length=32, blank=True, help_text="Code of the total's Observation.")
    total_display = models.CharField(max_length=255, blank=True)
    bands = models.JSONField(default=list, blank=True, help_text="[[lowest, highest, label], ...]")
    alert_at = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Default alert threshold.")
    alert_items = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["title"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "key"],
                name="questionnaire_key_unique_per_org",
                violation_error_message="A questionnaire with this short name already exists.",
            ),
            models.UniqueConstraint(
                fields=["organization", "url", "version"],
                name="questionnaire_url_unique_per_org",
                violation_error_message="This questionnaire (URL and version) was imported already.",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class ResponseStatus(models.TextChoices):  # FHIR questionnaire-answers-status
    IN_PROGRESS = "in-progress", "In progress"
    COMPLETED = "completed", "Completed"
    AMENDED = "amended", "Amended"
    ENTERED_IN_ERROR = "entered-in-error", "Entered in error"
    STOPPED = "stopped", "Stopped"


class QuestionnaireResponse(TenantModel):
    """A patient's answers to a questionnaire, as a FHIR QuestionnaireResponse (`resource`, encrypted
    JSON: answers are PHI). One per message sent (the link's): saved as the patient goes
    (in-progress), then completed once, scored, and written to the record as an Observation."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="questionnaire_responses")
    questionnaire = models.ForeignKey(
        Questionnaire, null=True, blank=True, on_delete=models.PROTECT, related_name="responses"
    )
    questionnaire_url = models.CharField(max_length=255, blank=True)
    message = models.ForeignKey(
        "engagement.OutboundMessage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="questionnaire_responses",
    )
    status = models.CharField(max_length=16, choices=ResponseStatus.choices, default=ResponseStatus.IN_PROGRESS)
    resource = EncryptedTextField(max_length=50_000)
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    band = models.CharField(max_length=64, blank=True)
    alerted = models.BooleanField(default=False, help_text="The answers reached the alert threshold.")
    authored_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    observation = models.ForeignKey(
        "patients.Observation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    task = models.ForeignKey("patients.CareTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-authored_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "message"],
                condition=Q(message__isnull=False),
                name="questionnaireresponse_one_per_message",
                violation_error_message="This questionnaire link has a response already.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ResponseStatus.values), name="questionnaireresponse_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "patient", "-authored_at"], name="qresponse_patient"),
            models.Index(fields=["organization", "questionnaire", "status"], name="qresponse_questionnaire"),
        ]

    def __str__(self) -> str:
        return f"Questionnaire response #{self.pk}"
