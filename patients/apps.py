from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = "Patients"
    default_auto_field = "django.db.models.BigAutoField"
