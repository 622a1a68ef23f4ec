from django.apps import AppConfig


class EngagementConfig(AppConfig):
    name = "engagement"
    verbose_name = "Engagement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from engagement import (  # noqa: F401 - connects the care-plan notice, the timeline source, the checks
            checks,
            receivers,
        )
