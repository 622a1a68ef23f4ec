"""Integration state: FHIR source links, import jobs, EHR connections, EHR-only clinical records,
device tokens and device alerts.

Encounters, procedures and EHR care plans live here, not in patients/, because patients/ does not
model them yet and its migrations belong to the patients work; they are read-only copies of what
the EHR says (imported and exported as FHIR) and can move to patients/ with a state-only migration.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from auditlog.registry import auditlog
from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from compliance.audit import register_phi
from healthcrm.crypto import EncryptedCharField, EncryptedTextField
from healthcrm.models import Location, TenantModel


class FhirResourceLink(TenantModel):
    """Where a local row came from: (source system, resource type, resource id) -> object.

    One row per imported resource makes every upsert idempotent, whatever the resource type: the
    content hash says whether the resource changed since it was last imported. Resources kept only
    as references (FHIR Organization) have no local object.
    """

    source_system = models.CharField(max_length=255)
    resource_type = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64)
    content_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    object_id = models.BigIntegerField(null=True, blank=True)
    content_hash = models.CharField(max_length=64)
    last_updated = models.DateTimeField(null=True, blank=True, help_text="meta.lastUpdated, when the source gave it.")

    target = GenericForeignKey("content_type", "object_id")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "source_system", "resource_type", "resource_id"],
                name="fhirresourcelink_unique_per_org",
                violation_error_message="This resource is already linked.",
            ),
        ]
        indexes = [models.Index(fields=["organization", "content_type", "object_id"], name="fhirlink_org_object")]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    WARNINGS = "warnings", "Succeeded with warnings"
    PARTIAL = "partial", "Finished with failures"
    FAILED = "failed", "Failed"


# Outcomes that count as a success of the connection (its last_success_at moves).
SUCCESS_STATUSES = (JobStatus.SUCCEEDED, JobStatus.WARNINGS)


class JobKind(models.TextChoices):
    UPLOAD = "upload", "Upload"
    COMMAND = "command", "Command line"
    PULL = "pull", "Scheduled pull"


class ImportJob(TenantModel):
    """One import (an upload, or one pull of a connection) and its report.

    The uploaded file is kept Fernet-encrypted (`payload`) until the task has read it, then
    cleared. The report holds counts, entry indexes, FHIR paths and reasons: never values.
    """

    kind = models.CharField(max_length=8, choices=JobKind.choices, default=JobKind.UPLOAD)
    connection = models.ForeignKey(
        "FhirConnection", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    source_system = models.CharField(max_length=255)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    size_bytes = models.BigIntegerField(default=0)
    payload = models.BinaryField(default=b"", editable=False)
    total = models.PositiveIntegerField(default=0, help_text="Entries to import (known once the file is scanned).")
    processed = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, help_text="Why the whole job failed (no PHI).")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="importjob_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Import #{self.pk}"

    @property
    def is_done(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.WARNINGS, JobStatus.PARTIAL, JobStatus.FAILED)

    @property
    def percent(self) -> int:
        if self.is_done:
            return 100
        if not self.total:
            return 0
        return min(99, int(100 * self.processed / self.total))


class AuthType(models.TextChoices):
    NONE = "none", "None"
    BEARER = "bearer", "Bearer token"
    SMART = "smart", "SMART Backend Services"


class ExportMode(models.TextChoices):
    """How a pull asks: one search per type (any server), or a Bulk Data `$export` (large EHRs)."""

    SEARCH = "search", "Per-type search"
    SYSTEM = "system", "Bulk export: whole system ($export)"
    PATIENT = "patient", "Bulk export: all patients (Patient/$export)"
    GROUP = "group", "Bulk export: one group (Group/[id]/$export)"


EXPORT_CURSOR = "$export"  # cursors key: the last successful export's transactionTime (next `_since`)

DEFAULT_PULL_TYPES = [
    "Patient",
    "Practitioner",
    "Location",
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "AllergyIntolerance",
    "Immunization",
    "Procedure",
    "CarePlan",
    "Appointment",
]


def normalize_base_url(url: str) -> str:
    """One spelling per server: scheme and host lower-cased, default port, query, fragment and
    trailing slashes dropped (`https://EHR.example:443/fhir/` -> `https://ehr.example/fhir`)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = parts.port if parts.port and (scheme, parts.port) not in (("http", 80), ("https", 443)) else None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


class FhirConnection(TenantModel):
    """An organization's EHR FHIR server, pulled incrementally (`_lastUpdated` cursors per type).

    Its resources are linked under `source_system`, fixed when the connection is created: moving
    the server to a new base URL (`fhir_connection_base_url_change`) keeps every link and cursor.
    A pull holds the connection (`pull_claimed_until`) for at most its deadline, so a second pull
    of the same connection cannot start while one runs.
    """

    name = models.CharField(max_length=100)
    base_url = models.URLField(max_length=300, help_text="e.g. https://ehr.example/fhir/R4")
    source_system = models.CharField(
        max_length=255, editable=False, help_text="The key of this connection's resource links; never changes."
    )
    auth_type = models.CharField(max_length=8, choices=AuthType.choices, default=AuthType.NONE)
    bearer_token = EncryptedCharField(max_length=2000, blank=True)
    client_id = models.CharField(max_length=200, blank=True, help_text="SMART Backend Services client id.")
    token_url = models.URLField(max_length=300, blank=True)
    private_key_pem = EncryptedTextField(
        max_length=10000, blank=True, help_text="RSA private key (PEM) that signs the assertion."
    )
    key_id = models.CharField(max_length=100, blank=True)
    scope = models.CharField(max_length=500, default="system/*.read", blank=True)
    resource_types = models.JSONField(default=list, blank=True, help_text="Types to pull, in order.")
    interval_minutes = models.PositiveIntegerField(default=60)
    is_active = models.BooleanField(default=True)
    cursors = models.JSONField(default=dict, blank=True, help_text="Resource type -> last meta.lastUpdated seen.")
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, max_length=2000)
    request_timeout_seconds = models.PositiveSmallIntegerField(
        default=30, help_text="How long one request may wait for the server to answer."
    )
    pull_deadline_minutes = models.PositiveSmallIntegerField(
        default=20, help_text="How long a whole pull may run; what is left waits for the next run."
    )
    pull_claimed_until = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="A pull is running (until its deadline at the latest)."
    )
    export_mode = models.CharField(
        max_length=8,
        choices=ExportMode.choices,
        default=ExportMode.SEARCH,
        help_text="Per-type search works with any server; a Bulk Data $export is how large EHRs deliver a "
        "population (incremental with _since).",
    )
    export_group_id = models.CharField(
        max_length=64, blank=True, help_text="The Group id for a group export (as the EHR gave it)."
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(request_timeout_seconds__gte=1, request_timeout_seconds__lte=300),
                name="fhirconnection_timeout_range",
                violation_error_message="The request timeout is between 1 and 300 seconds.",
            ),
            models.CheckConstraint(
                condition=Q(pull_deadline_minutes__gte=1, pull_deadline_minutes__lte=24 * 60),
                name="fhirconnection_deadline_range",
                violation_error_message="The pull deadline is between 1 minute and 24 hours.",
            ),
            models.UniqueConstraint(
                fields=["organization", "name"],
                name="fhirconnection_name_unique_per_org",
                violation_error_message="A connection with this name already exists.",
            ),
            models.CheckConstraint(condition=Q(auth_type__in=AuthType.values), name="fhirconnection_auth_valid"),
            models.CheckConstraint(
                condition=Q(export_mode__in=ExportMode.values), name="fhirconnection_export_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        self.base_url = normalize_base_url(self.base_url)
        self.export_group_id = self.export_group_id.strip()
        if self.export_mode == ExportMode.GROUP and not self.export_group_id:
            raise ValidationError({"export_group_id": "A group export needs the EHR's Group id."})
        if self.export_group_id and not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", self.export_group_id):
            raise ValidationError({"export_group_id": "A FHIR id: letters, digits, '-' and '.', at most 64."})

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.base_url = normalize_base_url(self.base_url)
        if not self.source_system:
            self.source_system = self.base_url[:255]
        super().save(*args, **kwargs)

    @property
    def pull_types(self) -> list[str]:
        return list(self.resource_types or DEFAULT_PULL_TYPES)


# -- EHR-only clinical records (see the module docstring) ------------------------------------------


class Encounter(TenantModel):
    """A visit as the EHR recorded it (FHIR Encounter)."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="encounters")
    status = models.CharField(max_length=20)
    class_code = models.CharField(max_length=32, blank=True)
    type_system = models.CharField(max_length=255, blank=True)
    type_code = models.CharField(max_length=32, blank=True)
    type_display = EncryptedCharField(max_length=255, blank=True)
    reason_display = EncryptedCharField(max_length=255, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    practitioner = models.ForeignKey(
        "patients.Practitioner", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-period_start", "-id"]
        indexes = [models.Index(fields=["patient", "-period_start"], name="encounter_patient_start")]

    def __str__(self) -> str:
        return f"Encounter #{self.pk}"


class Procedure(TenantModel):
    """A procedure performed on the patient (FHIR Procedure)."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="procedures")
    encounter = models.ForeignKey(Encounter, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=20)
    code_system = models.CharField(max_length=255, blank=True)
    code = models.CharField(max_length=32)
    display = EncryptedCharField(max_length=255)
    performed_start = models.DateTimeField(null=True, blank=True)
    performed_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-performed_start", "-id"]

    def __str__(self) -> str:
        return f"Procedure #{self.pk}"


class EhrCarePlan(TenantModel):
    """A care plan as the EHR wrote it (FHIR CarePlan); HealthCRM's own plans are patients' CarePlan."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="ehr_care_plans")
    status = models.CharField(max_length=20)
    intent = models.CharField(max_length=20)
    category_system = models.CharField(max_length=255, blank=True)
    category_code = models.CharField(max_length=32, blank=True)
    title = EncryptedCharField(max_length=255, blank=True)
    description = EncryptedTextField(max_length=10000, blank=True)
    activities = EncryptedTextField(max_length=10000, blank=True, help_text="Planned activities, one per line.")
    activity_statuses = models.JSONField(
        default=list, blank=True, help_text="Each activity's status (a FHIR code), in the order of `activities`."
    )
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        verbose_name = "EHR care plan"

    def __str__(self) -> str:
        return f"EHR care plan #{self.pk}"


# -- Devices -------------------------------------------------------------------------------------


class DeviceToken(TenantModel):
    """An API token for one patient's home devices; only its SHA-256 is stored.

    A token records readings for its patient only (tokens without a patient, issued when tokens
    were organization-wide, are refused).
    """

    name = models.CharField(max_length=100)
    patient = models.ForeignKey("patients.Patient", null=True, on_delete=models.CASCADE, related_name="device_tokens")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False, help_text="The token's first characters, to recognize it.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_active = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class DeviceAlert(TenantModel):
    """A home-device reading outside the patient's thresholds, for the care team to act on.

    Numbers are plain, like Observation's (see patients/models/clinical.py). When patients/ offers
    a care-task service, an alert also creates a task there (integrations/devices/services.py).
    """

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="device_alerts")
    observation = models.ForeignKey("patients.Observation", on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=32, help_text="LOINC code of the value out of range.")
    value = models.DecimalField(max_digits=12, decimal_places=4)
    low = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    high = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    threshold_source = models.CharField(max_length=16, help_text="care_plan or organization.")
    status = models.CharField(max_length=8, choices=AlertStatus.choices, default=AlertStatus.OPEN)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=AlertStatus.values), name="devicealert_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Device alert #{self.pk}"


for _model in (Encounter, Procedure, EhrCarePlan, FhirConnection, DeviceAlert):
    register_phi(_model)


class RightOfAccessStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    IN_PROGRESS = "in_progress", "In progress"
    READY = "ready", "Ready to download"
    DELIVERED = "delivered", "Delivered"
    EXPIRED = "expired", "Expired"
    FAILED = "failed", "Failed"


class RightOfAccessRequest(TenantModel):
    """A patient's request for a copy of their record (HIPAA 164.524, GDPR Art. 15; issue 13 item 4).

    Due 30 days after it was received. Fulfilment (integrations/right_of_access/) builds a FHIR R4
    Bundle and a readable document, stores them encrypted (`RightOfAccessPackage`) and marks the
    request ready; one download by compliance or an administrator delivers it (and deletes the
    package); an undownloaded package expires at `expires_at`.
    """

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="access_requests")
    requested_at = models.DateTimeField()
    due_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=RightOfAccessStatus.choices, default=RightOfAccessStatus.RECEIVED)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_by_label = models.CharField(max_length=150, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent of the fulfilment done.")
    progress_step = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=200, blank=True, help_text="What failed, never a value.")
    ready_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="The package can be downloaded until then.")
    fulfilled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fulfilled_by_label = models.CharField(max_length=150, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    resource_count = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RightOfAccessStatus.values), name="rightofaccessrequest_status_valid"
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="rightofaccessrequest_progress_range"),
        ]
        indexes = [models.Index(fields=["organization", "status", "due_at"], name="rightofaccess_org_status_due")]

    def __str__(self) -> str:
        return f"Right of access request #{self.pk}"


class RightOfAccessPackage(TenantModel):
    """The fulfilment's files, each a Fernet token (`healthcrm.crypto.encrypt_bytes`) in a bytea
    column, like patient documents: behind RLS, never in lists or audit reads, deleted once
    downloaded or expired."""

    request = models.OneToOneField(RightOfAccessRequest, on_delete=models.CASCADE, related_name="package")
    bundle = models.BinaryField()
    document = models.BinaryField()

    def __str__(self) -> str:
        return f"Right of access package #{self.pk}"


auditlog.register(RightOfAccessRequest, exclude_fields=["progress", "progress_step"])


# HL7 v2 interface models live in their sub-package; Django finds them through this module.
from integrations.hl7v2.models import Hl7HeldMessage, Hl7Message, Hl7Sender  # noqa: E402, F401

register_phi(Hl7Message)  # the raw message (encrypted): changes audited with values redacted
