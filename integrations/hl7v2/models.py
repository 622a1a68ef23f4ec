"""HL7 v2 inbound interface state: registered senders, the message log (idempotency and support),
and messages held until the appointment they change is booked.

Re-exported by integrations/models.py (the app's models module).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import Q

from healthcrm.crypto import EncryptedTextField
from healthcrm.models import TenantModel

# The largest message the listener accepts (HL7_MAX_MESSAGE_BYTES is capped to this): the raw copy
# is kept encrypted in a text column whose max_length says so.
MAX_MESSAGE_CHARS = 1024 * 1024


def sender_lookup_key(facility: str, application: str) -> str:
    """The sender's routing key: a digest of MSH-4 and MSH-3 as the sender writes them (case-folded).

    The listener finds a sender before any organization is current: the sender table's row-level
    security shows a row whose key equals the transaction-local `app.hl7_sender_key`, and only it.
    """
    text = f"{facility.strip().casefold()}\x1f{application.strip().casefold()}"
    return hashlib.sha256(text.encode()).hexdigest()


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Hl7Sender(TenantModel):
    """A practice-management system allowed to send: its facility (MSH-4) and application (MSH-3)
    route its messages to this organization; a shared secret (sent in MSH-8) or a TLS client
    certificate (SHA-256 fingerprint) proves it is that system."""

    name = models.CharField(max_length=200, help_text="What staff call this system, e.g. the PM vendor.")
    sending_facility = models.CharField("sending facility (MSH-4)", max_length=180)
    sending_application = models.CharField("sending application (MSH-3)", max_length=180)
    lookup_key = models.CharField(max_length=64, editable=False)
    secret_digest = models.CharField(
        max_length=64, blank=True, editable=False, help_text="SHA-256 of the shared secret (set from the admin)."
    )
    client_cert_sha256 = models.CharField(
        "client certificate SHA-256",
        max_length=64,
        blank=True,
        help_text="Hex fingerprint of the sender's TLS client certificate (64 characters, no colons).",
    )
    default_minutes = models.PositiveSmallIntegerField(
        default=30, help_text="Length of a visit whose message gives no end or duration."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # Global, not per organization: one facility and application route to one organization.
            models.UniqueConstraint(
                fields=["lookup_key"],
                name="hl7sender_one_route",
                violation_error_message="This facility and application are already registered.",
            ),
            models.CheckConstraint(
                condition=~Q(secret_digest="") | ~Q(client_cert_sha256=""),  # nosec B106 (a condition, not a password)
                name="hl7sender_has_credential",
                violation_error_message="Give the sender a shared secret or a client certificate fingerprint.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.lookup_key = sender_lookup_key(self.sending_facility, self.sending_application)
        self.client_cert_sha256 = self.client_cert_sha256.replace(":", "").strip().lower()
        super().save(*args, **kwargs)

    @property
    def source_system(self) -> str:
        """How appointments and links name this sender (Appointment.source_system)."""
        return f"hl7v2:{self.pk}"


class Outcome(models.TextChoices):
    AA = "AA", "Accepted"
    AE = "AE", "Error"
    AR = "AR", "Refused"


class MessageState(models.TextChoices):
    APPLIED = "applied", "Applied"
    HELD = "held", "Held for its appointment"
    EXPIRED = "expired", "Held too long: not applied"
    ERROR = "error", "Not applied (error)"
    REFUSED = "refused", "Refused"


class Hl7Message(TenantModel):
    """One message a registered sender sent, keyed by its control id (MSH-10): exactly once.

    The ACK sent is kept as sent (a resend gets it again). The raw message is kept encrypted until
    `raw_expires_at` (HL7_RAW_RETENTION_DAYS), then cleared. Errors name the field (PID-7) and say
    why in our words: never a value.
    """

    sender = models.ForeignKey(Hl7Sender, on_delete=models.PROTECT, related_name="messages")
    control_id = models.CharField(max_length=199)
    message_type = models.CharField(max_length=16, help_text="MSH-9 event, e.g. SIU^S12.")
    outcome = models.CharField(max_length=2, choices=Outcome.choices)
    state = models.CharField(max_length=8, choices=MessageState.choices)
    error_field = models.CharField(max_length=32, blank=True)
    error_reason = models.CharField(max_length=255, blank=True)
    appointment_key = models.CharField(max_length=64, blank=True, help_text="The sender's appointment id (SIU).")
    ack = models.TextField(max_length=2000, editable=False, validators=[MaxLengthValidator(2000)])
    raw = EncryptedTextField(max_length=MAX_MESSAGE_CHARS, blank=True, editable=False)
    raw_expires_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "sender", "control_id"],
                name="hl7message_control_id_once",
                violation_error_message="This sender already sent a message with this control id.",
            ),
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="hl7message_outcome_valid"),
            models.CheckConstraint(condition=Q(state__in=MessageState.values), name="hl7message_state_valid"),
        ]
        indexes = [
            models.Index(fields=["organization", "received_at"], name="hl7message_org_received"),
            models.Index(fields=["organization", "control_id"], name="hl7message_org_control"),
            models.Index(
                fields=["organization", "raw_expires_at"],
                name="hl7message_org_raw_expiry",
                condition=Q(raw_expires_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"HL7 {self.message_type} #{self.pk}"


class Hl7HeldMessage(TenantModel):
    """A change (S13, S14, S15, S26) for an appointment not booked yet: applied when its S12
    arrives, or reported as expired at `expires_at` (beat)."""

    message = models.OneToOneField(Hl7Message, on_delete=models.CASCADE, related_name="held")
    sender = models.ForeignKey(Hl7Sender, on_delete=models.PROTECT, related_name="+")
    appointment_key = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["message_id"]
        indexes = [
            models.Index(fields=["organization", "sender", "appointment_key"], name="hl7held_org_sender_key"),
            models.Index(fields=["organization", "expires_at"], name="hl7held_org_expires"),
        ]

    def __str__(self) -> str:
        return f"Held HL7 message #{self.message_id}"
