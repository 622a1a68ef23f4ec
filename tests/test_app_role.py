"""What the application's database role may do (healthcrm/db.py): DML on every table under RLS, no
TRUNCATE (it ignores RLS), no UPDATE/DELETE on audit tables, no role attribute that lifts RLS, owner
of nothing; and `ensure_app_role` refuses a role that is a superuser or has BYPASSRLS."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from psycopg import sql

from healthcrm.db import append_only_tables, ensure_app_role
from tests import dbroles

APP = settings.APP_DATABASE_USER


def _tables() -> dict[str, bool]:
    """Every ordinary table of the public schema: whether it has an organization column."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, EXISTS (
                SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped
            )
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
            """
        )
        return dict(cursor.fetchall())


def _privileges(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p "
            "WHERE has_table_privilege(%s, %s, p)",
            [APP, f'public."{table}"'],
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db
def test_the_app_role_has_dml_on_every_tenant_table_and_never_truncate() -> None:
    tables = _tables()
    with connection.cursor() as cursor:
        append_only = {table for table, _ in append_only_tables(cursor)}
    tenant = sorted(table for table, has_org in tables.items() if has_org)
    assert {"patients_patient", "patients_appointment", "compliance_accesslog"} <= set(tenant)
    expected = {
        table: {"SELECT", "INSERT"} if table in append_only else {"SELECT", "INSERT", "UPDATE", "DELETE"}
        for table in tenant
    }
    assert {table: _privileges(table) for table in tenant} == expected
    # No table at all, tenant or platform, may be truncated, referenced or given a trigger by it.
    extra = {table: found for table in tables if (found := _privileges(table) & {"TRUNCATE", "REFERENCES", "TRIGGER"})}
    assert extra == {}


@pytest.mark.django_db
def test_the_app_role_has_no_attribute_that_lifts_rls_and_owns_nothing() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication, rolcanlogin "
            "FROM pg_roles WHERE rolname = %s",
            [APP],
        )
        assert cursor.fetchone() == (False, False, False, False, False, True)
        # Not a member of another role (the owner's privileges would come with it).
        cursor.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s", [APP]
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            """
            SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
                 + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
                 + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
            FROM pg_roles r WHERE r.rolname = %s
            """,
            [APP],
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", [APP])
        assert cursor.fetchone()[0] is False


# -- ensure_app_role (db_bootstrap): a throwaway role per test, made and dropped as the owner -------


@pytest.fixture
def owner_cursor() -> Iterator[psycopg.Cursor]:
    with dbroles.owner_maintenance_cursor() as cursor:
        yield cursor


@pytest.fixture
def role_name(owner_cursor: psycopg.Cursor) -> Iterator[str]:
    # Roles are cluster-wide: a unique name, so parallel runs on the same server never meet.
    name = f"test_app_role_{secrets.token_hex(6)}"
    yield name
    owner_cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _attributes(cursor: psycopg.Cursor, name: str) -> tuple[bool, ...]:
    cursor.execute(
        "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = %s",
        [name],
    )
    return cursor.fetchone()


def test_ensure_app_role_creates_a_login_role_with_nothing_that_lifts_rls(owner_cursor, role_name) -> None:
    assert ensure_app_role(owner_cursor, role_name, "pw-1") is True
    assert _attributes(owner_cursor, role_name) == (False, False, False, False, True)
    assert ensure_app_role(owner_cursor, role_name, "pw-2") is False  # idempotent: checked, re-passworded


@pytest.mark.parametrize("attribute", ["SUPERUSER", "BYPASSRLS"])
def test_ensure_app_role_refuses_a_role_that_would_not_meet_rls(owner_cursor, role_name, attribute) -> None:
    owner_cursor.execute(sql.SQL("CREATE ROLE {} LOGIN " + attribute).format(sql.Identifier(role_name)))
    with pytest.raises(RuntimeError, match="superuser or has BYPASSRLS"):
        ensure_app_role(owner_cursor, role_name, "pw")
