"""The processing core on messages shaped after HL7 v2.5.1's examples: each mapping, exactly-once
under a resend, AE naming the field with nothing written, AR for unknown senders and types, the
out-of-order hold, and the raw message kept encrypted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from healthcrm.tenancy import organization_context
from integrations.hl7v2.parsing import ack_code, ack_errors
from integrations.hl7v2.processing import held_messages_expire, raw_messages_purge
from integrations.models import FhirResourceLink, Hl7HeldMessage, Hl7Message
from patients.models import Appointment, Patient, PatientIdentifier, PatientMerge, Practitioner
from tests.factories import PractitionerFactory
from tests.integrations.hl7v2.messages import a40, adt, pid, siu

pytestmark = pytest.mark.django_db


def _patients(org: Any) -> list[Patient]:
    with organization_context(org):
        return list(Patient.objects.order_by("pk"))


def _log(org: Any, control_id: str) -> Hl7Message:
    with organization_context(org):
        return Hl7Message.objects.get(control_id=control_id)


# -- ADT -------------------------------------------------------------------------------------------


def test_a04_registers_the_patient_with_every_pid_field(send: Any, org_a: Any) -> None:
    received = send(adt("A04", "MSG0001"))

    assert ack_code(received.ack) == "AA"
    assert "MSA|AA|MSG0001" in received.ack
    (patient,) = _patients(org_a)
    assert (patient.mrn, patient.given_name, patient.family_name) == ("191919", "JAMIE", "TESTPERSON")
    assert patient.date_of_birth.isoformat() == "1956-01-29"
    assert patient.sex == "female"
    assert (patient.address_line1, patient.address_line2) == ("171 ELM ST", "APT 2")
    assert patient.address_city == "SPRINGFIELD"
    assert (patient.address_state, patient.address_postal_code, patient.address_country) == ("IL", "62704", "US")
    assert (patient.phone_home, patient.phone_mobile) == ("+12175550142", "+12175550199")
    assert patient.email == "jamie@example.org"
    assert patient.preferred_language == "es"
    with organization_context(org_a):
        systems = sorted(PatientIdentifier.objects.filter(patient=patient).values_list("system", flat=True))
    # Assigning authorities kept; the social security number (type SS) is not.
    assert systems == ["urn:hl7v2:GENHOS:MR", "urn:hl7v2:OTHERPM:PI"]
    log = _log(org_a, "MSG0001")
    assert (log.message_type, log.outcome, log.state) == ("ADT^A04", "AA", "applied")


@pytest.mark.parametrize("trigger", ["A08", "A31"])
def test_update_events_change_the_matched_patient(send: Any, org_a: Any, trigger: str) -> None:
    send(adt("A04", "MSG0001"))
    moved = pid(address="9 OAK AVE^^DECATUR^IL^62521^USA", phones="^PRN^CP^^1^217^5550111", language="ENG")
    received = send(adt(trigger, "MSG0002", pid_segment=moved))

    assert ack_code(received.ack) == "AA"
    (patient,) = _patients(org_a)
    assert (patient.address_line1, patient.address_city) == ("9 OAK AVE", "DECATUR")
    assert patient.phone_mobile == "+12175550111"
    assert patient.preferred_language == "en"


def test_a28_adds_a_person_and_a_second_identifier_matches_them_later(send: Any, org_a: Any) -> None:
    send(adt("A28", "MSG0001", pid_segment=pid(mrn="555001", extra_ids="~X9^^^OTHERPM^PI")))
    # The PM system later sends only the other system's identifier: the same person.
    send(adt("A31", "MSG0002", pid_segment=pid(mrn="", extra_ids="X9^^^OTHERPM^PI", given="JAMIE-LEE")))

    (patient,) = _patients(org_a)
    assert patient.given_name == "JAMIE-LEE"


def test_a_bad_birth_date_is_an_ae_naming_pid_7_and_writes_nothing(send: Any, org_a: Any) -> None:
    received = send(adt("A04", "MSG0001", pid_segment=pid(birth="19561345")))

    assert ack_code(received.ack) == "AE"
    (error,) = ack_errors(received.ack)
    assert error["severity"] == "E"
    assert error["text"].startswith("PID-7:")
    assert "ERR||PID^1^7|" in received.ack
    assert _patients(org_a) == []
    log = _log(org_a, "MSG0001")
    assert (log.outcome, log.state, log.error_field) == ("AE", "error", "PID-7")
    assert "19561345" not in log.error_reason and "19561345" not in received.ack


def test_a_missing_name_is_an_ae_naming_pid_5(send: Any, org_a: Any) -> None:
    received = send(adt("A04", "MSG0001", pid_segment=pid(given="")))

    assert ack_code(received.ack) == "AE"
    assert _log(org_a, "MSG0001").error_field == "PID-5"
    assert _patients(org_a) == []


def test_an_invalid_phone_is_left_out_with_a_warning(send: Any, org_a: Any) -> None:
    received = send(adt("A04", "MSG0001", pid_segment=pid(phones="^PRN^CP^^^^12")))

    assert ack_code(received.ack) == "AA"
    assert [e["severity"] for e in ack_errors(received.ack)] == ["W"]
    (patient,) = _patients(org_a)
    assert patient.phone_mobile == ""


def test_a40_merges_the_mrg_patient_into_the_pid_patient(send: Any, org_a: Any) -> None:
    send(adt("A04", "MSG0001", pid_segment=pid(mrn="1001", extra_ids="")))
    send(adt("A04", "MSG0002", pid_segment=pid(mrn="1002", extra_ids="", given="JAMES")))

    received = send(a40("MSG0003", survivor="1001", duplicate="1002"))

    assert ack_code(received.ack) == "AA"
    survivor, duplicate = _patients(org_a)
    assert duplicate.merged_into_id == survivor.pk and not duplicate.is_active
    with organization_context(org_a):
        assert PatientMerge.objects.filter(survivor=survivor, duplicate=duplicate).count() == 1
    # The same merge sent again under a new control id: already done, accepted, nothing more.
    again = send(a40("MSG0004", survivor="1001", duplicate="1002"))
    assert ack_code(again.ack) == "AA"
    with organization_context(org_a):
        assert PatientMerge.objects.count() == 1


def test_a40_with_an_unknown_duplicate_is_an_ae_naming_mrg_1(send: Any, org_a: Any) -> None:
    send(adt("A04", "MSG0001", pid_segment=pid(mrn="1001", extra_ids="")))

    received = send(a40("MSG0002", survivor="1001", duplicate="4040"))

    assert ack_code(received.ack) == "AE"
    assert _log(org_a, "MSG0002").error_field == "MRG-1"


# -- Exactly once, refusals ------------------------------------------------------------------------


def test_a_resent_control_id_gets_the_same_ack_and_changes_nothing(send: Any, org_a: Any) -> None:
    first = send(adt("A04", "MSG0001"))
    changed = adt("A08", "MSG0001", pid_segment=pid(given="SOMEONE"))

    again = send(changed)

    assert again.ack == first.ack
    assert again.duplicate
    (patient,) = _patients(org_a)
    assert patient.given_name == "JAMIE"
    with organization_context(org_a):
        assert Hl7Message.objects.count() == 1


def test_a_resent_message_that_failed_gets_its_ae_again(send: Any, org_a: Any) -> None:
    first = send(adt("A04", "MSG0001", pid_segment=pid(birth="bad")))
    again = send(adt("A04", "MSG0001", pid_segment=pid(birth="bad")))

    assert again.ack == first.ack and ack_code(again.ack) == "AE"


def test_an_unregistered_sender_is_refused_and_nothing_is_written(send: Any, org_a: Any) -> None:
    received = send(adt("A04", "MSG0001", facility="ELSEWHERE"))

    assert ack_code(received.ack) == "AR"
    assert _patients(org_a) == []
    with organization_context(org_a):
        assert Hl7Message.objects.count() == 0


def test_a_wrong_shared_secret_is_refused_like_an_unknown_sender(send: Any, org_a: Any) -> None:
    received = send(adt("A04", "MSG0001", secret="guess"))

    assert ack_code(received.ack) == "AR"
    assert _patients(org_a) == []


def test_a_sender_of_another_organization_writes_there_only(send: Any, sender: Any, org_a: Any, org_b: Any) -> None:
    from integrations.hl7v2.services import hl7_sender_register

    with organization_context(org_b):
        hl7_sender_register(name="South PM", sending_facility="SOUTH", sending_application="PMSYS", secret="other")

    assert ack_code(send(adt("A04", "MSG0001", facility="SOUTH", secret="other")).ack) == "AA"
    assert _patients(org_a) == []
    assert len(_patients(org_b)) == 1


def test_an_unknown_message_type_is_refused_and_logged_by_type_only(send: Any, org_a: Any) -> None:
    text = adt("A04", "MSG0001").replace("ADT^A04^ADT_A01", "ORU^R01^ORU_R01")

    received = send(text)

    assert ack_code(received.ack) == "AR"
    assert ack_errors(received.ack)[0]["code"] == "200"
    log = _log(org_a, "MSG0001")
    assert (log.message_type, log.outcome, log.state, log.error_field) == ("ORU^R01", "AR", "refused", "MSH-9")
    assert str(log.raw) == ""
    assert _patients(org_a) == []


def test_the_raw_message_is_encrypted_at_rest_and_cleared_after_retention(send: Any, org_a: Any) -> None:
    send(adt("A04", "MSG0001"))
    log = _log(org_a, "MSG0001")
    assert "TESTPERSON" in str(log.raw)
    with organization_context(org_a), connection.cursor() as cursor:
        cursor.execute("SELECT raw FROM integrations_hl7message WHERE id = %s", [log.pk])
        stored = cursor.fetchone()[0]
    assert "TESTPERSON" not in stored

    with organization_context(org_a):
        assert raw_messages_purge(now=log.received_at + timedelta(days=29)) == 0
        assert raw_messages_purge(now=log.received_at + timedelta(days=31)) == 1
    log = _log(org_a, "MSG0001")
    assert str(log.raw) == "" and log.outcome == "AA" and log.ack


# -- SIU -------------------------------------------------------------------------------------------


def _appointment(org: Any) -> Appointment:
    with organization_context(org):
        return Appointment.objects.select_related("practitioner", "location", "patient").get()


def test_s12_books_the_appointment_with_practitioner_and_location_created(send: Any, org_a: Any) -> None:
    received = send(siu("S12", "MSG0001"))

    assert ack_code(received.ack) == "AA"
    appointment = _appointment(org_a)
    # 14:00 at the clinic (America/Chicago, no offset in TQ1-7), 30 minutes.
    assert appointment.starts_at == datetime(2026, 12, 15, 20, 0, tzinfo=UTC)
    assert appointment.ends_at == datetime(2026, 12, 15, 20, 30, tzinfo=UTC)
    assert (appointment.status, appointment.appointment_type) == ("booked", "follow_up")
    assert str(appointment.reason) == "Blood pressure follow-up"
    assert appointment.practitioner.npi == "1234567893"
    assert appointment.practitioner.display_name == "DR DANA DOCTOR"
    assert appointment.location.name == "North Clinic Main"
    assert appointment.patient.mrn == "191919"
    with organization_context(org_a):
        assert FhirResourceLink.objects.filter(resource_type__in=["Practitioner", "Location"]).count() == 2


def test_s12_matches_an_existing_practitioner_by_npi(send: Any, org_a: Any) -> None:
    with organization_context(org_a):
        known = PractitionerFactory(npi="1234567893", display_name="Dana Doctor")
    send(siu("S12", "MSG0001"))

    assert _appointment(org_a).practitioner_id == known.pk
    with organization_context(org_a):
        assert Practitioner.objects.count() == 1


def test_s13_reschedules_s14_modifies_s15_cancels(send: Any, org_a: Any) -> None:
    send(siu("S12", "MSG0001"))

    assert ack_code(send(siu("S13", "MSG0002", start="202612161000", minutes=45)).ack) == "AA"
    appointment = _appointment(org_a)
    assert appointment.starts_at == datetime(2026, 12, 16, 16, 0, tzinfo=UTC)
    assert appointment.ends_at - appointment.starts_at == timedelta(minutes=45)

    send(siu("S14", "MSG0003", start="202612161000", minutes=45, reason="^Medication review"))
    assert str(_appointment(org_a).reason) == "Medication review"

    send(siu("S15", "MSG0004", start="202612161000", minutes=45, status="Cancelled"))
    assert _appointment(org_a).status == "cancelled"


def test_s26_marks_the_visit_a_no_show(send: Any, org_a: Any) -> None:
    send(siu("S12", "MSG0001"))

    assert ack_code(send(siu("S26", "MSG0002", status="Noshow")).ack) == "AA"
    assert _appointment(org_a).status == "no_show"


def test_a_double_booking_is_an_ae_and_books_nothing(send: Any, org_a: Any) -> None:
    send(siu("S12", "MSG0001"))
    other = pid(mrn="2002", extra_ids="", given="ALEX")

    received = send(siu("S12", "MSG0002", appointment_id="60002", pid_segment=other))

    assert ack_code(received.ack) == "AE"
    log = _log(org_a, "MSG0002")
    assert log.error_field == "TQ1-7"
    assert "practitioner already has an appointment" in log.error_reason
    with organization_context(org_a):
        assert Appointment.objects.count() == 1
        # Nothing of the refused message stays: not even its new patient.
        assert Patient.objects.count() == 1


def test_an_s12_without_a_start_is_an_ae_naming_tq1_7(send: Any, org_a: Any) -> None:
    text = siu("S12", "MSG0001", start="")

    received = send(text)

    assert ack_code(received.ack) == "AE"
    assert _log(org_a, "MSG0001").error_field == "TQ1-7"


# -- Out of order ----------------------------------------------------------------------------------


def test_an_s13_before_its_s12_is_held_then_applied_when_the_s12_arrives(send: Any, org_a: Any) -> None:
    early = send(siu("S13", "MSG0002", start="202612161000"))

    assert ack_code(early.ack) == "AA"
    assert ack_errors(early.ack)[0]["text"].startswith("SCH-2: held")
    with organization_context(org_a):
        assert Appointment.objects.count() == 0
        assert Hl7HeldMessage.objects.count() == 1
    assert _log(org_a, "MSG0002").state == "held"

    send(siu("S12", "MSG0001", start="202612151400"))

    assert _appointment(org_a).starts_at == datetime(2026, 12, 16, 16, 0, tzinfo=UTC)
    assert _log(org_a, "MSG0002").state == "applied"
    with organization_context(org_a):
        assert Hl7HeldMessage.objects.count() == 0


def test_a_held_message_is_reported_when_its_s12_never_comes(send: Any, org_a: Any, settings: Any) -> None:
    send(siu("S15", "MSG0002", status="Cancelled"))
    held_at = _log(org_a, "MSG0002").received_at

    with organization_context(org_a):
        assert held_messages_expire(now=held_at + timedelta(minutes=settings.HL7_HOLD_MINUTES - 1)) == 0
        assert held_messages_expire(now=held_at + timedelta(minutes=settings.HL7_HOLD_MINUTES + 1)) == 1
    log = _log(org_a, "MSG0002")
    assert (log.state, log.error_field) == ("expired", "SCH-2")
    assert "no SIU^S12" in log.error_reason
    # The S12 arriving later books the visit; the expired cancellation is not applied.
    send(siu("S12", "MSG0001"))
    assert _appointment(org_a).status == "booked"
