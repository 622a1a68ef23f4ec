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
        **kwargs,  # type: ignore[arg-type]
    )
    return model


# -- Security events: who changed access, credentials or settings ----------------------------------
# The models are registered from settings (AUDITLOG_INCLUDE_TRACKING_MODELS, secrets masked); the
# receiver below gives each entry the organization it belongs to, so the organization's compliance
# officer sees it (row-level security) and the database chains it (compliance/migrations/0002).
# An entry belongs to the current organization only when the object is that organization's (its
# settings, one of its memberships, a member's password or devices). Anything else (a password
# reset before sign-in, a platform administrator's change outside any organization) stays a
# platform entry: no organization, not chained, visible to platform administrators in the admin.

SECURITY_MODELS = (
    "healthcrm.organization",
    "healthcrm.membership",
    "auth.user",
    "otp_totp.totpdevice",
    "otp_static.staticdevice",
    "otp_static.statictoken",
    "integrations.devicetoken",
    "engagement.channelsettings",
    "integrations.fhirconnection",
)


def _owning_organization_id(instance: models.Model) -> int | None:
    from healthcrm.models import Membership
    from healthcrm.tenancy import get_current_organization

    current = get_current_organization()
    if current is None:
        return None
    label = instance._meta.label_lower
    if label == "healthcrm.organization":
        owner = instance.pk
    elif label == "healthcrm.membership":
        owner = instance.organization_id  # type: ignore[attr-defined]
    else:
        if label == "auth.user":
            user_id = instance.pk
        elif label == "otp_static.statictoken":
            user_id = instance.device.user_id  # type: ignore[attr-defined]
        else:
            user_id = getattr(instance, "user_id", None)
        is_member = Membership.objects.filter(user_id=user_id, organization_id=current.pk).exists()
        owner = current.pk if is_member else None
    return current.pk if owner == current.pk else None


def tag_security_entry(sender: type[models.Model], instance: models.Model, **kwargs: object) -> None:
    """auditlog's pre_log: models without their own get_additional_data get their organization."""
    if instance._meta.label_lower not in SECURITY_MODELS or hasattr(type(instance), "get_additional_data"):
        return None
    organization_id = _owning_organization_id(instance)
    instance.get_additional_data = lambda: {"organization_id": organization_id}  # type: ignore[attr-defined]
    return None


def platform_admin_entered(request: object, organization: models.Model) -> None:
    """Audit a platform administrator's choice to work in an organization, in that organization."""
    from auditlog.models import LogEntry

    from healthcrm.tenancy import organization_context

    user = request.user  # type: ignore[attr-defined]
    with organization_context(organization):  # type: ignore[arg-type]
        LogEntry.objects.log_create(
            organization,
            force_log=True,
            action=LogEntry.Action.ACCESS,
            changes={"platform_admin_entered": [None, user.get_username()]},
            additional_data={"organization_id": organization.pk, "event": "platform_admin_entered"},
            actor=user,
            remote_addr=getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR"),  # type: ignore[attr-defined]
        )
