from typing import Any

from django import forms
from django.contrib import admin

from compliance.access import PHIAdminMixin
from integrations.fhir.forms import base_url_move_error
from integrations.hl7v2.models import secret_digest, sender_lookup_key
from integrations.hl7v2.selectors import sender_route_get
from integrations.models import (
    DeviceAlert,
    DeviceToken,
    EhrCarePlan,
    Encounter,
    FhirConnection,
    FhirResourceLink,
    Hl7Message,
    Hl7Sender,
    ImportJob,
    Procedure,
)


class TenantAdmin(admin.ModelAdmin):
    """Admin of integration models: the tenant manager scopes them to the current organization,
    as in every other admin page (platform administrators switch organization to see another)."""


class FhirConnectionAdminForm(forms.ModelForm):
    """Moving a connection to another base URL is deliberate: it keeps every link and cursor, so
    it must be the same server. Spelling the same URL differently (a trailing slash) is not a move."""

    base_url = forms.URLField(max_length=300, assume_scheme="https", help_text="e.g. https://ehr.example/fhir/R4")
    token_url = forms.URLField(max_length=300, required=False, assume_scheme="https")
    same_server = forms.BooleanField(
        required=False,
        label="Same server at a new address",
        help_text="Tick when changing the base URL of the same EHR server: what earlier pulls imported stays "
        "linked and later pulls update it. A different server needs a new connection.",
    )

    class Meta:
        model = FhirConnection
        fields = "__all__"  # noqa: DJ007 - the fields the admin showed before; the admin narrows them

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        problem = base_url_move_error(self.instance, data.get("base_url", ""), bool(data.get("same_server")))
        if problem:
            self.add_error("base_url", problem)
        return data


@admin.register(FhirConnection)
class FhirConnectionAdmin(PHIAdminMixin, TenantAdmin):
    form = FhirConnectionAdminForm
    list_display = ("name", "organization", "base_url", "auth_type", "is_active", "last_run_at", "last_success_at")
    readonly_fields = ("source_system", "last_run_at", "last_success_at", "last_error", "cursors", "pull_claimed_until")


@admin.register(ImportJob)
class ImportJobAdmin(TenantAdmin):
    list_display = ("__str__", "organization", "kind", "status", "created_at")
    readonly_fields = ("report", "error", "status", "total", "processed", "started_at", "finished_at")
    exclude = ("payload",)


@admin.register(FhirResourceLink)
class FhirResourceLinkAdmin(TenantAdmin):
    list_display = ("__str__", "organization", "source_system", "content_type", "object_id")


@admin.register(DeviceToken)
class DeviceTokenAdmin(TenantAdmin):
    list_display = ("name", "organization", "prefix", "is_active", "last_used_at")
    readonly_fields = ("prefix", "last_used_at")
    raw_id_fields = ("patient",)


@admin.register(Encounter, Procedure, EhrCarePlan, DeviceAlert)
class ClinicalCopyAdmin(PHIAdminMixin, TenantAdmin):
    list_display = ("__str__", "organization", "created_at")


class Hl7SenderAdminForm(forms.ModelForm):
    """The shared secret is written, never shown: the admin keeps its SHA-256 digest only."""

    new_secret = forms.CharField(
        required=False,
        max_length=200,
        min_length=16,
        widget=forms.PasswordInput(render_value=False),
        label="New shared secret",
        help_text="At least 16 characters; the system puts it in MSH-8. Leave empty to keep the current one.",
    )

    class Meta:
        model = Hl7Sender
        fields = (
            "name",
            "sending_facility",
            "sending_application",
            "client_cert_sha256",
            "default_minutes",
            "is_active",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new_secret"):
            self.instance.secret_digest = secret_digest(data["new_secret"])
        if not self.instance.secret_digest and not data.get("client_cert_sha256"):
            raise forms.ValidationError("Give the sender a shared secret or a client certificate fingerprint.")
        facility, application = data.get("sending_facility"), data.get("sending_application")
        if facility and application:
            key = sender_lookup_key(facility, application)
            self.instance.lookup_key = key
            # Registered in another organization too? The constraint is global: say so here, not as a 500.
            taken = sender_route_get(key)
            if taken is not None and taken.pk != self.instance.pk:
                raise forms.ValidationError("This facility and application are already registered.")
        return data


@admin.register(Hl7Sender)
class Hl7SenderAdmin(TenantAdmin):
    form = Hl7SenderAdminForm
    list_display = ("name", "sending_facility", "sending_application", "is_active")
    search_fields = ("name", "sending_facility", "sending_application")


@admin.register(Hl7Message)
class Hl7MessageAdmin(PHIAdminMixin, TenantAdmin):
    """Support view of the log: type, outcome, field and reason; never the raw message."""

    list_display = ("control_id", "message_type", "outcome", "state", "error_field", "received_at")
    list_filter = ("outcome", "state", "message_type")
    fields = (
        "sender",
        "control_id",
        "message_type",
        "outcome",
        "state",
        "error_field",
        "error_reason",
        "appointment_key",
        "received_at",
        "processed_at",
        "raw_expires_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
