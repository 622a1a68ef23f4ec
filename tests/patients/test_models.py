"""The new patient tables: ciphertext at rest, row-level security, redacted audit entries."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.db import connection
from django.utils import timezone

from healthcrm.crypto import REDACTED
from healthcrm.tenancy import organization_context
from patients import services
from patients.models import Allergy, Condition, Coverage, Immunization, Medication, Observation, PatientIdentifier

pytestmark = pytest.mark.django_db

SECRETS = (
    "Wilhelmina",
    "Thistlewood",
    "Fernbrook Lane",
    "Gooseberry",
    "Sistertown",
    "5550188",
    "Q-SECRET",
    "MEMBER-77",
    "GRP-99",
    "Peanut-dust",
    "wheezing",
    "LOT-4242",
    "Thunderclap",
    "Twice daily",
    "Frobnitz",
    "they/them",
    "nonbinary-ish",
    "Mariposa",
)


@pytest.fixture
def full_record(org_a, nurse_user):
    with organization_context(org_a), set_actor(nurse_user):
        patient = services.patient_create(
            mrn="Q-SECRET",
            given_name="Wilhelmina",
            family_name="Thistlewood",
            date_of_birth=date(1950, 5, 6),
            preferred_name="Mariposa",
            gender_identity="nonbinary-ish",
            pronouns="they/them",
            address_line1="12 Fernbrook Lane",
            address_line2="Gooseberry Court",
            address_city="Sistertown",
            address_state="IL",
            address_postal_code="60601",
            emergency_contact_name="Thunderclap Smith",
            emergency_contact_relationship="sibling",
            emergency_contact_phone="+13125550188",
        )
        services.patient_identifier_add(patient=patient, system="http://hospital.example/mrn", value="Q-SECRET")
        services.coverage_add(
            patient=patient,
            payer_name="Acme",
            member_id="MEMBER-77",
            group_number="GRP-99",
            valid_from=date(2025, 1, 1),
        )
        services.condition_add(
            patient=patient, code="44054006", display="Frobnitz syndrome", onset_date=date(2011, 3, 4)
        )
        services.medication_add(
            patient=patient,
            name="Frobnitz tablets",
            code="860975",
            dose_text="Frobnitz 500 mg",
            schedule_text="Twice daily",
        )
        services.allergy_add(patient=patient, substance_display="Peanut-dust", reaction="wheezing", criticality="high")
        services.observation_record(
            patient=patient, code="4548-4", value_quantity=Decimal("7.1"), effective_at=timezone.now()
        )
        Immunization.objects.create(
            patient=patient,
            vaccine_code="158",
            display="Influenza",
            occurrence_date=date(2025, 10, 1),
            lot_number="LOT-4242",
        )
    return patient


TABLES = {
    "patients_patient": "id",
    "patients_patientidentifier": "patient_id",
    "patients_coverage": "patient_id",
    "patients_condition": "patient_id",
    "patients_medication": "patient_id",
    "patients_allergy": "patient_id",
    "patients_observation": "patient_id",
    "patients_immunization": "patient_id",
}


def test_raw_sql_sees_no_plaintext_in_the_new_columns(org_a, full_record) -> None:
    dump = []
    with organization_context(org_a), connection.cursor() as cursor:
        for table, column in TABLES.items():
            cursor.execute(f"SELECT * FROM {table} WHERE {column} = %s", [full_record.pk])  # noqa: S608
            rows = cursor.fetchall()
            assert rows, table
            dump.append(" ".join(str(v) for row in rows for v in row))
    text = " ".join(dump)
    for clear in (*SECRETS, "2011-03-04", "60601", "sibling", "nonbinary"):
        assert clear not in text, clear
    assert "44054006" in text and "4548-4" in text  # codes are plain by design (see clinical.py)


def test_new_tables_are_invisible_without_an_organization(org_a, org_b, full_record) -> None:
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
            assert cursor.fetchone()[0] == 0, table
    with organization_context(org_b):
        for model in (PatientIdentifier, Coverage, Condition, Medication, Allergy, Observation, Immunization):
            assert model.objects.all_organizations().count() == 0


def test_audit_entries_redact_every_new_protected_field(org_a, nurse_user, full_record) -> None:
    with organization_context(org_a), set_actor(nurse_user):
        services.patient_update(
            patient=full_record, given_name="Gwendolyn", address_city="Otherville", preferred_language="es"
        )
    with organization_context(org_a):  # auditlog's table is under row-level security
        entries = list(LogEntry.objects.all())
        update = LogEntry.objects.get_for_object(full_record).filter(action=LogEntry.Action.UPDATE).get()
    assert len(entries) >= 9
    dump = json.dumps([[e.changes, e.object_repr, e.serialized_data] for e in entries])
    for clear in (*SECRETS, "Gwendolyn", "Otherville"):
        assert clear not in dump, clear
    for prefix_hash in full_record.name_search_digests:
        assert prefix_hash not in dump  # the name-search hashes are left out of the log
    assert update.changes_dict["given_name"] == [REDACTED, REDACTED]
    assert update.changes_dict["address_city"] == [REDACTED, REDACTED]
    assert update.changes_dict["preferred_language"] == ["en", "es"]  # not PHI: readable
    assert update.changes_dict["name_search_digests"] == [REDACTED, REDACTED]
    # The patient record's entries (the org's log also holds security events: the writer's membership).
    reprs = {e.object_repr.split(" #")[0] for e in entries if e.content_type.app_label == "patients"}
    assert {e.content_type.model for e in entries if e.content_type.app_label != "patients"} == {"membership"}
    assert reprs == {
        "Patient",
        "Identifier",
        "Coverage",
        "Condition",
        "Medication",
        "Allergy",
        "Observation",
        "Immunization",
    }
