from django.contrib import admin

from compliance.access import PHIAdminMixin
from compliance.models import AccessLog, AnomalyAlert


@admin.register(AccessLog)
class AccessLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "view_name", "object_type", "ip_address"]
    list_filter = ["action", "object_type"]
    date_hierarchy = "created_at"
    list_select_related = False

    # The access log is evidence: nobody edits or deletes it from the admin.
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AnomalyAlert)
class AnomalyAlertAdmin(PHIAdminMixin, admin.ModelAdmin):
    """Alerts are raised by the scan and reviewed on the compliance page; the admin only reads them."""

    list_display = ["day", "rule", "user", "outcome", "reviewed_by", "created_at"]
    list_filter = ["rule", "outcome"]
    readonly_fields = [
        "user",
        "rule",
        "subject",
        "day",
        "evidence",
        "outcome",
        "reviewed_by",
        "reviewed_by_label",
        "reviewed_at",
    ]
    exclude = ["review_note"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
