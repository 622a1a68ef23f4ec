"""Writes on HL7 v2 senders (the admin and tests register them through these)."""

from __future__ import annotations

from django.db import transaction

from integrations.hl7v2.models import Hl7Sender, secret_digest


@transaction.atomic
def hl7_sender_register(
    *,
    name: str,
    sending_facility: str,
    sending_application: str,
    secret: str = "",
    client_cert_sha256: str = "",
    default_minutes: int = 30,
) -> Hl7Sender:
    """Register a sending system in the current organization. Raises ValidationError (nothing saved).

    The secret is kept as a SHA-256 digest only (senders put it in MSH-8); give a long random one.
    """
    sender = Hl7Sender(
        name=name.strip(),
        sending_facility=sending_facility.strip(),
        sending_application=sending_application.strip(),
        secret_digest=secret_digest(secret) if secret else "",
        client_cert_sha256=client_cert_sha256,
        default_minutes=default_minutes,
    )
    sender.full_clean(exclude=["lookup_key"])
    sender.save()
    return sender


@transaction.atomic
def hl7_sender_secret_set(*, sender: Hl7Sender, secret: str) -> Hl7Sender:
    """Replace a sender's shared secret (its digest): messages with the old one are refused from now."""
    sender.secret_digest = secret_digest(secret)
    sender.save(update_fields=["secret_digest", "updated_at"])
    return sender
