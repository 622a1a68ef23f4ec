from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = "Patients"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Celery's autodiscovery imports `<app>.tasks` only; the retention job's tasks register
        # here, with the erasure policies of patients' own models.
        from patients.erasure import services, tasks  # noqa: F401
