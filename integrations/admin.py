from typing import Any

from django import forms
from django.contrib import admin

from compliance.access import PHIAdminMixin
from integrations.fhir.forms import base_url_move_error
from integrations.models import (
    DeviceAlert,
    DeviceToken,
    EhrCarePlan,
    Encounter,
    FhirConnection,
    FhirResourceLink,
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
