"""Create the database and the application's login role, as the owner named in DATABASE_URL.

Idempotent; run before `migrate`. The app role is NOSUPERUSER NOBYPASSRLS and owns nothing, so
row-level security applies to it; migrate (as the owner) grants it DML on every table.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql

from healthcrm.db import ensure_app_role


class Command(BaseCommand):
    help = "Create the database (if missing) and the application database role (if missing)."

    def handle(self, *args: Any, **options: Any) -> None:
        db = settings.DATABASES["default"]
        owner = settings.DATABASE_OWNER
        if owner["USER"] == settings.APP_DATABASE_USER:
            raise CommandError(
                "DATABASE_URL must name the owner, not APP_DATABASE_USER: the app role must not own tables."
            )
        params = {
            "host": db["HOST"] or None,
            "port": db["PORT"] or None,
            "user": owner["USER"],
            "password": owner["PASSWORD"] or None,
        }
        try:
            with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=10, **params) as conn:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
                    if cursor.fetchone() is None:
                        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
                        self.stdout.write(f"Created database {db['NAME']}.")
                    created = ensure_app_role(cursor, settings.APP_DATABASE_USER, settings.APP_DATABASE_PASSWORD)
                    self.stdout.write(
                        f"{'Created' if created else 'Checked'} application role {settings.APP_DATABASE_USER}."
                    )
        except psycopg.OperationalError as exc:
            raise CommandError(f"Cannot reach PostgreSQL as the owner from DATABASE_URL: {exc}") from None
