# The Celery app must be imported with Django so that shared_task binds to it (and to Redis),
# not to Celery's default amqp broker.
from .celery import app as celery_app

__all__ = ("celery_app",)
