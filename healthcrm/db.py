"""PostgreSQL roles, grants and row-level security.

`EnableRowLevelSecurity("model")` is the one line a migration adds for each new tenant table.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections
from django.db.migrations.operations.base import Operation
from psycopg import sql

TENANT_PREDICATE = "organization_id = NULLIF(current_setting('app.current_organization', true), '')::bigint"
POLICY_NAME = "tenant_isolation"


class EnableRowLevelSecurity(Operation):
    """Enable and force RLS on a tenant model's table with the organization policy.

    `NULLIF(..., '')`: once a session has used the setting, current_setting(..., true) returns ''
    rather than NULL, and ''::bigint would fail every query made with no organization set.
    `extra_using` widens who may read (not write): e.g. a user's own memberships.
    """

    reversible = True

    def __init__(self, model_name: str, extra_using: str = "") -> None:
        self.model_name = model_name
        self.extra_using = extra_using

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs = {"model_name": self.model_name}
        if self.extra_using:
            kwargs["extra_using"] = self.extra_using
        return self.__class__.__qualname__, [], kwargs

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def _table(self, app_label: str, state: Any) -> str:
        return state.apps.get_model(app_label, self.model_name)._meta.db_table

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        table = schema_editor.quote_name(self._table(app_label, to_state))
        using = TENANT_PREDICATE if not self.extra_using else f"({TENANT_PREDICATE}) OR ({self.extra_using})"
        schema_editor.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"CREATE POLICY {POLICY_NAME} ON {table} USING ({using}) WITH CHECK ({TENANT_PREDICATE})")

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        table = schema_editor.quote_name(self._table(app_label, from_state))
        schema_editor.execute(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {table}")
        schema_editor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")

    def describe(self) -> str:
        return f"Enable row-level security on {self.model_name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"rls_{self.model_name.lower()}"


def grant_app_role(sender: Any = None, using: str = "default", **kwargs: Any) -> None:
    """Give the application role DML (never TRUNCATE, which ignores RLS) on every table.

    Runs after every migrate as the owner; a no-op when the owner is the app role itself.
    """
    connection = connections[using]
    app_user = settings.APP_DATABASE_USER
    if connection.settings_dict["USER"] == app_user:
        return
    role = sql.Identifier(app_user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app_user])
        if cursor.fetchone() is None:
            return
        statements = [
            sql.SQL("GRANT USAGE ON SCHEMA public TO {}"),
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"),
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}"),
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"),
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {}"),
        ]
        for statement in statements:
            cursor.execute(statement.format(role).as_string(cursor.connection))


def ensure_app_role(cursor: Any, user: str, password: str) -> bool:
    """Create (or re-password) the application login role. Returns True when it was created."""
    cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [user])
    row = cursor.fetchone()
    if row is None:
        cursor.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD {}")
            .format(sql.Identifier(user), sql.Literal(password))
            .as_string(cursor.connection)
        )
        return True
    if row[0] or row[1]:
        raise RuntimeError(
            f"The database role {user!r} is a superuser or has BYPASSRLS: row-level security "
            "would not apply to it. Use another APP_DATABASE_USER."
        )
    cursor.execute(
        sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}")
        .format(sql.Identifier(user), sql.Literal(password))
        .as_string(cursor.connection)
    )
    return False
