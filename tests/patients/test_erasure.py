"""Erasure, legal hold and retention (issue 13 item 5): an erased patient's PHI is in no table after
decrypting every encrypted field of every model (the at-rest probe), the audit chain still
verifies, a hold blocks erasure and retention, and retention touches only what is past its period."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from auditlog.models import LogEntry
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.utils import timezone

from engagement.models import OutboundMessage
from healthcrm.crypto import decrypt_bytes, encrypt_bytes, is_encrypted
from healthcrm.tenancy import organization_context
from patients.erasure.policy import (
    DEFAULT_CLINICAL_YEARS,
    DEFAULT_MESSAGES_YEARS,
    erasure_policy,
    patient_holdings,
    retention_periods,
)
from patients.erasure.services import (
    PATIENT_KEPT,
    erasure_request_create,
    erasure_request_decline,
    erasure_request_execute,
    legal_hold_place,
    legal_hold_release,
    retention_run,
)
from patients.erasure.tasks import retention_run_task
from patients.models import (
    Condition,
    ErasureKind,
    ErasureRequest,
    ErasureStatus,
    Patient,
    PatientDocumentContent,
    PatientIdentifier,
)
from tests.factories import OrganizationFactory, PatientFactory
from tests.patients.test_merge import _build

pytestmark = pytest.mark.django_db

_n = itertools.count(1)


def _marker(f: models.Field) -> Any:
    """A value no other row holds, findable as text once decrypted."""
    n = next(_n)
    if isinstance(f, models.DateField):
        return date(1931, 3, 2) + timedelta(days=n)
    if "phone" in f.name:
        return f"+1312555{n:04d}"
    if isinstance(f, models.EmailField):
        return f"zq{n:04d}@example.org"
    return f"Zq{n:04d}x"


def _findable(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    if str(value).startswith("+1312555"):
        return str(value)[-7:]  # the local number, however it is formatted
    return str(value)


def _commit_point() -> None:
    """Run the deferred chain triggers now, as a commit would (the test's transaction never commits)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _verify_audit() -> str:
    out = StringIO()
    try:
        call_command("verify_audit", stdout=out)
    except CommandError as exc:  # pragma: no cover - the failure message is the assertion's
        raise AssertionError(f"verify_audit failed: {exc}\n{out.getvalue()}") from None
    return out.getvalue()


def _everything_in_clear() -> str:
    """Every column of every row of every model visible in the current organization (and the
    platform's), encrypted fields decrypted, encrypted bytes decrypted: the at-rest probe."""
    chunks: list[str] = []
    for model in apps.get_models():
        fields = model._meta.concrete_fields
        for row in model._base_manager.all().iterator():
            for f in fields:
                value = getattr(row, f.attname)
                if isinstance(value, bytes | memoryview) and value:
                    try:
                        value = decrypt_bytes(bytes(value))
                    except Exception:  # noqa: BLE001 - not a Fernet token: searched as it is
                        value = bytes(value)
                    value = value.decode("latin-1")
                chunks.append(str(value))
    return "\n".join(chunks)


def _patient_with_a_row_of_everything() -> tuple[Patient, dict[str, list[str]], dict[str, list[str]]]:
    """A patient with distinct values in every encrypted field of every model that holds their
    rows; returns (patient, values an erasure must remove, values it must keep) by model label."""
    patient = PatientFactory()
    erased: dict[str, list[str]] = {"patients.patient": []}
    kept: dict[str, list[str]] = {"patients.patient": []}
    for f in Patient._meta.concrete_fields:
        if is_encrypted(f) and not f.choices:
            value = _marker(f)
            setattr(patient, f.name, value)
            (kept if f.name in PATIENT_KEPT else erased)["patients.patient"].append(_findable(value))
    patient.save()
    cache: dict[Any, Any] = {}
    for holding in patient_holdings():
        label = holding.label
        if label == "patients.patientdocumentcontent":
            continue  # below, with bytes
        if not any(is_encrypted(f) for f in holding.model._meta.concrete_fields):
            continue  # nothing of the patient's in it but ids
        row = holding.rows(patient.pk).first() or _build(holding.model, patient, cache)
        policy = erasure_policy(holding.model)
        for f in holding.model._meta.concrete_fields:
            if is_encrypted(f) and not f.choices:
                value = _marker(f)
                setattr(row, f.name, value)
                target = kept if f.name in policy.keep and not policy.delete else erased
                target.setdefault(label, []).append(_findable(value))
        row.save()
        cache[holding.model] = row
    from patients.models import PatientDocument

    document = PatientDocument.objects.get(patient=patient)
    content = PatientDocumentContent.objects.create(document=document, encrypted=encrypt_bytes(b"%PDF Zq9999x"))
    assert content.pk
    erased["patients.patientdocumentcontent"] = ["Zq9999x"]
    return patient, erased, kept


def test_every_model_holding_a_patients_rows_is_walked() -> None:
    labels = {h.label for h in patient_holdings()}
    # Direct foreign keys and one hop through them, in every app; the compliance records are not erased.
    for label in (
        "patients.patientnote",
        "patients.taskevent",
        "patients.goal",
        "patients.patientdocumentcontent",
        "engagement.outboundmessage",
        "engagement.conversationmessage",
        "integrations.encounter",
    ):
        assert label in labels
    assert "patients.erasurerequest" not in labels and "patients.legalhold" not in labels


def test_an_erased_patients_phi_is_in_no_table_and_the_audit_chain_still_verifies(org_a, compliance_user) -> None:
    with organization_context(org_a):
        patient, erased, kept = _patient_with_a_row_of_everything()
        other = PatientFactory(given_name="Zqother", phone_mobile="+13125559876")
        request = erasure_request_create(patient=patient, actor=compliance_user)
        _commit_point()
        before = _everything_in_clear()
        for values in erased.values():
            for value in values:
                assert value in before, value  # the probe sees the values while they exist

        done = erasure_request_execute(request=request, actor=compliance_user, note="Identity checked.")
        _commit_point()

        assert done.status == ErasureStatus.COMPLETED
        assert done.decided_by_label and done.decided_at is not None
        after = _everything_in_clear()
        found = {label: [v for v in values if v in after] for label, values in erased.items()}
        assert {label: values for label, values in found.items() if values} == {}
        # What the law requires is kept: the MRN and the clinical rows' clinical fields.
        for label, values in kept.items():
            for value in values:
                assert value in after, (label, value)
        patient.refresh_from_db()
        assert (patient.given_name, patient.family_name, patient.is_active) == ("Erased", "Patient", False)
        assert patient.date_of_birth.month == 1 and patient.date_of_birth.day == 1
        assert not PatientIdentifier.objects.filter(patient=patient).exists()
        assert not PatientDocumentContent.objects.filter(document__patient=patient).exists()
        # The other patient is untouched.
        other.refresh_from_db()
        assert other.given_name == "Zqother" and other.is_active
        # Every step audited, and the audit log was not rewritten: the chain verifies.
        entry = LogEntry.objects.get(object_pk=str(patient.pk), additional_data__event="patient.erased")
        assert entry.additional_data["erasure_request"] == request.pk
        assert done.outcome["patients.patientnote"] == {"erased": 1}
        assert done.outcome["patients.patientidentifier"] == {"deleted": 1}
    assert "chain intact" in _verify_audit()


def test_the_old_contact_details_and_name_no_longer_find_the_patient(org_a, compliance_user) -> None:
    with organization_context(org_a):
        patient = PatientFactory(
            given_name="Quillon",
            family_name="Zabriskie",
            phone_mobile="+13125550177",
            email="qz@example.org",
            date_of_birth=date(1966, 6, 16),
        )
        for lookup in (
            {"phone_mobile": "+13125550177"},
            {"email": "qz@example.org"},
            {"family_name": "Zabriskie"},
            {"date_of_birth": date(1966, 6, 16)},
        ):
            assert Patient.objects.blind_match(**lookup).filter(pk=patient.pk).exists()
        erasure_request_execute(request=erasure_request_create(patient=patient, actor=compliance_user), actor=None)
        for lookup in (
            {"phone_mobile": "+13125550177"},
            {"email": "qz@example.org"},
            {"family_name": "Zabriskie"},
            {"date_of_birth": date(1966, 6, 16)},
        ):
            assert not Patient.objects.blind_match(**lookup).exists(), lookup
        from patients.models import PatientNamePrefix

        names = set(PatientNamePrefix.objects.filter(patient=patient).values_list("digest", flat=True))
        patient.refresh_from_db()
        assert names == set(patient.name_search_digests)  # the search rows follow the pseudonym


def test_a_legal_hold_blocks_erasure_until_released(org_a, compliance_user) -> None:
    with organization_context(org_a):
        patient = PatientFactory(given_name="Heldina")
        hold = legal_hold_place(patient=patient, reason="Litigation matter 42.", actor=compliance_user)
        request = erasure_request_create(patient=patient, actor=compliance_user)
        with pytest.raises(ValidationError, match="legal hold"):
            erasure_request_execute(request=request, actor=compliance_user)
        patient.refresh_from_db()
        request.refresh_from_db()
        assert patient.given_name == "Heldina" and request.status == ErasureStatus.PENDING

        released = legal_hold_release(hold=hold, actor=compliance_user)
        assert released.released_at is not None and released.released_by_label
        with pytest.raises(ValidationError):
            legal_hold_release(hold=hold, actor=compliance_user)
        erasure_request_execute(request=request, actor=compliance_user)
        patient.refresh_from_db()
        assert patient.given_name == "Erased"


def test_a_request_is_decided_once_and_a_decline_needs_a_reason(org_a, compliance_user) -> None:
    with organization_context(org_a):
        patient = PatientFactory(given_name="Keepme")
        request = erasure_request_create(patient=patient, actor=compliance_user)
        with pytest.raises(ValidationError):
            erasure_request_create(patient=patient, actor=compliance_user)  # one pending at a time
        with pytest.raises(ValidationError):
            erasure_request_decline(request=request, actor=compliance_user, note="  ")
        declined = erasure_request_decline(request=request, actor=compliance_user, note="Identity not proven.")
        assert declined.status == ErasureStatus.DECLINED
        with pytest.raises(ValidationError, match="already decided"):
            erasure_request_execute(request=request, actor=compliance_user)
        patient.refresh_from_db()
        assert patient.given_name == "Keepme"


def test_retention_periods_come_from_the_organization_with_sensible_defaults(org_a) -> None:
    periods = retention_periods(org_a)
    assert periods.clinical == timedelta(days=365 * DEFAULT_CLINICAL_YEARS)
    assert periods.messages == timedelta(days=365 * DEFAULT_MESSAGES_YEARS)
    assert periods.messages < periods.clinical
    org_a.settings = {"retention": {"clinical_years": 7, "messages_years": "lots"}}
    periods = retention_periods(org_a)
    assert periods.clinical == timedelta(days=365 * 7)
    assert periods.messages == timedelta(days=365 * DEFAULT_MESSAGES_YEARS)  # invalid: the default


def _message(patient: Patient, body: str) -> OutboundMessage:
    from tests.patients.test_merge import _build as build

    message = build(OutboundMessage, patient, {})
    message.body = body
    message.save()
    return message


def test_retention_deletes_or_pseudonymises_only_what_is_past_its_period_and_not_held(org_a) -> None:
    org_a.settings = {"retention": {"clinical_years": 10, "messages_years": 2}}
    org_a.save()
    start = timezone.now() - timedelta(days=365 * 12)
    with organization_context(org_a):
        with time_machine.travel(start, tick=False):
            dormant = PatientFactory(given_name="Dormant", mrn="OLD-1")
            held = PatientFactory(given_name="Heldold", mrn="OLD-2")
            returning = PatientFactory(given_name="Returning", mrn="OLD-3")
            old_message = _message(returning, "Old reminder Zq7001x")
            held_message = _message(held, "Old held reminder")
            Condition.objects.create(patient=dormant, code="I10", display="Hypertension")
        recent = PatientFactory(given_name="Recent", mrn="NEW-1")
        new_message = _message(returning, "New reminder")
        with time_machine.travel(timezone.now() - timedelta(days=30), tick=False):
            returning.phone_home = "+13125550100"
            returning.save()  # activity within the period
        legal_hold_place(patient=held, reason="Claim pending.", actor=None)

        report = retention_run(organization=org_a)

        assert report.patients_pseudonymised == [dormant.pk]
        assert report.messages_deleted == {"engagement.outboundmessage": 1}
        assert not OutboundMessage.objects.filter(pk=old_message.pk).exists()
        assert OutboundMessage.objects.filter(pk__in=[held_message.pk, new_message.pk]).count() == 2
        dormant.refresh_from_db()
        # Past the clinical period: everything goes, the MRN and the clinical values too.
        assert dormant.given_name == "Erased" and dormant.mrn == f"ERASED-{dormant.pk}"
        assert Condition.objects.get(patient=dormant).display == ""
        for untouched, name in ((held, "Heldold"), (returning, "Returning"), (recent, "Recent")):
            untouched.refresh_from_db()
            assert untouched.given_name == name
        record = ErasureRequest.objects.get(patient=dormant)
        assert (record.kind, record.status) == (ErasureKind.RETENTION, ErasureStatus.COMPLETED)
        assert LogEntry.objects.filter(additional_data__event="retention.run").count() == 1
        assert LogEntry.objects.filter(object_pk=str(dormant.pk), additional_data__event="patient.retention_expired")

        # Idempotent: a second run finds nothing more to do.
        again = retention_run(organization=org_a)
        assert again.patients_pseudonymised == [] and again.messages_deleted == {}


def test_the_retention_task_runs_per_organization_with_ids_only(org_a, org_b) -> None:
    start = timezone.now() - timedelta(days=365 * 11)
    with organization_context(org_a), time_machine.travel(start, tick=False):
        a_patient = PatientFactory(given_name="Northold")
    with organization_context(org_b), time_machine.travel(start, tick=False):
        b_patient = PatientFactory(given_name="Lakeold")
    retention_run_task.apply(args=(org_a.pk,)).get()
    with organization_context(org_a):
        a_patient.refresh_from_db()
        assert a_patient.given_name == "Erased"
    with organization_context(org_b):
        b_patient.refresh_from_db()
        assert b_patient.given_name == "Lakeold"  # another organization's run


def test_a_suspended_organization_is_left_alone() -> None:
    suspended = OrganizationFactory(is_active=False)
    assert retention_run_task.apply(args=(suspended.pk,)).get() is None
