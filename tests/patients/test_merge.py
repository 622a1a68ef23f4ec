"""Duplicates and merges: the possible-duplicate selector, and `patient_merge` moving every row of
every app that points at a patient, keeping the survivor's row where a unique key clashes, with its
audit trail in the same transaction."""

from __future__ import annotations

import itertools
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from guardian.shortcuts import assign_perm, get_perms

from healthcrm.tenancy import organization_context
from patients import services
from patients.merge import KEEP, merge_policy, patient_merge, patient_merge_plan, patient_relations
from patients.models import Appointment, Patient, PatientMerge
from patients.selectors import patient_possible_duplicates
from tests.factories import AppointmentFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

# Every model with a foreign key to Patient, and what a merge does with its rows. A model added
# later fails `test_every_relation_to_patient_is_known` until its merge behaviour is decided here
# (the default moves its rows; `register_merge_policy` changes that) and the row builder can make one.
KNOWN_RELATIONS = {
    ("analytics.appointmentfact", "patient"): "move",
    ("analytics.caregap", "patient"): "move",
    ("analytics.measureresult", "patient"): "move",
    ("analytics.patientfact", "patient"): "move",
    ("analytics.patientrisk", "patient"): "move",
    ("analytics.treatmentchange", "patient"): "move",
    ("engagement.accessreportrequest", "patient"): "move",
    ("engagement.calllog", "patient"): "move",
    ("engagement.consent", "patient"): "move",
    ("engagement.consentchange", "patient"): "move",
    ("engagement.conversationmessage", "patient"): "move",
    ("engagement.educationsend", "patient"): "move",
    ("engagement.engagementevent", "patient"): "move",
    ("engagement.outboundmessage", "patient"): "move",
    ("engagement.questionnaireresponse", "patient"): "move",
    ("engagement.surveyresponse", "patient"): "move",
    ("guardian.groupobjectpermission", "content_type", "object_pk"): "move",
    ("guardian.userobjectpermission", "content_type", "object_pk"): "move",
    ("integrations.devicealert", "patient"): "move",
    ("integrations.devicetoken", "patient"): "move",
    ("integrations.ehrcareplan", "patient"): "move",
    ("integrations.encounter", "patient"): "move",
    ("integrations.fhirresourcelink", "content_type", "object_id"): "move",
    ("integrations.procedure", "patient"): "move",
    ("integrations.rightofaccessrequest", "patient"): "move",
    ("patients.allergy", "patient"): "move",
    ("patients.appointment", "patient"): "move",
    ("patients.breakglassevent", "patient"): "keep",
    ("patients.careplan", "patient"): "move",
    ("patients.erasurerequest", "patient"): "keep",
    ("patients.legalhold", "patient"): "move",
    ("patients.careplanactivity", "patient"): "move",
    ("patients.caretask", "patient"): "move",
    ("patients.careteammember", "patient"): "move",
    ("patients.condition", "patient"): "move",
    ("patients.coverage", "patient"): "move",
    ("patients.immunization", "patient"): "move",
    ("patients.medication", "patient"): "move",
    ("patients.observation", "patient"): "move",
    ("patients.patient", "merged_into"): "move",
    ("patients.patientidentifier", "patient"): "move",
    ("patients.patientmerge", "duplicate"): "keep",
    ("patients.patientmerge", "survivor"): "keep",
    ("patients.patientnameprefix", "patient"): "keep",
    ("patients.patientdocument", "patient"): "move",
    ("patients.patientnote", "patient"): "move",
    ("patients.waitlistentry", "patient"): "move",
}


def _key(relation: Any) -> tuple[str, ...]:
    return (relation.label, *relation.fields)


def test_every_relation_to_patient_is_known() -> None:
    found = {_key(r): (KEEP if merge_policy(r.model).action == KEEP else "move") for r in patient_relations()}
    unknown = sorted(set(found) - set(KNOWN_RELATIONS))
    assert not unknown, f"decide how a merge treats {unknown} (patients.merge.register_merge_policy) and list it here"
    assert found == KNOWN_RELATIONS


# -- A row of every model: required fields filled by type, foreign keys built or reused ------------

_serial = itertools.count(1)


def _value(f: models.Field, patient: Patient, cache: dict[Any, Any]) -> Any:
    if f.choices:
        return f.choices[0][0]
    if isinstance(f, models.ForeignKey):
        target = f.related_model
        if target is Patient:
            return patient
        if target._meta.label_lower == "healthcrm.organization":
            return patient.organization
        if target._meta.label_lower == "contenttypes.contenttype":
            return ContentType.objects.get_for_model(Patient)
        if target not in cache:
            cache[target] = _build(target, patient, cache)
        return cache[target]
    n = next(_serial)
    if isinstance(f, models.DateTimeField):
        return timezone.now() + timedelta(days=n)
    if isinstance(f, models.DateField):
        return date(2025, 1, 1) + timedelta(days=n)
    if isinstance(f, models.TimeField):
        return time(9, 0)
    if isinstance(f, models.DecimalField):
        return Decimal("1")
    if isinstance(f, models.FloatField):
        return 1.0
    if isinstance(f, models.BooleanField):
        return False
    if isinstance(f, models.IntegerField):
        return 1
    if isinstance(f, models.JSONField):
        return {}
    if isinstance(f, models.UUIDField):
        import uuid

        return uuid.uuid4()
    if isinstance(f, models.EmailField):
        return f"row{n}@example.org"
    text = f"r{n}"
    if isinstance(f, models.CharField) and "phone" in f.name:
        return f"+1773555{n % 10000:04d}"
    return text[: f.max_length] if getattr(f, "max_length", None) else text


# Values the type alone cannot give (check constraints, ranges).
_OVERRIDES: dict[str, dict[str, Any]] = {"patients.caretask": {"assignee_role": "nurse"}}


def _build(model: type[models.Model], patient: Patient, cache: dict[Any, Any]) -> models.Model:
    label = model._meta.label_lower
    if label == "auth.user":
        return UserFactory()
    if label == "patients.patient":
        return PatientFactory()
    if label == "patients.appointment":
        return AppointmentFactory(patient=patient)
    kwargs: dict[str, Any] = {}
    for f in model._meta.concrete_fields:
        if f.primary_key or f.name in ("created_at", "updated_at"):
            continue
        points_at_patient = isinstance(f, models.ForeignKey) and f.related_model is Patient
        if (f.has_default() or f.null or f.blank) and not points_at_patient:
            continue
        kwargs[f.name] = _value(f, patient, cache)
    kwargs.update(_OVERRIDES.get(label, {}))
    obj = model(**kwargs)
    obj.save()
    return obj


def _row_for(relation: Any, duplicate: Patient, cache: dict[Any, Any]) -> Any:
    """One row of the relation pointing at `duplicate`; returns its pk."""
    label = relation.label
    if label == "patients.appointment":  # one visit (a second at the same time would overlap)
        if Appointment not in cache:
            cache[Appointment] = AppointmentFactory(patient=duplicate)
        return cache[Appointment].pk
    if label == "patients.patient":  # a record merged earlier into the duplicate
        older = PatientFactory()
        older.is_active, older.merged_into = False, duplicate
        older.save()
        return older.pk
    if label == "guardian.userobjectpermission":
        user = UserFactory()
        assign_perm("patients.view_patient", user, duplicate)
        return relation.rows(duplicate).get(user=user).pk
    if label == "guardian.groupobjectpermission":
        from django.contrib.auth.models import Group

        group = Group.objects.create(name=f"merge-test-{next(_serial)}")
        assign_perm("patients.view_patient", group, duplicate)
        return relation.rows(duplicate).get(group=group).pk
    if relation.generic:
        ct_field, fk_field = relation.fields
        obj = _build(relation.model, duplicate, cache)
        setattr(obj, ct_field, ContentType.objects.get_for_model(Patient))
        setattr(obj, fk_field, duplicate.pk)
        obj.save()
        return obj.pk
    obj = _build(relation.model, duplicate, cache)
    return obj.pk


@pytest.fixture
def pair(org_a) -> tuple[Patient, Patient]:
    with organization_context(org_a):
        survivor = PatientFactory(given_name="Ann", family_name="Lee", mrn="S-1", date_of_birth=date(1970, 5, 1))
        duplicate = PatientFactory(given_name="Ann", family_name="Lee", mrn="D-1", date_of_birth=date(1970, 5, 1))
    return survivor, duplicate


def test_merge_moves_a_row_of_every_kind_and_audits_it(org_a, pair, admin_user) -> None:
    survivor, duplicate = pair
    with organization_context(org_a):
        cache: dict[Any, Any] = {}
        rows = {}
        for relation in patient_relations():
            if merge_policy(relation.model).action == KEEP:
                continue
            rows[relation] = _row_for(relation, duplicate, cache)
        record = patient_merge(survivor=survivor, duplicate=duplicate, actor=admin_user)

        for relation, pk in rows.items():
            moved = relation.rows(survivor).filter(pk=pk).exists()
            assert moved, f"{relation.label} #{pk} did not move to the survivor"
            assert not relation.rows(duplicate).exists(), relation.label
        duplicate.refresh_from_db()
        assert (duplicate.is_active, duplicate.merged_into_id) == (False, survivor.pk)
        assert record.kept == {}
        assert record.moved["patients.appointment"] == 1
        assert set(record.moved) == {r.label for r in rows}
        assert record.actor_label == admin_user.username
        # One UPDATE entry per audited moved row, naming both ids and nothing else.
        appointment_pk = rows[next(r for r in rows if r.label == "patients.appointment")]
        entry = LogEntry.objects.get(
            content_type=ContentType.objects.get_for_model(Appointment),
            object_pk=str(appointment_pk),
            action=LogEntry.Action.UPDATE,
        )
        assert entry.changes_dict == {"patient": [str(duplicate.pk), str(survivor.pk)]}
        assert entry.actor == admin_user
        assert entry.additional_data["organization_id"] == org_a.pk
        # The duplicate's own entry: inactive and merged into the survivor.
        dup_entry = LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Patient), object_pk=str(duplicate.pk)
        ).latest("timestamp")
        assert dup_entry.changes_dict["merged_into"][1] == str(survivor.pk)
        # The merge record is itself in the audit log.
        assert LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(PatientMerge), object_pk=str(record.pk)
        ).exists()


def test_unique_conflicts_keep_the_survivors_row_and_record_the_rest(org_a, pair, nurse_user) -> None:
    from engagement.models import Consent

    survivor, duplicate = pair
    from patients.care.services import care_team_add

    with organization_context(org_a):
        now = timezone.now()
        mine = Consent.objects.create(patient=survivor, kind="sms", status="opted_in", source="intake", changed_at=now)
        clash = Consent.objects.create(
            patient=duplicate, kind="sms", status="opted_out", source="intake", changed_at=now
        )
        moves = Consent.objects.create(
            patient=duplicate, kind="email", status="opted_in", source="intake", changed_at=now
        )
        care_team_add(patient=survivor, user=nurse_user, team_role="nurse")
        team_clash = care_team_add(patient=duplicate, user=nurse_user, team_role="nurse")
        plan = patient_merge_plan(survivor=survivor, duplicate=duplicate)
        consent_kind = next(k for k in plan.kinds if k.relation.label == "engagement.consent")
        assert (consent_kind.move, consent_kind.keep) == ([moves.pk], [clash.pk])
        record = patient_merge(survivor=survivor, duplicate=duplicate)
        assert Consent.objects.get(pk=mine.pk).status == "opted_in"  # the survivor's kept
        assert Consent.objects.get(pk=clash.pk).patient_id == duplicate.pk  # left, listed
        assert Consent.objects.get(pk=moves.pk).patient_id == survivor.pk
        assert record.kept["engagement.consent"] == [clash.pk]
        assert record.kept["patients.careteammember"] == [team_clash.pk]
        assert "view_patient" in get_perms(nurse_user, survivor)


def test_identifiers_and_care_team_move_with_permissions(org_a, pair, coordinator_user) -> None:
    from patients.care.services import care_team_add

    survivor, duplicate = pair
    with organization_context(org_a):
        services.patient_identifier_add(patient=survivor, system="ehr", value="E-1")
        moved = services.patient_identifier_add(patient=duplicate, system="ehr", value="E-2")
        care_team_add(patient=duplicate, user=coordinator_user, team_role="coordinator")
        patient_merge(survivor=survivor, duplicate=duplicate)
        assert sorted(i.value for i in survivor.identifiers.all()) == ["E-1", "E-2"]
        moved.refresh_from_db()
        # Blind indexes are per organization, not per patient: the moved one is still found.
        assert services.PatientIdentifier.objects.blind_match(value="E-2").get().patient_id == survivor.pk
        assert "change_patient" in get_perms(coordinator_user, survivor)


def test_merge_refuses_itself_merged_records_and_overlapping_visits(org_a, pair) -> None:
    survivor, duplicate = pair
    with organization_context(org_a):
        with pytest.raises(ValidationError):
            patient_merge(survivor=survivor, duplicate=survivor)
        start = timezone.now() + timedelta(days=2)
        AppointmentFactory(patient=survivor, starts_at=start, ends_at=start + timedelta(minutes=30))
        clash = AppointmentFactory(patient=duplicate, starts_at=start, ends_at=start + timedelta(minutes=30))
        with pytest.raises(ValidationError, match=f"#{clash.pk} overlaps"):
            patient_merge(survivor=survivor, duplicate=duplicate)
        assert Patient.objects.get(pk=duplicate.pk).is_active  # nothing changed
        services.appointment_cancel(appointment=clash, reason="illness")
        patient_merge(survivor=survivor, duplicate=duplicate)
        with pytest.raises(ValidationError, match="already been merged"):
            patient_merge(survivor=survivor, duplicate=duplicate)
        third = PatientFactory()
        with pytest.raises(ValidationError, match="not active"):
            patient_merge(survivor=duplicate, duplicate=third)


def test_merge_refuses_records_of_two_organizations(org_a, org_b, pair) -> None:
    survivor, _ = pair
    with organization_context(org_b):
        other = PatientFactory()
    with organization_context(org_a), pytest.raises(ValidationError):
        patient_merge(survivor=survivor, duplicate=other)


# -- Possible duplicates at create --------------------------------------------------------------------


def test_possible_duplicates_by_name_and_birth_date_or_phone(org_a, org_b) -> None:
    with organization_context(org_a):
        same = PatientFactory(given_name="José", family_name="Núñez", date_of_birth=date(1980, 2, 3))
        phone = PatientFactory(phone_mobile="+13125550177")
        PatientFactory(given_name="José", family_name="Núñez", date_of_birth=date(1980, 2, 4))  # another day
        gone = PatientFactory(given_name="José", family_name="Núñez", date_of_birth=date(1980, 2, 3))
        gone.is_active = False
        gone.save()
    with organization_context(org_b):
        PatientFactory(given_name="José", family_name="Núñez", date_of_birth=date(1980, 2, 3))
    with organization_context(org_a):

        def find(**kw: Any) -> list[int]:
            kw = {"given_name": "", "family_name": "", "date_of_birth": None, **kw}
            return [p.pk for p in patient_possible_duplicates(**kw)]

        assert find(given_name="jose", family_name="NUNEZ", date_of_birth=date(1980, 2, 3)) == [same.pk]
        assert find(phone_mobile="(312) 555-0177") == [phone.pk]
        assert find(given_name="jose", family_name="nunez", date_of_birth=date(1980, 2, 3), phone_mobile="x") == [
            same.pk
        ]
        assert find(given_name="jose", family_name="nunez", date_of_birth=date(1999, 1, 1)) == []
        assert find(given_name="jose", family_name="nunez", date_of_birth=date(1980, 2, 3), exclude_pk=same.pk) == []
