"""Django admin: platform administrators (superusers) see every organization; an organization's
administrators see their current organization only (tenant models through their managers)."""

from __future__ import annotations

from django.contrib import admin

from healthcrm.models import Location, Membership, Notification, Organization
from healthcrm.tenancy import get_current_organization


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "require_mfa", "is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        current = get_current_organization()
        return queryset.filter(pk=current.pk if current else None)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ["name", "phone", "timezone", "is_active"]
    search_fields = ["name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "title", "is_active", "created_at"]
    list_filter = ["role", "is_active"]
    search_fields = ["user__email", "user__username"]
    raw_id_fields = ["user"]  # no user directory across organizations
    exclude = ["organization"]

    def get_queryset(self, request):
        current = get_current_organization()
        return super().get_queryset(request).filter(organization_id=current.pk if current else None)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.organization = get_current_organization()
        super().save_model(request, obj, form, change)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "recipient", "kind", "message", "read_at", "created_at"]
    list_filter = ["kind"]
    raw_id_fields = ["recipient"]
