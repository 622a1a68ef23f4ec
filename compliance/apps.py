from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.signals import pre_log

        from compliance.audit import tag_security_entry

        pre_log.connect(tag_security_entry, dispatch_uid="compliance.tag_security_entry")


class HealthAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the project's site as the default one (compliance/admin_site.py):
    safe changelists, searches kept out of URLs, access-logged autocomplete, and an audited
    "organization to work in" for platform administrators."""

    default = False  # "compliance" itself stays ComplianceConfig
    default_site = "compliance.admin_site.HealthAdminSite"
