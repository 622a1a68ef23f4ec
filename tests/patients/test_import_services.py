"""The public services other apps write patients' records through (FHIR imports, devices): the bulk
clinical-rows writer, one-row record writes, practitioner and appointment upserts, patient_match."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.core.exceptions import ValidationError

from healthcrm.crypto import REDACTED
from healthcrm.tenancy import organization_context
from patients.models import Appointment, Condition, Observation, Practitioner
from patients.scheduling.selectors import practitioner_get_by_npi
from patients.scheduling.services import (
    DOUBLE_BOOKED,
    PATIENT_BUSY,
    appointment_import_upsert,
    practitioner_import_upsert,
)
from patients.selectors import MR_TYPE_SYSTEM, patient_match
from patients.services import (
    ClinicalRowInvalid,
    clinical_row_create,
    clinical_row_update,
    clinical_rows_create,
    patient_identifier_add,
)
from tests.factories import PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

START = datetime(2031, 3, 3, 15, 0, tzinfo=UTC)


def _condition(patient, **fields) -> Condition:
    values = {"code": "44054006", "display": "Diabetes mellitus type 2", "clinical_status": "active"}
    return Condition(patient=patient, **{**values, **fields})


# -- clinical_rows_create -------------------------------------------------------------------------


def test_bulk_writer_inserts_the_rows_and_audits_each_with_phi_redacted(org_a, nurse_user) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
        rows = [_condition(patient, code=f"C{n}", display=f"Secret problem {n}") for n in range(3)]
        observation = Observation(
            patient=patient,
            code="8867-4",
            display="Heart rate",
            value_text="Secret note",
            effective_at=START,
            category="vital-signs",
        )
        written = clinical_rows_create(rows=[*rows, observation], actor=nurse_user)
        assert [row.pk is not None for row in written] == [True] * 4
        assert written[-1] is observation  # in the order given
        assert Condition.objects.filter(patient=patient).count() == 3
        entries = list(
            LogEntry.objects.filter(
                action=LogEntry.Action.CREATE, content_type__model__in=["condition", "observation"]
            ).select_related("content_type", "actor")
        )
    by_model = {(e.content_type.model, e.object_id): e for e in entries}
    assert len(entries) == 4
    for row in rows:
        entry = by_model[("condition", row.pk)]
        assert entry.changes_dict["display"][1] == REDACTED
        assert entry.changes_dict["code"][1] == row.code  # not PHI: readable
        assert entry.actor == nurse_user
        assert entry.additional_data == {"organization_id": org_a.pk}
        assert entry.object_repr == str(row)
    assert by_model[("observation", observation.pk)].changes_dict["value_text"][1] == REDACTED
    dump = json.dumps([[e.changes, e.object_repr] for e in entries])
    assert "Secret" not in dump


def test_bulk_writer_refuses_an_invalid_row_and_writes_nothing(org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
        rows = [_condition(patient), _condition(patient, clinical_status="not-a-status"), _condition(patient)]
        with pytest.raises(ClinicalRowInvalid) as refused:
            clinical_rows_create(rows=rows)
        assert refused.value.index == 1
        assert "clinical_status" in refused.value.error.message_dict
        assert "not-a-status" not in str(refused.value)  # the position, never the value
        assert not Condition.objects.filter(patient=patient).exists()
        assert not LogEntry.objects.filter(content_type__model="condition").exists()


def test_bulk_writer_refuses_a_blank_required_value(org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
        with pytest.raises(ClinicalRowInvalid) as refused:
            clinical_rows_create(rows=[_condition(patient, display="")])
        assert "display" in refused.value.error.message_dict
        assert not Condition.objects.exists()


def test_bulk_writer_takes_only_rows_of_a_patients_record(org_a) -> None:
    with organization_context(org_a), pytest.raises(TypeError):
        clinical_rows_create(rows=[Practitioner(display_name="Dr. Bulk")])


# -- one-row record writes ------------------------------------------------------------------------


def test_row_create_and_update_validate_and_are_audited_redacted(org_a, nurse_user) -> None:
    with organization_context(org_a), set_actor(nurse_user):
        patient = PatientFactory()
        with pytest.raises(ValidationError):
            clinical_row_create(row=_condition(patient, clinical_status="nope"))
        assert not Condition.objects.exists()
        condition = clinical_row_create(row=_condition(patient))
        with pytest.raises(ValidationError):
            clinical_row_update(row=condition, clinical_status="nope")
        clinical_row_update(row=Condition.objects.get(pk=condition.pk), display="Secret other")
        entries = list(LogEntry.objects.get_for_object(condition).order_by("timestamp"))
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert entries[1].changes_dict["display"] == [REDACTED, REDACTED]
    assert entries[1].actor == nurse_user


# -- patient_match --------------------------------------------------------------------------------


def test_patient_match_by_mrn_identifier_or_typed_mrn_never_by_name(org_a, org_b) -> None:
    with organization_context(org_b):
        PatientFactory(mrn="B-1")
    with organization_context(org_a):
        ada = PatientFactory(mrn="A-1", given_name="Ada", family_name="Lovelace")
        patient_identifier_add(patient=ada, system="urn:ehr", value="E-77")
        assert patient_match(identifiers=[], mrn="A-1") == ada
        assert patient_match(identifiers=[("", "A-1")]) == ada
        assert patient_match(identifiers=[("urn:other", "E-77"), ("urn:ehr", "E-77")]) == ada
        assert patient_match(identifiers=[(f"{MR_TYPE_SYSTEM}|MR", "A-1")]) == ada
        assert patient_match(identifiers=[("urn:other", "A-1")]) is None  # a system's id is not our MRN
        assert patient_match(identifiers=[("", "Ada"), ("", "Lovelace")]) is None
        assert patient_match(identifiers=[], mrn="B-1") is None  # another organization's


# -- practitioners and appointments from another system -------------------------------------------


def test_practitioner_upsert_creates_updates_and_keeps_npi_unique(org_a) -> None:
    with organization_context(org_a):
        practitioner = practitioner_import_upsert(display_name="Dr. Ehr", npi="1234567893", specialty="GP")
        assert practitioner_get_by_npi(npi="1234567893") == practitioner
        assert practitioner_get_by_npi(npi="") is None
        practitioner_import_upsert(practitioner=practitioner, display_name="Dr. Ehr Jr", npi="1234567893")
        practitioner.refresh_from_db()
        assert (practitioner.display_name, practitioner.specialty) == ("Dr. Ehr Jr", "")
        with pytest.raises(ValidationError):
            practitioner_import_upsert(display_name="Dr. Twin", npi="1234567893")
        assert Practitioner.objects.count() == 1


def test_appointment_upsert_remembers_its_source_and_gives_telehealth_a_link_once(org_a, settings) -> None:
    settings.TELEHEALTH_URL_TEMPLATE = "https://video.example/r/{room}"
    with organization_context(org_a):
        patient = PatientFactory()
        practitioner = PractitionerFactory()
        fields = {
            "patient_id": patient.pk,
            "practitioner_id": practitioner.pk,
            "starts_at": START,
            "ends_at": START + timedelta(minutes=30),
            "status": "booked",
            "kind": "telehealth",
            "reason": "Check-up",
        }
        appointment = appointment_import_upsert(source_system="https://ehr.example/fhir", source_id="a-1", **fields)
        url = appointment.telehealth_url
        assert url.startswith("https://video.example/r/")
        assert (appointment.source_system, appointment.source_id) == ("https://ehr.example/fhir", "a-1")
        moved = {**fields, "starts_at": START + timedelta(hours=1), "ends_at": START + timedelta(hours=2)}
        appointment_import_upsert(appointment=appointment, source_system="ignored", source_id="ignored", **moved)
        appointment.refresh_from_db()
        assert (appointment.telehealth_url, appointment.source_id) == (url, "a-1")
        assert appointment.starts_at == START + timedelta(hours=1)
        with pytest.raises(ValidationError) as double:
            appointment_import_upsert(source_system="https://ehr.example/fhir", source_id="a-2", **moved)
        # The same practitioner and the same patient: both double bookings are named.
        assert double.value.messages == [DOUBLE_BOOKED, PATIENT_BUSY]
        assert Appointment.objects.count() == 1


def test_appointment_upsert_validates_times(org_a) -> None:
    with organization_context(org_a):
        with pytest.raises(ValidationError):
            appointment_import_upsert(
                source_system="s",
                source_id="x",
                patient_id=PatientFactory(date_of_birth=date(1970, 1, 1)).pk,
                practitioner_id=PractitionerFactory().pk,
                starts_at=START,
                ends_at=START - timedelta(minutes=5),
                status="booked",
            )
        assert not Appointment.objects.exists()
