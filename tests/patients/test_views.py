"""Patient record screens: three personas on every view, bad input saves nothing, constant queries."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from patients import services
from patients.models import Allergy, Condition, Immunization, Medication, Observation, Patient
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

VIEWS = [
    "patients:edit",
    "patients:condition_add",
    "patients:medication_add",
    "patients:allergy_add",
    "patients:observation_add",
]


@pytest.fixture
def patient_a(org_a):
    with organization_context(org_a):
        return PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-1")


_serial = itertools.count()


def _fill(patient, n: int) -> int:
    """Add n of everything to the record (unique identifiers each call); returns the last serial."""
    now = timezone.now()
    i = 0
    for _ in range(n):
        i = next(_serial)
        services.condition_add(patient=patient, code="38341003", display=f"Hypertension {i}")
        services.medication_add(
            patient=patient, name=f"Lisinopril {i}", code="314076", refill_due=date.today() + timedelta(days=i)
        )
        services.allergy_add(patient=patient, substance_display=f"Penicillin {i}", criticality="high")
        services.observation_record(
            patient=patient, code="4548-4", value_quantity=Decimal("7.5"), effective_at=now - timedelta(days=i)
        )
        services.observation_record(
            patient=patient,
            code="85354-9",
            systolic=Decimal(120 + i),
            diastolic=Decimal(80),
            effective_at=now - timedelta(days=i),
        )
        services.patient_identifier_add(patient=patient, system=f"ehr-{i}", value=f"E{i}")
        services.coverage_add(patient=patient, payer_name=f"Payer {i}", member_id=f"M{i}", valid_from=date(2025, 1, 1))
        Immunization.objects.create(
            patient=patient, vaccine_code="158", display="Influenza", occurrence_date=date(2025, 10, 1)
        )
    return i


def test_detail_shows_every_section_with_flags(client_for, nurse_user, patient_a, org_a) -> None:
    with organization_context(org_a):
        i = _fill(patient_a, 1)
    content = client_for(nurse_user).get(reverse("patients:detail", args=[patient_a.pk])).content.decode()
    for text in (
        f"Hypertension {i}",
        f"Lisinopril {i}",
        "Refill due",
        f"Penicillin {i}",
        "High criticality",
        "7.5 %",
        "High",
        f"{120 + i}/80 mm[Hg]",
        "Influenza",
        f"Payer {i}",
        f"ehr-{i}",
        "Emergency contact",
        "Latest observations",
    ):
        assert text in content, text
    for name in VIEWS:
        assert reverse(name, args=[patient_a.pk]) in content


def test_detail_query_count_does_not_grow_with_the_record(
    client_for, nurse_user, patient_a, org_a, django_assert_max_num_queries
) -> None:
    client = client_for(nurse_user)
    url = reverse("patients:detail", args=[patient_a.pk])
    client.get(url)  # warm per-process caches (content types, permissions) first
    counts = []
    for batch in (1, 6):
        with organization_context(org_a):
            _fill(patient_a, batch)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    with django_assert_max_num_queries(24):  # +1: the notification bell
        client.get(url)


@pytest.mark.parametrize("name", VIEWS)
def test_every_form_view_three_personas(
    client_for, nurse_user, analyst_user, other_org_user, patient_a, org_a, name
) -> None:
    url = reverse(name, args=[patient_a.pk])
    assert client_for(nurse_user).get(url).status_code == 200
    response = client_for(analyst_user).get(url)
    assert response.status_code == 403 and b"Northcott" not in response.content
    assert client_for(analyst_user).post(url, {"code": "x"}).status_code == 403
    response = client_for(other_org_user).get(url)
    assert response.status_code == 404 and b"Northcott" not in response.content
    assert client_for(other_org_user).post(url, {"code": "x"}).status_code == 404
    with organization_context(org_a):
        actions = sorted(AccessLog.objects.values_list("action", flat=True))
    assert actions == [AccessAction.DENIED, AccessAction.DENIED, AccessAction.VIEW]


def test_detail_three_personas(client_for, nurse_user, analyst_user, other_org_user, patient_a) -> None:
    url = reverse("patients:detail", args=[patient_a.pk])
    assert client_for(nurse_user).get(url).status_code == 200
    assert client_for(analyst_user).get(url).status_code == 403
    assert client_for(other_org_user).get(url).status_code == 404


EDIT = {
    "mrn": "N-1",
    "given_name": "Alma",
    "family_name": "Northcott",
    "date_of_birth": "1970-01-02",
    "sex": "female",
    "phone_mobile": "",
    "email": "",
    "preferred_language": "es",
    "preferred_channel": "sms",
    "timezone": "",
    "address_country": "US",
    "emergency_contact_phone": "(312) 555-0166",
}


def test_edit_saves_and_normalizes(client_for, nurse_user, patient_a, org_a) -> None:
    response = client_for(nurse_user).post(
        reverse("patients:edit", args=[patient_a.pk]), {**EDIT, "address_city": "Springfield"}
    )
    assert response.status_code == 302
    with organization_context(org_a):
        patient = Patient.objects.get(pk=patient_a.pk)
    assert (patient.preferred_language, patient.address_city, patient.emergency_contact_phone) == (
        "es",
        "Springfield",
        "+13125550166",
    )


def test_edit_with_bad_input_re_renders_with_400_and_saves_nothing(client_for, nurse_user, patient_a, org_a) -> None:
    data = {
        **EDIT,
        "given_name": "Changed",
        "phone_mobile": "12",
        "email": "not-an-email",
        "date_of_birth": "2999-01-01",
        "emergency_contact_phone": "99",
    }
    response = client_for(nurse_user).post(reverse("patients:edit", args=[patient_a.pk]), data)
    assert response.status_code == 400
    content = response.content.decode()
    assert "Enter a valid phone number." in content and "Enter a valid email address." in content
    assert "cannot be in the future" in content and 'value="Changed"' in content
    with organization_context(org_a):
        assert Patient.objects.get(pk=patient_a.pk).given_name == "Alma"


def test_edit_to_a_duplicate_mrn_is_a_clear_error(client_for, nurse_user, patient_a, org_a) -> None:
    with organization_context(org_a):
        PatientFactory(mrn="N-2")
    response = client_for(nurse_user).post(reverse("patients:edit", args=[patient_a.pk]), {**EDIT, "mrn": "n 2"})
    assert response.status_code == 400
    assert "A patient with this MRN already exists in this organization." in response.content.decode()
    with organization_context(org_a):
        assert Patient.objects.get(pk=patient_a.pk).mrn == "N-1"


@pytest.mark.parametrize(
    ("name", "data", "model", "expected"),
    [
        (
            "patients:condition_add",
            {
                "code_system": "http://snomed.info/sct",
                "code": "44054006",
                "display": "Type 2 diabetes",
                "clinical_status": "active",
            },
            Condition,
            None,
        ),
        ("patients:medication_add", {"name": "Metformin", "code": "860975", "status": "active"}, Medication, None),
        ("patients:allergy_add", {"substance_display": "Penicillin", "criticality": "high"}, Allergy, None),
        (
            "patients:observation_add",
            {"code": "85354-9", "systolic": "150", "diastolic": "95", "effective_at": "2026-01-05T09:30"},
            Observation,
            "H",
        ),
        (
            "patients:observation_add",
            {"code": "29463-7", "value_quantity": "81.5", "effective_at": "2026-01-05T09:30"},
            Observation,
            "",
        ),
    ],
)
def test_add_forms_save_through_the_services(
    client_for, nurse_user, patient_a, org_a, name, data, model, expected
) -> None:
    response = client_for(nurse_user).post(reverse(name, args=[patient_a.pk]), data)
    assert response.status_code == 302, response.content.decode()
    with organization_context(org_a):
        obj = model.objects.get()
    assert obj.patient_id == patient_a.pk
    if expected is not None:
        assert obj.abnormal_flag == expected


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "patients:condition_add",
            {
                "code_system": "http://snomed.info/sct",
                "code": "",
                "display": "x",
                "clinical_status": "active",
                "onset_date": "2999-01-01",
            },
            "cannot be in the future",
        ),
        (
            "patients:condition_add",
            {"code_system": "http://snomed.info/sct", "code": "1", "display": "x", "clinical_status": "cured"},
            "is not one of the available choices",
        ),
        (
            "patients:medication_add",
            {"name": "Metformin", "status": "active", "start_date": "2026-02-01", "end_date": "2026-01-01"},
            "cannot be before the start date",
        ),
        (
            "patients:medication_add",
            {"name": "Metformin", "status": "active", "refill_due": "not-a-date"},
            "Enter a valid date.",
        ),
        ("patients:allergy_add", {"substance_display": "", "criticality": "high"}, "This field is required."),
        (
            "patients:observation_add",
            {"code": "85354-9", "systolic": "150", "effective_at": "2026-01-05T09:30"},
            "Enter the systolic and diastolic values.",
        ),
        (
            "patients:observation_add",
            {"code": "85354-9", "systolic": "80", "diastolic": "95", "effective_at": "2026-01-05T09:30"},
            "must be below the systolic",
        ),
        (
            "patients:observation_add",
            {"code": "4548-4", "value_quantity": "abc", "effective_at": "2026-01-05T09:30"},
            "Enter a number.",
        ),
    ],
)
def test_add_forms_with_bad_input_re_render_with_400_and_save_nothing(
    client_for, nurse_user, patient_a, org_a, name, data, message
) -> None:
    response = client_for(nurse_user).post(reverse(name, args=[patient_a.pk]), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    with organization_context(org_a):
        assert not any(m.objects.exists() for m in (Condition, Medication, Allergy, Observation))


def test_short_name_search_shows_a_hint(client_for, nurse_user, patient_a) -> None:
    content = client_for(nurse_user).post(reverse("patients:list"), {"q": "No"}).content.decode()
    assert "at least 3 letters" in content and "Northcott" not in content
    assert "Northcott" in client_for(nurse_user).post(reverse("patients:list"), {"q": "nor"}).content.decode()
