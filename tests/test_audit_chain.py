"""The audit trail nobody can rewrite: append-only for the app role (grants and a trigger), under
row-level security, and hash-chained per organization so that `verify_audit` names any tampering."""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import psycopg
import pytest
from auditlog.models import LogEntry
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from compliance.chain import GENESIS, audit_chain_verify, link_hash
from compliance.models import AccessAction, AccessLog, AuditLink
from healthcrm.tenancy import organization_context
from patients.services import patient_create, patient_update
from tests.factories import OrganizationFactory, PatientFactory

AUDIT_TABLES = ("compliance_accesslog", "auditlog_logentry", "compliance_auditlink")


def _access(organization, count: int = 1) -> list[AccessLog]:
    with organization_context(organization):
        return [
            AccessLog.objects.create(
                actor_label="nurse@north.example",
                action=AccessAction.VIEW,
                view_name="patients:detail",
                object_type="patients.patient",
                object_ids=[str(i)],
                ip_address="10.0.0.7",
            )
            for i in range(count)
        ]


@contextmanager
def _owner(organization=None) -> Iterator[psycopg.Cursor]:
    """A separate connection as the database owner, one transaction, committed on exit."""
    db = connection.settings_dict
    owner = settings.DATABASE_OWNER
    with (
        psycopg.connect(
            dbname=db["NAME"],
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            user=owner["USER"],
            password=owner["PASSWORD"] or None,
        ) as conn,
        conn.cursor() as cursor,
    ):
        if organization is not None:
            cursor.execute("SELECT set_config('app.current_organization', %s, true)", [str(organization.pk)])
        yield cursor


@contextmanager
def _tampering(table: str, organization) -> Iterator[psycopg.Cursor]:
    """The owner, with the append-only trigger of `table` off for one transaction."""
    with _owner(organization) as cursor:
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER append_only")
        yield cursor
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER append_only")


def _app_sql(organization, statement: str) -> int:
    """Run one statement as the app role with the organization set; the first column of its row, or the row count."""
    with organization_context(organization), connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchone()[0] if statement.startswith("SELECT") else cursor.rowcount


def _verify(*args: str) -> tuple[str, str]:
    """(output, error) of `manage.py verify_audit`; error is '' when it exits 0."""
    out = StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), ""


def _links(organization) -> list[AuditLink]:
    with organization_context(organization):
        return list(AuditLink.objects.order_by("seq"))


# -- Wall 1: the app role has no UPDATE, DELETE or TRUNCATE on audit tables --------------------


@pytest.mark.django_db
def test_app_role_holds_no_update_delete_or_truncate_on_audit_tables() -> None:
    with connection.cursor() as cursor:
        for table in AUDIT_TABLES:
            for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
                cursor.execute("SELECT has_table_privilege(current_user, %s, %s)", [table, privilege])
                assert cursor.fetchone()[0] is False, (table, privilege)
            cursor.execute("SELECT has_table_privilege(current_user, %s, 'INSERT')", [table])
            assert cursor.fetchone()[0] is True, table


@pytest.mark.django_db(transaction=True)
def test_each_wall_holds_with_the_other_down(org_a) -> None:
    _access(org_a)
    with organization_context(org_a):
        patient_create(mrn="M-1", given_name="Ada", family_name="Byron", date_of_birth="1950-01-02")
    role = settings.APP_DATABASE_USER
    # The grants, with the trigger off.
    with _owner() as cursor:
        for table in AUDIT_TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER append_only")
    try:
        for table in AUDIT_TABLES:
            assert _app_sql(org_a, f"SELECT count(*) FROM {table}") > 0, table  # noqa: S608 - our own table names
            for change in (f"UPDATE {table} SET id = id + 1000000", f"DELETE FROM {table}"):  # noqa: S608
                with pytest.raises(DatabaseError, match=f"permission denied for table {table}"):
                    _app_sql(org_a, change)
    finally:
        with _owner() as cursor:
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER append_only")
    # The trigger, with the grants back.
    with _owner() as cursor:
        for table in AUDIT_TABLES:
            cursor.execute(f'GRANT UPDATE, DELETE ON {table} TO "{role}"')
    try:
        for table in AUDIT_TABLES:
            with pytest.raises(DatabaseError, match=f"append-only: UPDATE on {table} refused"):
                _app_sql(org_a, f"UPDATE {table} SET id = id + 1000000")  # noqa: S608
            with pytest.raises(DatabaseError, match=f"append-only: DELETE on {table} refused"):
                _app_sql(org_a, f"DELETE FROM {table}")  # noqa: S608
    finally:
        with _owner() as cursor:
            for table in AUDIT_TABLES:
                cursor.execute(f'REVOKE UPDATE, DELETE ON {table} FROM "{role}"')
                if table != "compliance_auditlink":
                    cursor.execute(f'GRANT UPDATE (actor_id) ON {table} TO "{role}"')
    with _owner(org_a) as cursor:  # the owner meets the trigger too
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            cursor.execute("DELETE FROM compliance_accesslog")
    assert audit_chain_verify(org_a).intact


@pytest.mark.django_db
def test_deleting_a_user_keeps_their_audit_rows_with_the_actor_snapshot(org_a, nurse_user) -> None:
    with organization_context(org_a):
        row = AccessLog.objects.create(actor=nurse_user, actor_label=nurse_user.username, action="view", view_name="x")
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            AccessLog.objects.filter(pk=row.pk).update(actor=None, actor_label="someone else")
        nurse_user.delete()
        row.refresh_from_db()
    assert row.actor_id is None and row.actor_label == "nurse@north.example"


# -- Row-level security on auditlog's table -----------------------------------------------------


@pytest.mark.django_db
def test_change_log_entries_are_under_row_level_security(org_a, org_b) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'auditlog_logentry'")
        assert cursor.fetchone() == (True, True)
    with organization_context(org_a):
        patient = PatientFactory()
        assert LogEntry.objects.get_for_object(patient).count() == 1
    with organization_context(org_b):
        assert not LogEntry.objects.exists()
    # No organization set: no tenant's entries, only platform ones (organizations and users created).
    visible = list(LogEntry.objects.all())
    assert {e.content_type.model for e in visible} <= {"organization", "user"}
    assert not [e for e in visible if (e.additional_data or {}).get("organization_id")]
    with pytest.raises(DatabaseError, match="row-level security"), organization_context(org_b):
        LogEntry.objects.create(
            content_type_id=1, object_pk="1", object_repr="x", action=0, additional_data={"organization_id": org_a.pk}
        )


@pytest.mark.django_db
def test_the_canonical_content_covers_every_column_but_the_actor_link() -> None:
    excluded = {"compliance_accesslog": {"actor_id", "updated_at"}, "auditlog_logentry": {"actor_id"}}
    with connection.cursor() as cursor:
        for table, function in (
            ("compliance_accesslog", "audit_content_access"),
            ("auditlog_logentry", "audit_content_write"),
        ):
            cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s", [table])
            columns = {name for (name,) in cursor.fetchall()}
            cursor.execute(f"SELECT {function}(NULL::{table})::jsonb")
            covered = set(json.loads(cursor.fetchone()[0]))
            assert covered == columns - excluded[table], table


# -- The chain ----------------------------------------------------------------------------------


def _commit_point() -> None:
    """Run the deferred chain triggers now, as a commit would (the test's transaction never commits)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.django_db
def test_a_clean_chain_verifies_and_each_organization_has_its_own(org_a, org_b) -> None:
    _access(org_a, 3)
    with organization_context(org_a):
        patient = patient_create(mrn="M-1", given_name="Ada", family_name="Byron", date_of_birth="1950-01-02")
        patient_update(patient=patient, given_name="Augusta")
    _access(org_b, 2)
    _commit_point()
    north, lake = _links(org_a), _links(org_b)
    assert [link.seq for link in north] == [1, 2, 3, 4, 5]
    assert [link.source for link in north] == ["access"] * 3 + ["write"] * 2
    assert [link.seq for link in lake] == [1, 2]
    for links, org in ((north, org_a), (lake, org_b)):
        previous = GENESIS
        for link in links:
            assert link.prev_hash == previous
            assert link.hash == link_hash(
                prev_hash=previous,
                organization_id=org.pk,
                seq=link.seq,
                source=link.source,
                source_id=link.source_id,
                content_hash=link.content_hash,
            )
            previous = link.hash
    output, error = _verify()
    assert error == ""
    assert "north: 5 rows checked, chain intact" in output
    assert "lake: 2 rows checked, chain intact" in output


@pytest.mark.django_db
def test_bulk_written_entries_are_chained_in_one_commit(org_a) -> None:
    from django.contrib.contenttypes.models import ContentType

    with organization_context(org_a):
        patients = PatientFactory.create_batch(3)
        content_type = ContentType.objects.get_for_model(patients[0])
        LogEntry.objects.bulk_create(
            LogEntry(
                content_type=content_type,
                object_pk=str(patients[i % 3].pk),
                object_id=patients[i % 3].pk,
                object_repr="Patient",
                action=LogEntry.Action.UPDATE,
                changes={},
                additional_data={"organization_id": org_a.pk},
            )
            for i in range(300)
        )
    _commit_point()
    report = audit_chain_verify(org_a)
    assert report.intact and report.checked == 303


def _logentry_ids(organization) -> list[int]:
    with organization_context(organization):
        return list(LogEntry.objects.order_by("pk").values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
def test_every_kind_of_tampering_by_the_owner_is_named(org_a, org_b) -> None:
    """One organization per kind of tampering (one database flush for all of them)."""
    orgs = {
        name: OrganizationFactory(slug=name, name=name)
        for name in ("c-deleted", "d-entry", "e-link", "f-forged", "g-around")
    }
    altered = _access(org_a, 3)
    _access(org_b, 2)
    deleted = _access(orgs["c-deleted"], 3)
    with organization_context(orgs["d-entry"]):
        patient = patient_create(mrn="M-1", given_name="Ada", family_name="Byron", date_of_birth="1950-01-02")
        patient_update(patient=patient, is_active=False)
    entries = _logentry_ids(orgs["d-entry"])
    _access(orgs["e-link"], 4)
    _access(orgs["f-forged"], 2)
    _access(orgs["g-around"], 2)
    assert _verify()[1] == ""

    with _tampering("compliance_accesslog", org_a) as cursor:
        cursor.execute("UPDATE compliance_accesslog SET object_ids = '{99}' WHERE id = %s", [altered[1].pk])
    with _tampering("compliance_accesslog", orgs["c-deleted"]) as cursor:
        cursor.execute("DELETE FROM compliance_accesslog WHERE id = %s", [deleted[2].pk])
    with _tampering("auditlog_logentry", orgs["d-entry"]) as cursor:
        cursor.execute("UPDATE auditlog_logentry SET changes = '{}' WHERE id = %s", [entries[1]])
    with _tampering("compliance_auditlink", orgs["e-link"]) as cursor:
        cursor.execute("DELETE FROM compliance_auditlink WHERE organization_id = %s AND seq = 2", [orgs["e-link"].pk])
    with _tampering("compliance_auditlink", orgs["f-forged"]) as cursor:
        # A made-up content hash (to match an edited row): the link's own hash gives it away.
        cursor.execute(
            "UPDATE compliance_auditlink SET content_hash = repeat('a', 64) WHERE organization_id = %s AND seq = 2",
            [orgs["f-forged"].pk],
        )
    with _owner(orgs["g-around"]) as cursor:
        cursor.execute("ALTER TABLE compliance_accesslog DISABLE TRIGGER audit_chain")
        cursor.execute(
            "INSERT INTO compliance_accesslog (organization_id, created_at, updated_at, actor_label, action,"
            " view_name, object_type, object_ids, search_fields, search_fingerprint)"
            " VALUES (%s, now(), now(), 'x', 'view', 'x', '', '{}', '{}', '') RETURNING id",
            [orgs["g-around"].pk],
        )
        (sneaked,) = cursor.fetchone()
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # Django's deferred foreign-key checks, now
        cursor.execute("ALTER TABLE compliance_accesslog ENABLE TRIGGER audit_chain")

    output, error = _verify()
    assert output.splitlines() == [
        f"c-deleted: 2 rows checked, BROKEN: access log row {deleted[2].pk} (link 3) is missing (deleted)",
        f"d-entry: 1 rows checked, BROKEN: change log entry {entries[1]} (link 2) was altered after it was written",
        "e-link: 1 rows checked, BROKEN: link 2 missing: the chain jumps from link 1 to link 3",
        "f-forged: 1 rows checked, BROKEN: link 2 was altered (its hash does not match)",
        f"g-around: 2 rows checked, BROKEN: access log row {sneaked} is not in the chain (written around it)",
        "lake: 2 rows checked, chain intact",
        f"north: 1 rows checked, BROKEN: access log row {altered[1].pk} (link 2) was altered after it was written",
    ]
    assert error == "The audit chain is broken for: c-deleted, d-entry, e-link, f-forged, g-around, north."
    assert _verify("--organization", "lake") == ("lake: 2 rows checked, chain intact\n", "")
    with pytest.raises(CommandError, match="No organization with the slug 'nowhere'"):
        call_command("verify_audit", "--organization", "nowhere")


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain(org_a) -> None:
    writers = 4
    inserted = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with organization_context(org_a):
                AccessLog.objects.create(actor_label="x", action="view", view_name="x")
                inserted.wait(timeout=30)  # every transaction has its row; now all commit at once
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    for _round in range(3):
        threads = [threading.Thread(target=write) for _ in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert [link.seq for link in _links(org_a)] == list(range(1, 3 * writers + 1))
    assert audit_chain_verify(org_a).intact


# -- Access-log records: (type, id) pairs, chained without changing older rows' hashes ------------

_MIGRATION_0002 = importlib.import_module("compliance.migrations.0002_audit_chain")
_MIGRATION_0003 = importlib.import_module("compliance.migrations.0003_accesslog_records")


def test_the_content_before_records_is_the_one_0002_hashed() -> None:
    squeeze = " ".join
    assert squeeze(_MIGRATION_0003._BASE.split()) in squeeze(_MIGRATION_0002.CONTENT_FUNCTIONS.split())


@pytest.mark.django_db(transaction=True)  # the owner alters the table from another connection
def test_rows_without_records_hash_as_before_and_records_are_chained(org_a) -> None:
    older = _access(org_a, 2)  # rows as written before records existed: records empty
    with organization_context(org_a):
        newer = AccessLog.objects.create(
            actor_label="nurse@north.example",
            action=AccessAction.VIEW,
            view_name="patients:appointment_detail",
            object_type="patients.appointment",
            object_ids=["28"],
            records=["patients.appointment:28", "patients.patient:3"],
        )
        with connection.cursor() as cursor:
            for row in older:
                old_content = "jsonb_build_object(" + _MIGRATION_0003._BASE + ")::text"
                cursor.execute(
                    f"SELECT audit_content_access(r), {old_content} FROM compliance_accesslog r WHERE r.id = %s",  # noqa: S608
                    [row.pk],
                )
                now, before = cursor.fetchone()
                assert now == before  # so the hashes stored for older rows still verify
            content = "SELECT audit_content_access(r)::jsonb FROM compliance_accesslog r WHERE id = %s"
            cursor.execute(content, [newer.pk])
            assert json.loads(cursor.fetchone()[0])["records"] == ["patients.appointment:28", "patients.patient:3"]
    _commit_point()
    assert _verify("--organization", org_a.slug) == (f"{org_a.slug}: 3 rows checked, chain intact\n", "")
    with _tampering("compliance_accesslog", org_a) as cursor:
        cursor.execute("UPDATE compliance_accesslog SET records = '{patients.patient:28}' WHERE id = %s", [newer.pk])
    output, _ = _verify("--organization", org_a.slug)
    assert f"access log row {newer.pk} (link 3) was altered after it was written" in output
