from django.apps import AppConfig


class HealthcrmConfig(AppConfig):
    name = "healthcrm"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from healthcrm import roles, security, sessions  # noqa: F401 - they connect the sign-in receivers
        from healthcrm.db import grant_app_role

        # After every migrate: the app role gets DML on every table (never TRUNCATE), and each
        # role's permission group holds at least its default permissions.
        post_migrate.connect(grant_app_role, dispatch_uid="healthcrm.grant_app_role")
        post_migrate.connect(roles.sync_role_groups, dispatch_uid="healthcrm.sync_role_groups")
