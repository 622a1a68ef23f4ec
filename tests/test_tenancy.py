"""The two walls between organizations: the ORM (TenantManager) and PostgreSQL row-level security."""

from __future__ import annotations

import pytest
from django.db import connection

from healthcrm.models import Location, NoCrossTenantWriteError
from healthcrm.tenancy import NoOrganizationError, get_current_organization, organization_context
from patients.models import Patient
from tests import dbroles
from tests.factories import LocationFactory, PatientFactory

pytestmark = pytest.mark.django_db


def _tenant_tables() -> list[tuple[str, bool, bool]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
            FROM information_schema.columns col
            JOIN pg_class c ON c.relname = col.table_name
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = col.table_schema
            WHERE col.column_name = 'organization_id' AND col.table_schema = 'public' AND c.relkind = 'r'
            ORDER BY 1
            """
        )
        return cursor.fetchall()


def test_every_table_with_an_organization_column_has_rls_enabled_and_forced() -> None:
    tables = _tenant_tables()
    assert {"patients_patient", "healthcrm_location", "healthcrm_membership", "compliance_accesslog"} <= {
        name for name, _, _ in tables
    }
    missing = [name for name, enabled, forced in tables if not (enabled and forced)]
    assert missing == [], f"tables without ENABLE + FORCE ROW LEVEL SECURITY: {missing}"


def test_the_tests_run_as_an_unprivileged_app_role() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        user, superuser, bypass = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user")
        owned = cursor.fetchone()[0]
    assert user == dbroles.current_login() != dbroles.settings.DATABASE_OWNER["USER"]
    assert (superuser, bypass, owned) == (False, False, 0)


def test_app_role_with_no_organization_set_sees_no_rows(org_a, org_b) -> None:
    for org in (org_a, org_b):
        with organization_context(org):
            PatientFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM patients_patient")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT set_config('app.current_organization', %s, true)", [str(org_a.pk)])
        cursor.execute("SELECT count(*), count(DISTINCT organization_id) FROM patients_patient")
        assert cursor.fetchone() == (3, 1)
        cursor.execute("SELECT set_config('app.current_organization', '', true)")
        cursor.execute("SELECT count(*) FROM patients_patient")
        assert cursor.fetchone()[0] == 0


def test_rls_refuses_inserting_a_row_for_another_organization(org_a, org_b) -> None:
    from django.db import DatabaseError, transaction

    with organization_context(org_a), pytest.raises(DatabaseError, match="row-level security"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO healthcrm_location (organization_id, name, address, phone, timezone, is_active,"
                " created_at, updated_at) VALUES (%s, 'x', '', '', '', true, now(), now())",
                [org_b.pk],
            )


def test_default_manager_refuses_to_query_without_an_organization(org_a) -> None:
    assert get_current_organization() is None
    with pytest.raises(NoOrganizationError, match="No organization is current"):
        list(Patient.objects.all())
    with pytest.raises(NoOrganizationError):
        Location.objects.create(name="Nowhere")


def test_default_manager_sees_only_the_current_organization(org_a, org_b) -> None:
    with organization_context(org_a):
        mine = PatientFactory.create_batch(2)
    with organization_context(org_b):
        theirs = PatientFactory()
        assert list(Patient.objects.values_list("pk", flat=True)) == [theirs.pk]
        assert not Patient.objects.filter(pk=mine[0].pk).exists()
    with organization_context(org_a):
        assert sorted(Patient.objects.values_list("pk", flat=True)) == sorted(p.pk for p in mine)


def test_explicit_all_organizations_call_still_meets_rls(org_a, org_b) -> None:
    for org in (org_a, org_b):
        with organization_context(org):
            PatientFactory()
    with organization_context(org_a):
        # The application filter is skipped, the database wall is not.
        assert Patient.objects.all_organizations().count() == 1


def test_saving_a_row_of_another_organization_is_refused(org_a, org_b) -> None:
    with organization_context(org_a):
        site = LocationFactory()
    with organization_context(org_b):
        site.name = "Moved"
        with pytest.raises(NoCrossTenantWriteError):
            site.save()
        with pytest.raises(NoCrossTenantWriteError):
            Location.objects.bulk_create([Location(organization=org_a, name="Sneaky")])


def test_organization_context_restores_the_previous_organization(org_a, org_b) -> None:
    with organization_context(org_a):
        with organization_context(org_b):
            assert get_current_organization() == org_b
        assert get_current_organization() == org_a
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('app.current_organization', true)")
            assert cursor.fetchone()[0] == str(org_a.pk)
    assert get_current_organization() is None


def test_per_organization_uniqueness_allows_the_same_mrn_in_two_organizations(org_a, org_b) -> None:
    from django.core.exceptions import ValidationError

    from patients.services import patient_create

    fields = {"mrn": "A-1", "given_name": "Ada", "family_name": "Lovelace", "date_of_birth": "1980-01-02"}
    for org in (org_a, org_b):
        with organization_context(org):
            patient_create(**fields)
    with organization_context(org_a), pytest.raises(ValidationError, match="MRN already exists"):
        patient_create(**{**fields, "mrn": " a-1 "})


def test_a_failed_query_inside_the_contexts_surfaces_as_itself(org_a) -> None:
    """A view's database error is turned into a 500 response inside the request's contexts (Django's
    handler catches it), so the contexts exit normally on a transaction marked for rollback. Leaving
    them must run no query: that replaced the real error with TransactionManagementError."""
    from django.db import DataError, transaction

    from healthcrm.tenancy import user_context

    with user_context(1), organization_context(org_a):
        try:
            with transaction.atomic(savepoint=False):
                Location.objects.filter(name="\x00").exists()  # PostgreSQL refuses NUL in text
        except DataError:
            pass  # as Django's exception handler does: the response is a 500, the block continues
        assert connection.needs_rollback
        transaction.set_rollback(True)
    assert get_current_organization() is None
