from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from patients.erasure.policy import register_erasure_policy

        # Facts are derived from the records and refreshed by jobs: no sign of a patient's activity
        # for the retention period (patients/erasure/).
        for model in self.get_models():
            register_erasure_policy(model._meta.label, activity=False)
