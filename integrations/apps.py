from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Celery's autodiscovery imports `<app>.tasks` only; the sub-packages' tasks register here,
        # in every process that loads the app registry (web, worker, beat).
        from integrations.devices import services  # noqa: F401 - registers the device-alert timeline source
        from integrations.fhir import tasks  # noqa: F401
        from integrations.hl7v2 import tasks as hl7v2_tasks  # noqa: F401
        from integrations.right_of_access import tasks as _right_of_access_tasks  # noqa: F401
        from patients.erasure.policy import register_erasure_policy

        # Clinical rows kept for the retention period when a patient is erased (patients/erasure/).
        register_erasure_policy("integrations.encounter", keep=("type_display", "reason_display"))
        register_erasure_policy("integrations.procedure", keep=("display",))
        register_erasure_policy("integrations.ehrcareplan", keep=("title", "description", "activities"))
