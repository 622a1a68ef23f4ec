from django.apps import AppConfig


class StaffConfig(AppConfig):
    """The staff-facing shell: dashboard, sign-in's second factor, organization switch, the
    notification bell, and the demo-data command that orders every app's seeding step. The top
    floor: it may import every app; none imports it."""

    name = "staff"
    verbose_name = "Staff"
    default_auto_field = "django.db.models.BigAutoField"
