"""Issue 15 item 4: a patient's questionnaire responses and the score Observations they produced are
part of the FHIR export (valid R4, the score derived from the response), and come back on import
into another clinic: the response (answers encrypted, scored again with that clinic's definition)
and its score on the record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from engagement.models import OutboundMessage, Questionnaire, QuestionnaireResponse
from engagement.questionnaires import definitions, services
from healthcrm.tenancy import organization_context
from integrations.fhir.export import fhir_export_patient
from patients.models import Observation, Patient
from tests.engagement.conftest import configure
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
SCORES = [2, 2, 1, 2, 1, 1, 2, 1, 0]  # 12


def _answered(organization: Any) -> Patient:
    configure(organization, quiet_start="00:00", quiet_end="00:00")
    with organization_context(organization):
        services.questionnaire_defaults_install()
        patient = PatientFactory(given_name="Noor", mrn="Q-1", phone_mobile="+13125550168", preferred_channel="sms")
        message = services.questionnaire_send(
            patient=patient,
            questionnaire=Questionnaire.objects.get(key="phq-9"),
            channel="sms",
            key="e" * 20,
            actor=None,
        )
        OutboundMessage.objects.filter(pk=message.pk).update(status="sent", sent_at=timezone.now())
        from engagement import links

        claims = links.read_token(
            links.make_token(organization_id=organization.pk, message_id=message.pk, action="questionnaire")
        )
        codes = [code for code, _, _ in definitions.FREQUENCY]
        answers = {item: codes[score] for item, score in zip(PHQ9_ITEMS, SCORES, strict=True)}
        saved = services.questionnaire_answers_save(
            message=message, claims=claims, answers=answers, submit=True, now=timezone.now()
        )
        assert saved.state == "done"
        return patient


def test_responses_and_their_scores_round_trip_through_export_and_import(org_a, org_b, import_into) -> None:
    patient = _answered(org_a)
    with organization_context(org_a):
        exported = fhir_export_patient(patient=patient)
        original = QuestionnaireResponse.objects.get()
    Bundle.model_validate(exported)
    resources = [e["resource"] for e in exported["entry"]]
    (response,) = [r for r in resources if r["resourceType"] == "QuestionnaireResponse"]
    (score,) = [r for r in resources if r["resourceType"] == "Observation"]
    assert response["questionnaire"] == definitions.CANONICAL_BASE + "phq-9|1"
    assert response["status"] == "completed" and len(response["item"]) == 9
    assert response["subject"]["reference"] == f"urn:uuid:{resources[0]['id']}"
    assert score["code"]["coding"][0]["code"] == "44261-6" and score["valueQuantity"]["value"] == 12
    assert score["category"][0]["coding"][0]["code"] == "survey"
    assert score["derivedFrom"] == [{"reference": f"urn:uuid:{response['id']}"}]

    with organization_context(org_b):
        services.questionnaire_defaults_install()  # the other clinic has PHQ-9 too
    report = import_into(org_b, json.dumps(exported), source_system="north-export")
    assert report.ok, report.as_text()
    assert report.counts["QuestionnaireResponse"]["created"] == 1
    with organization_context(org_b):
        (imported,) = QuestionnaireResponse.objects.all()
        assert imported.patient.mrn == "Q-1"
        assert imported.questionnaire == Questionnaire.objects.get(key="phq-9")
        assert (imported.status, imported.score, imported.band, imported.alerted) == (
            "completed",
            12,
            "Moderate depression",
            True,
        )
        assert services.answers_of(imported) == services.answers_of(original)
        assert imported.authored_at == original.authored_at
        (observation,) = Observation.objects.all()
        assert (observation.code, observation.category, observation.value_quantity) == ("44261-6", "survey", 12)
    again = import_into(org_b, json.dumps(exported), source_system="north-export")
    assert again.total("created") == 0 and again.total("updated") == 0


def test_a_response_to_a_questionnaire_the_clinic_does_not_have_is_kept_unscored(org_a, org_b, import_into) -> None:
    patient = _answered(org_a)
    with organization_context(org_a):
        exported = fhir_export_patient(patient=patient)
    report = import_into(org_b, json.dumps(exported), source_system="north-export")
    assert report.ok, report.as_text()
    with organization_context(org_b):
        (imported,) = QuestionnaireResponse.objects.all()
        assert (imported.questionnaire_id, imported.questionnaire_url, imported.score) == (
            None,
            definitions.CANONICAL_BASE + "phq-9",
            None,
        )
        assert len(services.answers_of(imported)) == 9


def test_a_malformed_questionnaire_response_is_reported_not_imported(org_b, import_into) -> None:
    pid = "5e1a9a52-0000-4000-8000-0000000000aa"
    patient = {"resourceType": "Patient", "id": pid, "name": [{"family": "Form", "given": ["Ann"]}]}
    broken = {
        "resourceType": "QuestionnaireResponse",
        "id": "5e1a9a52-0000-4000-8000-0000000000ab",
        "status": "finished",  # not a questionnaire-answers-status code
        "subject": {"reference": f"urn:uuid:{pid}"},
        "authored": "2026-01-02T10:00:00Z",
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in (patient, broken)],
    }
    report = import_into(org_b, bundle)
    assert not report.ok and "QuestionnaireResponse.status" in report.as_text()
    with organization_context(org_b):
        assert not QuestionnaireResponse.objects.exists()
