"""PostgreSQL roles, grants and row-level security.

`EnableRowLevelSecurity("model")` is the one line a migration adds for each new tenant table;
`MakeAppendOnly("table")` the one line for each audit table.
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


APPEND_ONLY_TRIGGER = "append_only"

# Refuses UPDATE and DELETE for every role, the owner included (the second wall behind the app
# role's missing grants). One change passes: the actor's foreign key set to NULL when the user is
# deleted (on_delete=SET_NULL), every other column unchanged: the actor's snapshot stays.
_REFUSE_CHANGE_FUNCTION = """
CREATE OR REPLACE FUNCTION healthcrm_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND to_jsonb(OLD) ? 'actor_id' AND (to_jsonb(NEW) ->> 'actor_id') IS NULL
       AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


class MakeAppendOnly(Operation):
    """Make an audit table append-only: a trigger refusing UPDATE and DELETE for everyone, and no
    UPDATE, DELETE or TRUNCATE for the app role (`grant_app_role` revokes them after every migrate).

    Takes a table name, not a model: third-party audit tables (auditlog's) get it too. TRUNCATE
    fires no row trigger, so the owner can still empty test databases.
    """

    reversible = True

    def __init__(self, table: str) -> None:
        self.table = table

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {"table": self.table}

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        table = schema_editor.quote_name(self.table)
        schema_editor.execute(_REFUSE_CHANGE_FUNCTION, params=None)
        schema_editor.execute(
            f"CREATE TRIGGER {APPEND_ONLY_TRIGGER} BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION healthcrm_refuse_change()"
        )
        revoke_append_only(schema_editor.connection.alias)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {APPEND_ONLY_TRIGGER} ON {schema_editor.quote_name(self.table)}")

    def describe(self) -> str:
        return f"Make {self.table} append-only"

    @property
    def migration_name_fragment(self) -> str:
        return f"append_only_{self.table.lower()}"


def append_only_tables(cursor: Any) -> list[tuple[str, bool]]:
    """(table, has an actor_id column) for every table with the append-only trigger."""
    cursor.execute(
        """
        SELECT c.relname, EXISTS (
            SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'actor_id' AND NOT a.attisdropped
        )
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE t.tgname = %s AND NOT t.tgisinternal AND n.nspname = 'public'
        ORDER BY 1
        """,
        [APPEND_ONLY_TRIGGER],
    )
    return cursor.fetchall()


def _app_role_to_grant(cursor: Any, using: str) -> sql.Identifier | None:
    """The app role, when the owner is connected and the role exists (else grants are no-ops)."""
    app_user = settings.APP_DATABASE_USER
    if connections[using].settings_dict["USER"] == app_user:
        return None
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app_user])
    return sql.Identifier(app_user) if cursor.fetchone() is not None else None


def revoke_append_only(using: str = "default") -> None:
    """Take UPDATE, DELETE and TRUNCATE on append-only tables from the app role (the first wall).

    UPDATE of `actor_id` alone stays granted, for on_delete=SET_NULL (the trigger checks the rest).
    """
    with connections[using].cursor() as cursor:
        role = _app_role_to_grant(cursor, using)
        if role is None:
            return
        for table, has_actor in append_only_tables(cursor):
            statements = [sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}")]
            if has_actor:
                statements.append(sql.SQL("GRANT UPDATE (actor_id) ON {} TO {}"))
            for statement in statements:
                cursor.execute(statement.format(sql.Identifier(table), role).as_string(cursor.connection))


def grant_app_role(sender: Any = None, using: str = "default", **kwargs: Any) -> None:
    """Give the application role DML (never TRUNCATE, which ignores RLS) on every table, except
    UPDATE and DELETE on append-only (audit) tables.

    Runs after every migrate as the owner; a no-op when the owner is the app role itself.
    """
    with connections[using].cursor() as cursor:
        role = _app_role_to_grant(cursor, using)
        if role is None:
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
    revoke_append_only(using)


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
