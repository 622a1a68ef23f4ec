from django.apps import AppConfig


class EngagementConfig(AppConfig):
    name = "engagement"
    verbose_name = "Engagement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from engagement.roles import sync_engagement_permissions

        post_migrate.connect(sync_engagement_permissions, dispatch_uid="engagement.sync_permissions")
