"""Consent enforced at export (#13 item 3): a patient's record goes to an EHR connection only with
their data-sharing consent for that connection, in force; the others are refused, per patient, by
id with a fixed reason (no PHI), and every record that goes is access-logged as an export."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from compliance.models import AccessAction, AccessLog
from engagement.services import consent_set
from healthcrm.tenancy import organization_context
from integrations.fhir.sharing import NO_CONSENT, NOT_FOUND, consent_parties, fhir_share_export, party_key
from integrations.models import FhirConnection
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(org_a: Any) -> dict[str, Any]:
    with organization_context(org_a):
        county = FhirConnection.objects.create(name="County EHR", base_url="https://county.example/fhir")
        lab = FhirConnection.objects.create(name="Reference lab", base_url="https://lab.example/fhir")
        agrees = PatientFactory(given_name="Zora", family_name="Quillfeather", mrn="SH-1")
        for_lab_only = PatientFactory(given_name="Yuki", family_name="Marchbanks", mrn="SH-2")
        withdrew = PatientFactory(given_name="Xavi", family_name="Oddleston", mrn="SH-3")
        silent = PatientFactory(given_name="Wren", family_name="Pemberly", mrn="SH-4")
        consent_set(
            patient=agrees, kind="data_sharing", party=party_key(county), status="opted_in", source="signed_form"
        )
        consent_set(patient=for_lab_only, kind="data_sharing", party=party_key(lab), status="opted_in", source="staff")
        consent_set(patient=withdrew, kind="data_sharing", party=party_key(county), status="opted_in", source="staff")
        consent_set(patient=withdrew, kind="data_sharing", party=party_key(county), status="opted_out", source="staff")
    return {
        "county": county,
        "lab": lab,
        "agrees": agrees,
        "for_lab_only": for_lab_only,
        "withdrew": withdrew,
        "silent": silent,
    }


def test_only_patients_who_consent_to_that_connection_are_exported(org_a, setup) -> None:
    ids = [setup[name].pk for name in ("agrees", "for_lab_only", "withdrew", "silent")]
    with organization_context(org_a):
        shared = fhir_share_export(connection=setup["county"], patient_ids=[*ids, 999_999], actor_label="test")
    assert list(shared.bundles) == [setup["agrees"].pk]
    Bundle.model_validate(shared.bundles[setup["agrees"].pk])
    assert shared.report() == {
        "connection": setup["county"].pk,
        "exported": [setup["agrees"].pk],
        "refused": [
            {"patient": setup["for_lab_only"].pk, "reason": NO_CONSENT},  # consent to another party
            {"patient": setup["withdrew"].pk, "reason": NO_CONSENT},  # withdrawn
            {"patient": setup["silent"].pk, "reason": NO_CONSENT},  # nothing recorded
            {"patient": 999_999, "reason": NOT_FOUND},
        ],
    }
    # The report names nobody: no name or MRN of any patient in it.
    text = json.dumps(shared.report())
    assert not any(word in text for word in ("Zora", "Quillfeather", "Yuki", "Marchbanks", "Xavi", "Wren", "SH-"))


def test_the_same_patient_goes_to_the_party_they_chose(org_a, setup) -> None:
    with organization_context(org_a):
        shared = fhir_share_export(connection=setup["lab"], patient_ids=[setup["for_lab_only"].pk, setup["agrees"].pk])
    assert list(shared.bundles) == [setup["for_lab_only"].pk]
    assert [r.patient_id for r in shared.refused] == [setup["agrees"].pk]


def test_an_expired_sharing_consent_exports_nothing(org_a, setup) -> None:
    with organization_context(org_a):
        consent_set(
            patient=setup["silent"],
            kind="data_sharing",
            party=party_key(setup["county"]),
            status="opted_in",
            source="staff",
            expires_at=timezone.now() + timedelta(days=30),
        )
        assert list(fhir_share_export(connection=setup["county"], patient_ids=[setup["silent"].pk]).bundles) == [
            setup["silent"].pk
        ]
    with time_machine.travel(timezone.now() + timedelta(days=31), tick=False), organization_context(org_a):
        shared = fhir_share_export(connection=setup["county"], patient_ids=[setup["silent"].pk])
    assert shared.bundles == {} and shared.refused[0].reason == NO_CONSENT


def test_exports_are_access_logged_and_refusals_are_not_exports(org_a, setup) -> None:
    with organization_context(org_a):
        fhir_share_export(
            connection=setup["county"], patient_ids=[setup["agrees"].pk, setup["silent"].pk], actor_label="nightly"
        )
        [log] = AccessLog.objects.filter(action=AccessAction.EXPORT)
    assert log.object_ids == [str(setup["agrees"].pk)]
    assert f"patients.patient:{setup['agrees'].pk}" in log.records
    assert f"patients.patient:{setup['silent'].pk}" not in log.records
    assert f"integrations.fhirconnection:{setup['county'].pk}" in log.records


def test_the_export_command_refuses_a_patient_without_consent(org_a, setup, tmp_path) -> None:
    out = tmp_path / "bundle.json"
    common = ["--organization", org_a.slug, "--connection", str(setup["county"].pk), "--output", str(out)]
    with pytest.raises(CommandError) as refused:
        call_command("export_fhir", "--patient", "SH-4", *common)
    assert str(refused.value) == f"Patient #{setup['silent'].pk} refused: {NO_CONSENT}"
    assert not out.exists()
    call_command("export_fhir", "--patient", "SH-1", *common)
    assert json.loads(out.read_text())["resourceType"] == "Bundle"


def test_the_consent_tab_offers_this_organizations_connections_only(org_a, org_b, setup) -> None:
    with organization_context(org_b):
        FhirConnection.objects.create(name="Elsewhere EHR", base_url="https://elsewhere.example/fhir")
    with organization_context(org_a):
        assert consent_parties() == {party_key(setup["county"]): "County EHR", party_key(setup["lab"]): "Reference lab"}
