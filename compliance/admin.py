from django.contrib import admin

from compliance.models import AccessLog


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
