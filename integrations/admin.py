from django.contrib import admin

from compliance.access import PHIAdminMixin
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


@admin.register(FhirConnection)
class FhirConnectionAdmin(PHIAdminMixin, TenantAdmin):
    list_display = ("name", "organization", "base_url", "auth_type", "is_active", "last_run_at", "last_success_at")
    readonly_fields = ("last_run_at", "last_success_at", "last_error", "cursors")


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
