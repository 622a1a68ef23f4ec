"""django-auditlog registration for PHI models: every encrypted field (and its blind index) fully
redacted in the change log, and the model's __str__ free of PHI (auditlog stores it)."""

from __future__ import annotations

from auditlog.registry import auditlog
from django.db import models

from healthcrm.crypto import protected_field_names


def register_phi(model: type[models.Model], **kwargs: object) -> type[models.Model]:
    auditlog.register(
        model,
        mask_fields=protected_field_names(model),
        mask_callable="healthcrm.crypto.redact",
        **kwargs,
    )
    return model
