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


# -- Security events: who changed access, credentials or settings ----------------------------------
# The models are registered from settings (AUDITLOG_INCLUDE_TRACKING_MODELS, secrets masked); the
# receiver below gives each entry the organization the change was made in (the current one), so
# that organization's compliance officer sees it (row-level security) and the database chains it
# (compliance/migrations/0002). Organization settings and memberships are changed in their own
# organization (the admin enters it to save them). A change made with no organization current (a
# password reset before sign-in, a platform administrator outside any organization) is a platform
# entry: no organization, not chained, visible to platform administrators in the admin only.
# (Under the table's policy an entry can only be written for the current organization, or for
# none when none is current: INSERT ... RETURNING must see the row.)

SECURITY_MODELS = (
    "healthcrm.organization",
    "healthcrm.membership",
    "auth.user",
    "staff.authenticatordevice",
    "otp_static.staticdevice",
    "otp_static.statictoken",
    "integrations.devicetoken",
    "engagement.channelsettings",
    "integrations.fhirconnection",
)


def tag_security_entry(sender: type[models.Model], instance: models.Model, **kwargs: object) -> None:
    """auditlog's pre_log: models without their own get_additional_data get their organization."""
    if instance._meta.label_lower not in SECURITY_MODELS or hasattr(type(instance), "get_additional_data"):
        return None
    from healthcrm.tenancy import get_current_organization

    current = get_current_organization()
    data: dict[str, object] = {"organization_id": current.pk if current is not None else None}
    # A service may name what the change was (`instance.audit_event = "staff.deactivated"`), so the
    # security events page says it beside the field changes.
    event = getattr(instance, "audit_event", None)
    if event:
        data["event"] = event
    instance.get_additional_data = lambda: data  # type: ignore[attr-defined]
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
