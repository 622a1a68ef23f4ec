"""Each tenancy wall alone: the application wall with the database wall out of the way.

Both walls answer "not yours" for the same rows, so a test run as the app role cannot tell which one
answered: a broken TenantManager or guarded fetch passes on row-level security alone. These tests
log in as the owner and lift FORCE on the tables they read, in a transaction rolled back at the end,
so only the application is left to keep organization B's rows out of organization A's work.

No module-level django_db mark: the test transaction (`db`, requested by the personas) must open
inside `rls_down`'s owner transaction, not before it as the app role.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.urls import reverse

from healthcrm.tenancy import organization_context
from patients.models import Patient
from tests import dbroles
from tests.factories import PatientFactory

WALL_TABLES = ("patients_patient",)  # the table the walls are tested on
# The body runs as the owner on purpose (rls_down); the harness's app-role check is told so. The
# teardown check still runs: rls_down logs back in as the app role before it.
pytestmark = pytest.mark.owner_login


@pytest.fixture
def rls_down(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The ORM's connection as the owner with row-level security not applying to it (superuser, or
    owner with FORCE lifted), inside one transaction rolled back at the end, data included.

    Requested before `db` (the personas' fixtures), so the test's own transaction nests inside it."""
    with django_db_blocker.unblock():
        dbroles.login_as_owner()
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    for table in WALL_TABLES:
                        cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
                yield
                transaction.set_rollback(True)
        finally:
            dbroles.login_as_app()


def _rows_seen_without_an_organization() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.current_organization', '', true)")
        cursor.execute("SELECT count(*) FROM patients_patient")
        return cursor.fetchone()[0]


def test_tenant_manager_alone_sees_only_the_current_organization(rls_down, org_a, org_b) -> None:
    with organization_context(org_a):
        mine = PatientFactory.create_batch(2)
    with organization_context(org_b):
        theirs = PatientFactory()
    # The database wall is down: with no organization set, every row is visible.
    assert _rows_seen_without_an_organization() == 3
    with organization_context(org_b):
        assert list(Patient.objects.values_list("pk", flat=True)) == [theirs.pk]
        assert not Patient.objects.filter(pk=mine[0].pk).exists()
        assert Patient.objects.all_organizations().count() == 3  # what the manager alone keeps out
    with organization_context(org_a):
        assert sorted(Patient.objects.values_list("pk", flat=True)) == sorted(p.pk for p in mine)


def test_guarded_fetch_alone_answers_404_for_another_organizations_patient(
    rls_down, client_for, nurse_user, org_a, org_b
) -> None:
    with organization_context(org_a):
        mine = PatientFactory()
    with organization_context(org_b):
        theirs = PatientFactory()
    assert _rows_seen_without_an_organization() == 2
    client = client_for(nurse_user)
    assert client.get(reverse("patients:detail", args=[mine.pk])).status_code == 200
    assert client.get(reverse("patients:detail", args=[theirs.pk])).status_code == 404
