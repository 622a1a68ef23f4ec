"""Name-prefix search under row-level security: kept in step by the trigger, and served by an index."""

from __future__ import annotations

import pytest
from django.db import connection

from healthcrm.tenancy import organization_context
from patients.models import PatientNamePrefix
from patients.selectors import patient_list
from patients.services import patient_update
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def test_renaming_a_patient_moves_its_prefix_rows(org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory(given_name="Wilhelmina", family_name="Oakes")
        assert list(patient_list(query="wilh")) == [patient]
        patient_update(patient=patient, given_name="Bernadette")
        assert list(patient_list(query="wilh")) == []
        assert list(patient_list(query="bern")) == [patient]
        # One row per name-search hash, no duplicates.
        assert PatientNamePrefix.objects.filter(patient=patient).count() == len(set(patient.name_search_digests))


def test_bulk_created_patients_are_findable_by_prefix(org_a, org_b) -> None:
    from patients.models import Patient

    with organization_context(org_a):
        Patient.objects.bulk_create([PatientFactory.build(family_name=f"Quimby{n}") for n in range(3)])
        assert patient_list(query="quim").count() == 3
    with organization_context(org_b):
        assert patient_list(query="quim").count() == 0


def test_prefix_search_uses_an_index_under_rls(org_a) -> None:
    """Array containment is not leakproof, so under RLS its GIN index is never used; equality is."""
    with organization_context(org_a):
        PatientFactory.create_batch(30)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # a small table: ask for the index if usable
            sql, params = patient_list(query="abcde").query.sql_with_params()
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "patient_prefix_lookup" in plan, plan
