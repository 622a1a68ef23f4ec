"""Home-device readings: token auth (hashed, bound to one patient, rate-limited), Observation
recorded, out-of-range readings alert."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from healthcrm.tenancy import organization_context
from integrations.devices.services import device_token_create
from integrations.models import DeviceAlert, DeviceToken
from patients.care.timeline import patient_timeline
from patients.models import CareTask, Observation
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
URL = "/integrations/devices/observations/"


@pytest.fixture
def token(org_a: Any) -> str:
    with organization_context(org_a):
        patient = PatientFactory(mrn="DEV-1")
        _, clear = device_token_create(name="BP cuffs", patient=patient)
    return clear


def reading(code: str, **value: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "reading-1",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": code},
        "subject": {"identifier": {"system": "urn:mrn", "value": "DEV-1"}},
        "effectiveDateTime": "2025-03-01T08:00:00Z",
    }
    resource.update(value)
    return resource


def blood_pressure(systolic: int, diastolic: int) -> dict[str, Any]:
    return reading(
        "85354-9",
        component=[
            {"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": systolic, "code": "mm[Hg]"}},
            {"code": {"coding": [{"code": "8462-4"}]}, "valueQuantity": {"value": diastolic, "code": "mm[Hg]"}},
        ],
    )


def post(client: Any, token: str, body: Any) -> Any:
    return client.post(
        URL, data=json.dumps(body), content_type="application/fhir+json", headers={"Authorization": f"Bearer {token}"}
    )


def test_url_name() -> None:
    assert reverse("integrations:device_observation") == URL


def test_out_of_range_reading_creates_an_alert(org_a, client, token) -> None:
    response = post(client, token, blood_pressure(182, 95))
    assert response.status_code == 201, response.content
    assert response.json()["alerts"] == 1
    with organization_context(org_a):
        observation = Observation.objects.get()
        assert observation.value_display == "182/95 mm[Hg]"
        alert = DeviceAlert.objects.get()
        assert (alert.code, alert.value, alert.high, alert.threshold_source) == ("8480-6", 182, 160, "organization")
        assert alert.patient == observation.patient and alert.status == "open"
        # The care team's nurses get an urgent task, due today, in their role queue.
        task = CareTask.objects.get()
        assert (task.patient, task.assignee_role, task.priority, task.status) == (
            observation.patient,
            "nurse",
            "urgent",
            "open",
        )
        # And the reading shows on the patient's (clinical) timeline.
        entries = patient_timeline(patient=observation.patient, clinical=True).entries
        assert any(e.title == "Home device reading out of range" for e in entries)
    # The device re-sends the same reading: nothing new.
    again = post(client, token, blood_pressure(182, 95))
    assert again.status_code == 200
    with organization_context(org_a):
        assert Observation.objects.count() == 1 and DeviceAlert.objects.count() == 1
        assert CareTask.objects.count() == 1


def test_device_token_command_prints_a_token_that_works(org_a, client) -> None:
    import io

    from django.core.management import call_command

    with organization_context(org_a):
        patient = PatientFactory(mrn="DEV-1")
    out = io.StringIO()
    call_command(
        "device_token_create",
        "--organization",
        org_a.slug,
        "--patient",
        str(patient.pk),
        "--name",
        "BP cuffs",
        stdout=out,
    )
    clear = out.getvalue().strip().splitlines()[-1]
    with organization_context(org_a):
        stored = DeviceToken.objects.get()
        assert clear not in repr(vars(stored))  # only the hash is kept
        assert stored.patient == patient
    assert post(client, clear, blood_pressure(120, 80)).status_code == 201


def test_in_range_reading_and_organization_thresholds(org_a, client, token) -> None:
    assert post(client, token, reading("59408-5", valueQuantity={"value": 97, "code": "%"})).json()["alerts"] == 0
    org_a.settings = {"device_thresholds": {"29463-7": {"high": "100"}}}
    org_a.save()
    weight = reading("29463-7", id="w1", valueQuantity={"value": 104.5, "code": "kg"})
    assert post(client, token, weight).json()["alerts"] == 1


def test_tokens_are_stored_hashed_and_checked(org_a, org_b, client, token) -> None:
    with organization_context(org_a):
        stored = DeviceToken.objects.get()
        assert token not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64
    assert post(client, token + "x", blood_pressure(120, 80)).status_code == 401
    assert post(client, "", blood_pressure(120, 80)).status_code == 401
    forged = token.replace(f"hcd_{org_a.pk}_", f"hcd_{org_b.pk}_")  # the secret of A claiming B
    assert post(client, forged, blood_pressure(120, 80)).status_code == 401
    with organization_context(org_a):
        DeviceToken.objects.update(is_active=False)
    assert post(client, token, blood_pressure(120, 80)).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ("not json", 400, "body"),
        ({"resourceType": "Patient"}, 400, "resourceType"),
        (reading("85354-9", status="done-ish", component=[]), 400, "Observation.status"),
        (reading("4548-4", valueQuantity={"value": 7}), 400, "Observation.code"),
        (
            reading("59408-5", valueQuantity={"value": 90}, subject={"identifier": {"value": "NOPE"}}),
            400,
            "Observation.subject.identifier",
        ),
    ],
)
def test_bad_readings_are_refused_with_the_element_named(org_a, client, token, body, status, field) -> None:
    response = client.post(
        URL,
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == status
    assert response.json()["issue"][0]["expression"] == [field]
    with organization_context(org_a):
        assert not Observation.objects.exists()


# -- Tokens bound to one patient: no MRN oracle, a rate limit (issue 9, item 14) -----------------


def test_a_token_records_for_its_patient_only_and_answers_the_same_for_any_other_identifier(
    org_a, client, token
) -> None:
    with organization_context(org_a):
        PatientFactory(mrn="OTHER-2")  # a real patient of the organization, not this device's
    answers = []
    for mrn in ("OTHER-2", "NOBODY-9"):
        body = reading("59408-5", id=f"r-{mrn}", valueQuantity={"value": 97}, subject={"identifier": {"value": mrn}})
        response = post(client, token, body)
        answers.append((response.status_code, response.content))
    # Known and unknown identifiers are indistinguishable: no MRN oracle.
    assert answers[0] == answers[1] and answers[0][0] == 400
    with organization_context(org_a):
        assert not Observation.objects.exists()
    # Without an identifier the reading is the token's patient's; with its own MRN too.
    no_subject = reading("59408-5", id="r-own", valueQuantity={"value": 97})
    del no_subject["subject"]
    assert post(client, token, no_subject).status_code == 201
    assert post(client, token, reading("59408-5", id="r-mrn", valueQuantity={"value": 97})).status_code == 201
    with organization_context(org_a):
        assert {o.patient.mrn for o in Observation.objects.all()} == {"DEV-1"}


def test_an_organization_wide_token_is_refused(org_a, client, token) -> None:
    with organization_context(org_a):
        DeviceToken.objects.update(patient=None)  # as issued before tokens were bound to a patient
    assert post(client, token, blood_pressure(120, 80)).status_code == 401


def test_readings_past_the_limit_per_token_get_429_with_retry_after(org_a, client, token, settings) -> None:
    settings.DEVICE_RATE_LIMIT = 2
    settings.DEVICE_RATE_WINDOW = 60
    with organization_context(org_a):
        patient = PatientFactory(mrn="DEV-2")
        _, second = device_token_create(name="Scale", patient=patient)
    for n in range(2):
        assert post(client, token, reading("59408-5", id=f"s{n}", valueQuantity={"value": 97})).status_code == 201
    refused = post(client, token, reading("59408-5", id="s3", valueQuantity={"value": 97}))
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["issue"][0]["code"] == "throttled"
    with organization_context(org_a):
        assert Observation.objects.count() == 2
    # The limit is per token: another device is not held back.
    other = reading("59408-5", id="t1", valueQuantity={"value": 97}, subject={"identifier": {"value": "DEV-2"}})
    assert post(client, second, other).status_code == 201
