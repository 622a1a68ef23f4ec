"""Which PostgreSQL role the test process is logged in as.

The owner (from DATABASE_URL) creates, migrates, flushes and drops the test database; the tests
themselves, the live server and the Celery worker run as the application role, so row-level
security applies to everything they do, as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def owner_maintenance_cursor() -> Iterator[psycopg.Cursor]:
    """A cursor as the owner on the `postgres` maintenance database (autocommit): roles are
    cluster-wide, so they are made and dropped there, outside any test database."""
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
        yield cursor


def ensure_app_role_exists() -> None:
    with owner_maintenance_cursor() as cursor:
        ensure_app_role(cursor, settings.APP_DATABASE_USER, settings.APP_DATABASE_PASSWORD)


# -- The harness's own check (tests/conftest.py runs these around every test that uses the database) --


class NotTheAppRoleError(AssertionError):
    """A test, its live server or its worker ran (or was about to run) as another role than the app's."""


def check_logged_in_as_app(when: str) -> None:
    """Every alias is set to log in as the app role (no query: the database may be blocked)."""
    app = settings.APP_DATABASE_USER
    wrong = {
        alias: connections.settings[alias]["USER"]
        for alias in connections
        if connections.settings[alias]["USER"] != app or settings.DATABASES[alias]["USER"] != app
    }
    if wrong:
        raise NotTheAppRoleError(
            f"{when}: the test process logs in to PostgreSQL as {wrong}, not as the app role {app!r}: "
            "row-level security would not be tested (did a teardown log back in as the owner?)"
        )


def check_connected_as_app(when: str) -> None:
    """The test's own connection is the app role, for the session and the current role (no SET ROLE)."""
    check_logged_in_as_app(when)
    app = settings.APP_DATABASE_USER
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT session_user, current_user")
        roles = cursor.fetchone()
    if roles != (app, app):
        raise NotTheAppRoleError(f"{when}: the test's connection is (session, current) = {roles}, not {app!r}")


def check_other_sessions_are_app(when: str) -> None:
    """Every other client connected to the test database (live server threads, Celery workers) is the
    app role: only the owner's set-up and flush may use another, and they are not connected now."""
    with connections["default"].cursor() as cursor:
        # The activity view is a snapshot kept for the transaction (a test's, in most tests): renew it.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT DISTINCT usename, application_name FROM pg_stat_activity "
            # Other roles' rows show no backend_type to the app role; autovacuum's show no usename.
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND usename IS NOT NULL AND usename <> %s",
            [settings.APP_DATABASE_USER],
        )
        others = cursor.fetchall()
    if others:
        raise NotTheAppRoleError(
            f"{when}: other sessions on the test database run as {others}, not as the app role "
            f"{settings.APP_DATABASE_USER!r} (a live server or worker started as the owner?)"
        )
