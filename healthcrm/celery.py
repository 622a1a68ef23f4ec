"""The Celery app: Redis broker, settings from Django's CELERY_* names, tasks autodiscovered."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthcrm.settings")

app = Celery("healthcrm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
