"""Patient services and selectors: validation, per-organization uniqueness, name-prefix search."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from healthcrm.tenancy import organization_context
from patients import services
from patients.models import Coverage, Medication, Observation, Patient, PatientIdentifier
from patients.selectors import name_search_hint, patient_list, patient_summary
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

BASE = {"mrn": "A-1", "given_name": "Ada", "family_name": "Lovelace", "date_of_birth": date(1980, 1, 2)}


def test_create_with_the_new_details_normalizes_phones(org_a) -> None:
    with organization_context(org_a):
        patient = services.patient_create(
            **BASE,
            preferred_name="Addie",
            pronouns="she/her",
            preferred_language="es",
            preferred_channel="sms",
            contact_window_start=time(9),
            contact_window_end=time(17),
            timezone="America/Chicago",
            address_line1="1 Example Way",
            address_city="Springfield",
            emergency_contact_name="Byron",
            emergency_contact_relationship="father",
            emergency_contact_phone="(312) 555-0177",
        )
        patient.refresh_from_db()
    assert patient.emergency_contact_phone == "+13125550177"
    assert (patient.preferred_name, patient.preferred_language, patient.zone.key) == ("Addie", "es", "America/Chicago")


def test_zone_falls_back_to_the_organization(org_a) -> None:
    with organization_context(org_a):
        patient = services.patient_create(**BASE)
    assert patient.zone.key == org_a.timezone


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"emergency_contact_phone": "12"}, None),  # normalize_phone raises before saving
        ({"preferred_language": "english!"}, "preferred_language"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"preferred_channel": "fax"}, "preferred_channel"),
        ({"contact_window_start": time(9)}, None),
        ({"email": "not-an-email"}, "email"),
    ],
)
def test_update_with_invalid_values_saves_nothing(org_a, changes, field) -> None:
    with organization_context(org_a):
        patient = services.patient_create(**BASE)
        with pytest.raises(ValidationError) as excinfo:
            services.patient_update(patient=patient, **changes)
        if field:
            assert field in excinfo.value.message_dict
        fresh = Patient.objects.get(pk=patient.pk)
    for name in changes:
        assert getattr(fresh, name) in ("", None, "en", "none")


def test_update_to_a_duplicate_mrn_is_a_clear_error(org_a) -> None:
    with organization_context(org_a):
        services.patient_create(**BASE)
        other = services.patient_create(**{**BASE, "mrn": "A-2"})
        with pytest.raises(ValidationError, match="A patient with this MRN already exists"):
            services.patient_update(patient=other, mrn="a1")
        assert Patient.objects.get(pk=other.pk).mrn == "A-2"


def test_identifier_is_unique_per_system_in_the_organization(org_a, org_b) -> None:
    for org in (org_a, org_b):
        with organization_context(org):
            patient = services.patient_create(**BASE)
            services.patient_identifier_add(patient=patient, system="http://hospital.example/mrn", value="H-100")
    with organization_context(org_a):
        other = services.patient_create(**{**BASE, "mrn": "A-2"})
        with pytest.raises(ValidationError, match="already has this identifier"):
            services.patient_identifier_add(patient=other, system="http://hospital.example/mrn", value="h100")
        services.patient_identifier_add(patient=other, system="epic", value="H-100")  # another system
        assert PatientIdentifier.objects.count() == 2


def test_coverage_cannot_end_before_it_starts(org_a) -> None:
    with organization_context(org_a):
        patient = services.patient_create(**BASE)
        with pytest.raises(ValidationError, match="cannot end before it starts"):
            services.coverage_add(
                patient=patient,
                payer_name="Acme Health",
                member_id="M1",
                valid_from=date(2026, 1, 1),
                valid_to=date(2025, 1, 1),
            )
        assert Coverage.objects.count() == 0


def test_medication_dates_and_status_are_checked(org_a) -> None:
    with organization_context(org_a):
        patient = services.patient_create(**BASE)
        with pytest.raises(ValidationError):
            services.medication_add(
                patient=patient, name="Metformin", start_date=date(2026, 2, 1), end_date=date(2026, 1, 1)
            )
        with pytest.raises(ValidationError):
            services.medication_add(patient=patient, name="Metformin", status="paused")
        assert Medication.objects.count() == 0


def test_observation_flags_values_outside_the_range(org_a) -> None:
    now = timezone.now()
    with organization_context(org_a):
        patient = services.patient_create(**BASE)
        a1c = services.observation_record(
            patient=patient, code="4548-4", value_quantity=Decimal("7.2"), effective_at=now
        )
        bp = services.observation_record(
            patient=patient, code="85354-9", systolic=Decimal("118"), diastolic=Decimal("76"), effective_at=now
        )
        high_bp = services.observation_record(
            patient=patient, code="85354-9", systolic=Decimal("152"), diastolic=Decimal("95"), effective_at=now
        )
        weight = services.observation_record(
            patient=patient, code="29463-7", value_quantity=Decimal("80"), effective_at=now
        )
        with pytest.raises(ValidationError, match="Enter a value"):
            services.observation_record(patient=patient, code="85354-9", effective_at=now)
        assert Observation.objects.count() == 4
    assert (a1c.abnormal_flag, a1c.unit, a1c.category) == ("H", "%", "laboratory")
    assert (bp.abnormal_flag, bp.value_display) == ("N", "118/76 mm[Hg]")
    assert [c["code"] for c in bp.components] == ["8480-6", "8462-4"]
    assert high_bp.abnormal_flag == "H"
    assert weight.abnormal_flag == ""  # no range: nothing to compare


def test_summary_shows_the_latest_observation_of_each_code(org_a) -> None:
    with organization_context(org_a):
        patient = services.patient_create(**BASE)
        for day, value in ((1, "6.1"), (3, "7.5"), (2, "5.0")):
            services.observation_record(
                patient=patient,
                code="4548-4",
                value_quantity=Decimal(value),
                effective_at=timezone.make_aware(datetime(2026, 1, day)),
            )
        services.observation_record(
            patient=patient,
            code="29463-7",
            value_quantity=Decimal("70"),
            effective_at=timezone.make_aware(datetime(2025, 6, 1)),
        )
        summary = patient_summary(patient=patient)
    assert [(o.code, o.value_quantity) for o in summary.latest_observations] == [
        ("4548-4", Decimal("7.5000")),
        ("29463-7", Decimal("70.0000")),
    ]


# -- Name prefix search ---------------------------------------------------------------------------


@pytest.fixture
def named(org_a, org_b):
    with organization_context(org_a):
        jose = PatientFactory(given_name="José", family_name="Núñez-García", mrn="X-1")
        christopher = PatientFactory(given_name="Christopher", family_name="Li", mrn="X-2")
        christophe = PatientFactory(given_name="Christophe", family_name="Lindqvist", mrn="X-3")
        mary = PatientFactory(given_name="Mary Ann", family_name="Okafor", mrn="X-4")
    with organization_context(org_b):
        PatientFactory(given_name="Joseph", family_name="Nunn", mrn="Y-1")
    return {"jose": jose, "christopher": christopher, "christophe": christophe, "mary": mary}


def _found(org, query):
    with organization_context(org):
        return {p.pk for p in patient_list(query=query)}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("jos", {"jose"}),
        ("JOSÉ", {"jose"}),
        ("Nún", {"jose"}),
        ("nunez-g", {"jose"}),
        ("garc", {"jose"}),  # a later word of the name
        ("CHRIST", {"christopher", "christophe"}),
        ("christophe", {"christophe"}),  # 10 letters: the whole name wins over the 8-letter prefix
        ("christoph", {"christopher", "christophe"}),  # no whole-name match: the 8-letter prefix
        ("ann", {"mary"}),
        ("mary a", {"mary"}),
        ("lin", {"christophe"}),
        ("Li", {"christopher"}),  # 2 letters: whole names only
        ("Jo", set()),  # 2 letters are no prefix search
        ("joe", set()),
        ("X-2", {"christopher"}),  # MRN stays exact
    ],
)
def test_name_prefix_search(org_a, named, query, expected) -> None:
    assert _found(org_a, query) == {named[key].pk for key in expected}


def test_prefix_of_another_organizations_patient_does_not_match(org_a, org_b, named) -> None:
    assert _found(org_a, "josep") == set()  # Joseph lives in org B
    assert len(_found(org_b, "josep")) == 1
    assert _found(org_b, "jos") != _found(org_a, "jos")


def test_prefix_indexes_are_kept_on_update_and_bulk_create(org_a) -> None:
    with organization_context(org_a):
        patient = services.patient_create(**BASE)
        services.patient_update(patient=patient, given_name="Augusta")
        [bulk] = Patient.objects.bulk_create(
            [Patient(mrn="B-1", given_name="Bartholomew", family_name="Quince", date_of_birth=date(1990, 1, 1))]
        )
    assert _found(org_a, "aug") == {patient.pk}
    assert _found(org_a, "ada") == set()
    assert _found(org_a, "bartho") == {bulk.pk}


def test_prefix_hashes_differ_from_whole_name_hashes(org_a) -> None:
    with organization_context(org_a):
        patient = services.patient_create(**{**BASE, "given_name": "Ann"})
    assert patient.given_name_bidx not in patient.name_search_digests
    assert all(len(digest) == 64 for digest in patient.name_search_digests)


def test_short_text_queries_get_a_hint() -> None:
    assert "at least 3 letters" in name_search_hint("Jo")
    assert name_search_hint("Jos") == "" and name_search_hint("") == "" and name_search_hint("1970-01-02") == ""
