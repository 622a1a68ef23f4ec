"""Tenancy core models: organizations, their sites, who belongs to them, the tenant base, notifications."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models.functions import Lower

from healthcrm.crypto import EncryptedCharField
from healthcrm.opening_hours import closed_reason, validate_opening_hours
from healthcrm.roles import Role
from healthcrm.tenancy import get_current_organization, require_current_organization


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            "%(value)s is not a known time zone (use an IANA name such as America/Chicago).", params={"value": value}
        )


class Organization(models.Model):
    """A clinic or clinic network: the tenant. Its rows are platform data, not tenant data."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    timezone = models.CharField(max_length=64, default="America/New_York", validators=[validate_timezone])
    phone = models.CharField(max_length=32, blank=True)
    require_mfa = models.BooleanField(
        default=True, help_text="Staff must confirm a TOTP code from an authenticator app at each sign-in."
    )
    settings = models.JSONField(default=dict, blank=True, help_text="Organization-level options (per feature).")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="organization_name_unique_ci",
                violation_error_message="An organization with this name already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class TenantQuerySet(models.QuerySet):
    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """Stamp the current organization on new rows, and refuse rows of another one."""
        organization = require_current_organization()
        objs = list(objs)
        for obj in objs:
            if obj.organization_id is None:
                obj.organization = organization
            elif obj.organization_id != organization.pk:
                raise NoCrossTenantWriteError(
                    f"Refusing to bulk-create a {self.model._meta.label} of organization {obj.organization_id} "
                    f"while organization {organization.pk} is current."
                )
        return super().bulk_create(objs, *args, **kwargs)

    def blind_match(self, **lookups: Any) -> TenantQuerySet:
        """Exact-match search on encrypted fields through their blind indexes.

        `Patient.objects.blind_match(phone_mobile="(555) 010-2030")` compares the keyed hash of
        the normalized value with the indexed column beside the ciphertext; nothing is decrypted.
        """
        return self.filter(blind_q(self.model, **lookups))


def blind_q(model: type[models.Model], **lookups: Any) -> models.Q:
    """A Q matching every lookup (source field -> clear value) through blind indexes, in the current organization."""
    from healthcrm.crypto import blind_index_field_for

    organization = require_current_organization()
    filters = {}
    for source, value in lookups.items():
        field = blind_index_field_for(model, source)
        digest = field.digest(value, organization.pk)
        if digest is None:
            return models.Q(pk__in=[])  # nothing to look up matches nothing (never "the index is NULL")
        filters[field.attname] = digest
    return models.Q(**filters)


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):  # type: ignore[misc]
    """Default manager of tenant models: the current organization's rows, or an error."""

    def get_queryset(self) -> TenantQuerySet:
        organization = require_current_organization()
        return super().get_queryset().filter(organization_id=organization.pk)

    def all_organizations(self) -> TenantQuerySet:
        """Every organization's rows, for platform code that truly needs them (say so where used).

        The application-level filter is skipped; PostgreSQL row-level security still applies
        under the application's database role.
        """
        return super().get_queryset()


class TenantModel(models.Model):
    """Base of every tenant-owned model: one organization per row, never null, never cascaded."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        current = get_current_organization()
        if self.organization_id is None:
            self.organization = require_current_organization()
        elif current is not None and current.pk != self.organization_id:
            raise NoCrossTenantWriteError(
                f"Refusing to save a {self._meta.label} of organization {self.organization_id} "
                f"while organization {current.pk} is current."
            )
        super().save(*args, **kwargs)

    def refresh_blind_indexes(self) -> None:
        """Recompute blind indexes now (save does it too), so full_clean can check constraints on them."""
        from healthcrm.crypto import BlindIndexField, BlindNameIndexField, BlindPrefixIndexField

        for field in self._meta.concrete_fields:
            if isinstance(field, BlindPrefixIndexField | BlindNameIndexField):
                field.refresh(self)
            elif isinstance(field, BlindIndexField):
                try:
                    digest = field.digest(getattr(self, field.source), self.organization_id)
                except (ValidationError, ValueError):
                    digest = None  # the source field's own validation reports it
                setattr(self, field.attname, digest)

    def full_clean(self, *args: Any, **kwargs: Any) -> None:
        if self.organization_id is None:
            self.organization = require_current_organization()
        self.refresh_blind_indexes()
        super().full_clean(*args, **kwargs)

    def get_additional_data(self) -> dict[str, Any]:
        # django-auditlog stores this with each entry, so the audit viewer can filter by tenant.
        return {"organization_id": self.organization_id}


class NoCrossTenantWriteError(RuntimeError):
    pass


class Location(TenantModel):
    """A site of an organization (clinic, lab, satellite office)."""

    name = models.CharField(max_length=200)
    address = models.TextField(max_length=500, blank=True, validators=[MaxLengthValidator(500)])
    phone = models.CharField(max_length=32, blank=True)
    timezone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_timezone],
        help_text="Leave empty to use the organization's time zone.",
    )
    opening_hours = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_opening_hours],
        help_text='Local times, e.g. {"mon": [["08:00", "18:00"]]}; a day left out is closed; {}: always open',
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                "organization",
                Lower("name"),
                name="location_name_unique_per_org",
                violation_error_message="This organization already has a location with this name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The location's own time zone, or its organization's."""
        return zoneinfo.ZoneInfo(self.timezone) if self.timezone else self.organization.zone

    def closed_reason(self, starts_at: Any, ends_at: Any) -> str | None:
        """None when a visit [starts_at, ends_at) fits the opening hours (or none are set), else why not."""
        return closed_reason(self.opening_hours, starts_at=starts_at, ends_at=ends_at, zone=self.zone, name=self.name)


class Membership(models.Model):
    """A user's role in one organization. A user may belong to several and switch between them.

    Not a TenantModel: the middleware reads a user's memberships before any organization is
    current. Row-level security still guards the table (own rows, or the current organization's).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    title = models.CharField(max_length=100, blank=True, help_text="Shown to colleagues, e.g. 'RN' or 'MD'.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization__name", "user__email"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"],
                name="membership_unique_per_org",
                violation_error_message="This user already belongs to this organization.",
            ),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} at {self.organization}"


class Notification(TenantModel):
    """An in-app notification: a row per recipient, read or not.

    Messages carry no PHI (kinds and ids: "Care plan #7 of patient #12: task completed"), since
    they are listed outside the patient's page. Written by `healthcrm.services.notify`.
    """

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32)
    message = models.CharField(max_length=255)
    url = models.CharField(max_length=300, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "recipient", "read_at"], name="notification_org_recipient")]

    def __str__(self) -> str:
        return f"Notification #{self.pk}"


class UserSession(models.Model):
    """The index of a user's signed-in sessions (issue 13 item 6): sessions live in Redis (the cache
    engine), which cannot list a user's keys, so each sign-in writes one row here and each request
    touches it at most once a minute (`healthcrm.sessions`). Platform data (a user works in several
    organizations), no PHI. The session key is stored encrypted (the app role reads ciphertext
    only, like TOTP keys) to end the session from another one; `key_digest`, its keyed hash, finds
    the row of the current request without decrypting."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key_digest = models.CharField(max_length=64, unique=True)
    session_key = EncryptedCharField(max_length=64)
    user_agent = models.CharField(max_length=200, blank=True, help_text="Browser and system, as the browser said.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        indexes = [models.Index(fields=["user", "-last_seen_at"], name="usersession_user")]

    def __str__(self) -> str:
        return f"Session #{self.pk} of user #{self.user_id}"
