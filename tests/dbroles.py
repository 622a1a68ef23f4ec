"""Which PostgreSQL role the test process is logged in as.

The owner (from DATABASE_URL) creates, migrates, flushes and drops the test database; the tests
themselves, the live server and the Celery worker run as the application role, so row-level
security applies to everything they do, as in production.
"""

from __future__ import annotations

import psycopg
from django.conf import settings
from django.db import connections

from healthcrm.db import ensure_app_role


def login_as(credentials: dict[str, str]) -> None:
    for connection in connections.all(initialized_only=True):
        connection.close()
    for alias in connections:
        connections.settings[alias].update(credentials)
        settings.DATABASES[alias].update(credentials)


def login_as_owner() -> None:
    login_as(settings.DATABASE_OWNER)


def login_as_app() -> None:
    login_as(settings.DATABASE_APP)


def current_login() -> str:
    return settings.DATABASES["default"]["USER"]


def ensure_app_role_exists() -> None:
    db = settings.DATABASES["default"]
    owner = settings.DATABASE_OWNER
    with (
        psycopg.connect(
            dbname="postgres",
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            user=owner["USER"],
            password=owner["PASSWORD"] or None,
            autocommit=True,
        ) as conn,
        conn.cursor() as cursor,
    ):
        ensure_app_role(cursor, settings.APP_DATABASE_USER, settings.APP_DATABASE_PASSWORD)
