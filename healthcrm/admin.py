"""Django admin: platform administrators (superusers) see every organization; an organization's
administrators see their current organization only (tenant models through their managers)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from healthcrm.models import Location, Membership, Notification, Organization
from healthcrm.tenancy import get_current_organization, organization_context


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

    def save_model(self, request, obj, form, change):
        # In the organization, so the change's audit entry is the organization's (and chained).
        if obj.pk is None:
            super().save_model(request, obj, form, change)
            return
        with organization_context(obj):
            super().save_model(request, obj, form, change)


class LocationAdminForm(forms.ModelForm):
    class Meta:
        model = Location
        fields = ["name", "address", "phone", "timezone", "opening_hours", "is_active"]
        widgets = {"opening_hours": forms.Textarea(attrs={"rows": 8, "cols": 60, "spellcheck": "false"})}

    def clean_opening_hours(self) -> Any:
        # An emptied box means "no restriction", stored as {} (the column is not nullable).
        return self.cleaned_data.get("opening_hours") or {}


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    form = LocationAdminForm
    list_display = ["name", "phone", "timezone", "is_active"]
    search_fields = ["name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Memberships of the current organization.

    Only platform administrators add memberships (any user, in the organization they work in);
    an organization's administrators change the roles of existing members. New members join by
    invitation (the staff pages), so this form never looks users up across the platform.
    """

    list_display = ["user", "role", "title", "is_active", "created_at"]
    list_filter = ["role", "is_active"]
    search_fields = ["user__email", "user__username"]
    raw_id_fields = ["user"]  # platform administrators only (see get_readonly_fields)
    exclude = ["organization"]

    def get_queryset(self, request):
        current = get_current_organization()
        return super().get_queryset(request).filter(organization_id=current.pk if current else None)

    def has_add_permission(self, request):
        return request.user.is_superuser and get_current_organization() is not None

    def get_readonly_fields(self, request, obj=None):
        return [] if request.user.is_superuser and obj is None else ["user"]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "subtitle": "New members join by invitation; here an administrator changes a member's role.",
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        organization = get_current_organization()
        if not change:
            obj.organization = organization
        with organization_context(obj.organization):
            super().save_model(request, obj, form, change)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "recipient", "kind", "message", "read_at", "created_at"]
    list_filter = ["kind"]
    raw_id_fields = ["recipient"]
