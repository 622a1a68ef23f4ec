"""Questionnaires (issue 15, item 2): PHQ-9 and GAD-7 scored as published (sum of 0-3 per item,
severity bands); a total at the organization's threshold, or any answer above 0 to PHQ-9 item 9,
opens one urgent task at once and shows the patient the crisis text; the link keeps partial answers,
completes once, expires, and refuses answers outside the options naming the question; sending
respects consent and quiet hours; a definition that is not a valid R4 Questionnaire is refused.

Runs under every wall clock (tests/clocks.py); times are relative to the test's clock.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from engagement import links
from engagement.models import OutboundMessage, Questionnaire, QuestionnaireResponse, Rule
from engagement.questionnaires import definitions, scoring, services
from engagement.services import consent_set, rule_materialize, rule_save
from healthcrm.tenancy import organization_context
from patients.models import CareTask, Condition, Observation
from tests.engagement.conftest import configure
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

PHONE = "+13125550166"
PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
FREQUENCY_CODES = [code for code, _, _ in definitions.FREQUENCY]  # by score 0..3


def _answers(items: list[str], scores: list[int]) -> dict[str, str]:
    return {item: FREQUENCY_CODES[value] for item, value in zip(items, scores, strict=True)}


def _score(definition: definitions.Default, scores: list[int], items: list[str]) -> scoring.Result:
    rules = definition.scoring
    return scoring.score(
        definition.build(),
        _answers(items, scores),
        bands=rules.bands,
        alert_at=rules.alert_at,
        alert_items=rules.alert_items,
    )


PHQ9, GAD7, _ = definitions.DEFAULTS


# -- Scoring against published examples (hand-computed) ------------------------------------------


@pytest.mark.parametrize(
    ("scores", "total", "band"),
    [
        ([0, 0, 0, 0, 0, 0, 0, 0, 0], 0, "Minimal depression"),
        ([1, 1, 1, 1, 0, 0, 0, 0, 0], 4, "Minimal depression"),  # 4: top of 0-4
        ([1, 1, 1, 1, 1, 0, 0, 0, 0], 5, "Mild depression"),
        ([2, 2, 1, 1, 1, 1, 1, 0, 0], 9, "Mild depression"),
        ([2, 2, 2, 1, 1, 1, 1, 0, 0], 10, "Moderate depression"),  # the usual cut-off
        ([1, 2, 1, 2, 1, 1, 2, 1, 0], 11, "Moderate depression"),
        ([3, 3, 2, 2, 1, 1, 1, 1, 0], 14, "Moderate depression"),
        ([3, 3, 2, 2, 2, 1, 1, 1, 0], 15, "Moderately severe depression"),
        ([3, 3, 3, 3, 2, 2, 2, 1, 0], 19, "Moderately severe depression"),
        ([3, 3, 3, 3, 2, 2, 2, 2, 0], 20, "Severe depression"),
        ([3, 3, 3, 3, 3, 3, 3, 3, 3], 27, "Severe depression"),
    ],
)
def test_phq9_total_is_the_sum_of_the_items_and_falls_in_the_published_band(scores, total, band) -> None:
    result = _score(PHQ9, scores, PHQ9_ITEMS)
    assert (result.total, result.band) == (total, band)
    assert result.alert is (total >= 10)  # no item-9 answer in these but the last (27: alerts anyway)


@pytest.mark.parametrize(
    ("scores", "total", "band"),
    [
        ([0, 0, 1, 1, 0, 1, 0], 3, "Minimal anxiety"),  # HL7 PHR IG's GAD-7 example: 3
        ([1, 1, 1, 1, 0, 0, 0], 4, "Minimal anxiety"),
        ([1, 1, 1, 1, 1, 0, 0], 5, "Mild anxiety"),
        ([2, 2, 2, 1, 1, 1, 0], 9, "Mild anxiety"),
        ([2, 2, 2, 1, 1, 1, 1], 10, "Moderate anxiety"),
        ([3, 3, 2, 2, 2, 1, 1], 14, "Moderate anxiety"),
        ([3, 3, 3, 2, 2, 1, 1], 15, "Severe anxiety"),
        ([3, 3, 3, 3, 3, 3, 3], 21, "Severe anxiety"),
    ],
)
def test_gad7_total_and_band(scores, total, band) -> None:
    result = _score(GAD7, scores, GAD7_ITEMS)
    assert (result.total, result.band, result.alert) == (total, band, total >= 10)


def test_an_unanswered_item_leaves_no_total_but_item_9_still_alerts() -> None:
    answers = _answers(PHQ9_ITEMS, [0, 0, 0, 0, 0, 0, 0, 0, 1])
    del answers["44250-9"]
    result = scoring.score(PHQ9.build(), answers, bands=PHQ9.scoring.bands, alert_items=PHQ9.scoring.alert_items)
    assert (result.total, result.band, result.alert) == (None, "", True)


def test_the_shipped_definitions_are_valid_r4_and_coded_with_loinc() -> None:
    from fhir.resources.R4B.questionnaire import Questionnaire as FhirQuestionnaire

    for default in definitions.DEFAULTS:
        FhirQuestionnaire.model_validate(default.build())
    phq9 = PHQ9.build()
    assert phq9["code"][0]["code"] == "44249-1" and PHQ9.scoring.total_code == "44261-6"
    assert [q.link_id for q in scoring.questions(phq9)][:9] == PHQ9_ITEMS
    assert GAD7.build()["code"][0]["code"] == "69737-5" and GAD7.scoring.total_code == "70274-6"


# -- Sending and answering ------------------------------------------------------------------------


@pytest.fixture
def clinic(org_a: Any) -> Any:
    configure(org_a, quiet_start="00:00", quiet_end="00:00")  # no quiet hours unless a test sets them
    with organization_context(org_a):
        services.questionnaire_defaults_install()
    return org_a


@pytest.fixture
def patient(clinic: Any) -> Any:
    with organization_context(clinic):
        return PatientFactory(given_name="Noor", phone_mobile=PHONE, preferred_channel="sms", timezone="")


def _phq9(organization: Any) -> Questionnaire:
    with organization_context(organization):
        return Questionnaire.objects.get(key="phq-9")


def _sent(organization: Any, patient: Any, key: str = "phq-9", *, actor: Any = None) -> OutboundMessage:
    """A questionnaire message as the delivery engine leaves it once sent."""
    with organization_context(organization):
        questionnaire = Questionnaire.objects.get(key=key)
        message = services.questionnaire_send(
            patient=patient, questionnaire=questionnaire, channel="sms", key="k" * 20 + key, actor=actor
        )
        OutboundMessage.objects.filter(pk=message.pk).update(status="sent", sent_at=timezone.now())
        message.refresh_from_db()
        return message


def _url(organization: Any, message: Any, *, issued: datetime | None = None) -> str:
    token = links.make_token(organization_id=organization.pk, message_id=message.pk, action="questionnaire", now=issued)
    return f"/engagement/l/{token}/"


def _post(client: Any, url: str, scores: list[int], *, items: list[str] = PHQ9_ITEMS, action: str = "submit") -> Any:
    return client.post(url, {**_answers(items[: len(scores)], scores), "action": action})


def test_a_score_of_12_is_stored_scored_on_the_record_and_opens_one_urgent_task(client, clinic, patient) -> None:
    message = _sent(clinic, patient)
    url = _url(clinic, message)
    page = client.get(url)
    assert page.status_code == 200 and b"Hi Noor" in page.content
    assert b"Quenby" not in page.content and patient.family_name.encode() not in page.content  # first name only
    response = _post(client, url, [2, 2, 1, 2, 1, 1, 2, 1, 0])  # 12
    assert response.status_code == 200
    assert b"Get help now" in response.content and b"988" in response.content  # the default crisis text
    with organization_context(clinic):
        (answered,) = QuestionnaireResponse.objects.all()
        assert (answered.status, answered.score, answered.band, answered.alerted) == (
            "completed",
            12,
            "Moderate depression",
            True,
        )
        resource = json.loads(answered.resource)
        assert resource["resourceType"] == "QuestionnaireResponse" and len(resource["item"]) == 9
        observation = Observation.objects.get(patient=patient)
        assert (observation.code, observation.category, observation.value_quantity) == ("44261-6", "survey", 12)
        assert observation.abnormal_flag == "H" and observation.value_display == "12"  # 12 >= 10: flagged
        (task,) = CareTask.objects.filter(patient=patient)
        assert (task.priority, task.status, task.assignee_role) == ("urgent", "open", "nurse")
        assert task.due_date == timezone.now().astimezone(clinic.zone).date()
        assert answered.task_id == task.pk and answered.observation_id == observation.pk
        with connection_cursor() as cursor:  # the answers are encrypted at rest
            cursor.execute("SELECT resource FROM engagement_questionnaireresponse WHERE id = %s", [answered.pk])
            assert "LA65" not in cursor.fetchone()[0]


def connection_cursor() -> Any:
    from django.db import connection

    return connection.cursor()


def test_item_9_above_0_opens_an_urgent_task_whatever_the_total(client, clinic, patient) -> None:
    message = _sent(clinic, patient)
    response = _post(client, _url(clinic, message), [0, 0, 0, 0, 0, 0, 0, 0, 1])  # total 1
    assert b"Get help now" in response.content
    with organization_context(clinic):
        answered = QuestionnaireResponse.objects.get()
        assert (answered.score, answered.band, answered.alerted) == (1, "Minimal depression", True)
        (task,) = CareTask.objects.filter(patient=patient)
        assert task.priority == "urgent" and "self-harm" in task.details


def test_below_the_threshold_no_task_and_no_crisis_box(client, clinic, patient) -> None:
    message = _sent(clinic, patient)
    response = _post(client, _url(clinic, message), [2, 2, 1, 1, 1, 1, 1, 0, 0])  # 9
    assert response.status_code == 200 and b"Get help now" not in response.content
    with organization_context(clinic):
        assert QuestionnaireResponse.objects.get().score == 9
        assert not CareTask.objects.filter(patient=patient).exists()
        assert Observation.objects.get(patient=patient).abnormal_flag == "N"


def test_the_organization_sets_its_own_threshold_and_crisis_text(client, clinic, patient) -> None:
    clinic.settings = {"questionnaires": {"alert_at": {"phq-9": 15}, "crisis_text": "Call Northside at 555-0100."}}
    clinic.save(update_fields=["settings"])
    message = _sent(clinic, patient)
    calm = _post(client, _url(clinic, message), [2, 2, 1, 2, 1, 1, 2, 1, 0])  # 12 < 15
    assert b"Get help now" not in calm.content
    with organization_context(clinic):
        assert not CareTask.objects.exists()
    second = _sent(clinic, patient, actor=None, key="phq-9")  # the same form key: the same message
    assert second.pk == message.pk
    with organization_context(clinic):
        other = services.questionnaire_send(
            patient=patient, questionnaire=_phq9(clinic), channel="sms", key="z" * 20, actor=None
        )
        OutboundMessage.objects.filter(pk=other.pk).update(status="sent", sent_at=timezone.now())
    high = _post(client, _url(clinic, other), [3, 3, 2, 2, 2, 1, 1, 1, 0])  # 15
    assert b"Call Northside at 555-0100." in high.content and b"988" not in high.content
    with organization_context(clinic):
        assert CareTask.objects.filter(priority="urgent").count() == 1


def test_partial_answers_are_kept_and_the_form_resumes_with_them(client, clinic, patient) -> None:
    message = _sent(clinic, patient)
    url = _url(clinic, message)
    saved = _post(client, url, [1, 2, 3], action="save")
    assert saved.status_code == 200 and b"Your answers so far are saved" in saved.content
    with organization_context(clinic):
        partial = QuestionnaireResponse.objects.get()
        assert (partial.status, partial.score) == ("in-progress", None)
        assert services.answers_of(partial) == _answers(PHQ9_ITEMS[:3], [1, 2, 3])
        assert not Observation.objects.exists() and not CareTask.objects.exists()
    again = client.get(url)
    assert again.status_code == 200
    assert 'value="LA6571-9" id="id_44259-0_3" checked' in again.content.decode()  # item 3 answered 3
    assert 'value="LA6571-9" id="id_44254-1_3" checked' not in again.content.decode()  # item 4 not yet
    incomplete = _post(client, url, [1, 2, 3])  # submitted with six questions unanswered
    assert incomplete.status_code == 400 and b"Question 4 (Feeling tired or having little energy)" in incomplete.content
    done = _post(client, url, [1, 2, 3, 0, 0, 0, 0, 0, 0])
    assert done.status_code == 200
    with organization_context(clinic):
        assert QuestionnaireResponse.objects.get().score == 6  # still one response for the link


def test_an_answer_outside_the_options_is_refused_naming_the_question(client, clinic, patient) -> None:
    message = _sent(clinic, patient)
    url = _url(clinic, message)
    answers = {**_answers(PHQ9_ITEMS, [0] * 9), "44259-0": "LA9999-9", "action": "submit"}
    response = client.post(url, answers)
    assert response.status_code == 400
    assert "Question 3 (Trouble falling or staying asleep, or sleeping too much)" in response.content.decode()
    with organization_context(clinic):
        assert not QuestionnaireResponse.objects.exists() and not Observation.objects.exists()
    with organization_context(clinic), pytest.raises(ValidationError, match="Question 1"):
        services.answers_check(_phq9(clinic), {"44250-9": "7"}, complete=False)


def test_the_link_is_single_use_once_completed(client, clinic, patient) -> None:
    message = _sent(clinic, patient)
    url = _url(clinic, message)
    assert _post(client, url, [0] * 9).status_code == 200
    for reply in (client.get(url), _post(client, url, [3] * 9), _post(client, url, [3] * 3, action="save")):
        assert reply.status_code == 410 and b"already been answered" in reply.content
        assert b"Not at all" not in reply.content  # no question, no answer shown
    with organization_context(clinic):
        assert QuestionnaireResponse.objects.get().score == 0
        assert Observation.objects.count() == 1 and not CareTask.objects.exists()


def test_an_expired_or_tampered_link_shows_nothing_and_writes_nothing(client, clinic, patient) -> None:
    message = _sent(clinic, patient)
    issued = timezone.now() - links.QUESTIONNAIRE_VALID_FOR - timedelta(minutes=1)
    expired = _url(clinic, message, issued=issued)
    for reply in (client.get(expired), _post(client, expired, [3] * 9)):
        assert reply.status_code == 410 and b"expired" in reply.content and b"Noor" not in reply.content
    fresh = _url(clinic, message)
    tampered = fresh[:-6] + ("A" if fresh[-6] != "A" else "B") + fresh[-5:]
    assert client.post(tampered, _answers(PHQ9_ITEMS, [3] * 9)).status_code == 404
    with organization_context(clinic):
        assert not QuestionnaireResponse.objects.exists() and not Observation.objects.exists()
    # Within its week the same message's link still works.
    with time_machine.travel(timezone.now() + timedelta(days=6), tick=True):
        assert client.get(fresh).status_code == 200


# -- Sending: consent and quiet hours ----------------------------------------------------------------


def test_an_opted_out_patient_gets_no_questionnaire(clinic, patient) -> None:
    with organization_context(clinic):
        consent_set(patient=patient, channel="sms", status="opted_out", source="staff")
        with pytest.raises(ValidationError, match="opted out of text messages"):
            services.questionnaire_send(
                patient=patient, questionnaire=_phq9(clinic), channel="sms", key="a" * 20, actor=None
            )
        patient.email = ""
        patient.save(update_fields=["email"])
        with pytest.raises(ValidationError, match="cannot be reached"):
            services.questionnaire_send(
                patient=patient, questionnaire=_phq9(clinic), channel="", key="b" * 20, actor=None
            )
        assert not OutboundMessage.objects.exists()


def test_quiet_hours_hold_a_questionnaire_until_the_sending_window(clinic, patient) -> None:
    configure(clinic, quiet_start="08:00", quiet_end="21:00")
    night = datetime(2026, 6, 17, 2, 0, tzinfo=clinic.zone)
    with time_machine.travel(night, tick=False), organization_context(clinic):
        message = services.questionnaire_send(
            patient=patient, questionnaire=_phq9(clinic), channel="sms", key="c" * 20, actor=None
        )
        assert message.status == "pending"
        assert message.next_attempt_at == datetime(2026, 6, 17, 8, 0, tzinfo=clinic.zone)


def test_the_rule_sends_a_questionnaire_once_per_period_to_its_cohort(clinic, patient) -> None:
    with organization_context(clinic):
        other = PatientFactory(given_name="Ola", phone_mobile="+13125550167", preferred_channel="sms", timezone="")
        Condition.objects.create(patient=patient, code="35489007", display="Depressive disorder")
        rule = rule_save(
            name="PHQ-9 for depression",
            kind="questionnaire",
            template_key="questionnaire",
            params={"questionnaire": "phq-9", "condition_code": "35489007", "every_days": 90},
        )
        now = timezone.now()
        rule_materialize(rule=rule, now=now)
        rule_materialize(rule=rule, now=now + timedelta(hours=1))
        (row,) = OutboundMessage.objects.filter(rule=rule)
        assert (row.patient_id, row.subject_type, row.subject_id) == (patient.pk, "questionnaire", _phq9(clinic).pk)
        assert other.pk != row.patient_id
        assert isinstance(Rule.objects.get(pk=rule.pk).params["every_days"], int)


# -- Definitions -------------------------------------------------------------------------------------


def test_an_invalid_questionnaire_json_is_refused_with_a_clear_error_and_nothing_stored(clinic) -> None:
    valid = definitions.gad7()
    with organization_context(clinic):
        before = Questionnaire.objects.count()
        with pytest.raises(ValidationError, match="This is not JSON"):
            services.questionnaire_import(data="{not json")
        with pytest.raises(ValidationError, match=r"Not a valid FHIR R4 Questionnaire: status"):
            services.questionnaire_import(data=json.dumps({k: v for k, v in valid.items() if k != "status"}))
        with pytest.raises(ValidationError, match="Not a valid FHIR R4 Questionnaire: item"):
            services.questionnaire_import(data=json.dumps({**valid, "item": [{"text": "no link id"}]}))
        with pytest.raises(ValidationError, match="resourceType must be Questionnaire"):
            services.questionnaire_import(data=json.dumps({**valid, "resourceType": "Patient"}))
        assert Questionnaire.objects.count() == before
        imported = services.questionnaire_import(data=json.dumps({**valid, "version": "2"}), key="gad-7-v2")
        assert (imported.total_code, imported.alert_at) == ("70274-6", 10)  # scored like the built-in GAD-7


# -- Views: the personas -------------------------------------------------------------------------------


def test_the_record_tab_sends_for_a_nurse_and_refuses_others(
    clinic, patient, nurse_user, frontdesk_user, coordinator_user, other_org_user, client_for
) -> None:
    from django.urls import reverse

    url = reverse("engagement:patient_questionnaires", args=[patient.pk])
    phq9 = _phq9(clinic)
    nurse = client_for(nurse_user)
    page = nurse.get(url)
    assert page.status_code == 200 and b"Send questionnaire" in page.content
    sent = nurse.post(url, {"questionnaire": phq9.pk, "channel": "sms", "key": "n" * 22}, follow=True)
    assert b"Questionnaire queued by SMS" in sent.content
    nurse.post(url, {"questionnaire": phq9.pk, "channel": "sms", "key": "n" * 22})  # resent: still one
    with organization_context(clinic):
        (message,) = OutboundMessage.objects.all()
        assert (message.subject_type, message.subject_id, message.sent_by_id) == (
            "questionnaire",
            phq9.pk,
            nurse_user.pk,
        )
    bad = nurse.post(url, {"questionnaire": "999999", "channel": "sms", "key": "m" * 22})
    assert bad.status_code == 400 and b"Choose one of this clinic" in bad.content
    coordinator = client_for(coordinator_user)
    assert coordinator.get(url).status_code == 200  # reads the answers, sends none
    assert b"Send questionnaire</h2>" not in coordinator.get(url).content
    assert coordinator.post(url, {"questionnaire": phq9.pk, "key": "c" * 22}).status_code == 403
    assert client_for(frontdesk_user).get(url).status_code == 403  # no clinical group
    assert client_for(other_org_user).get(url).status_code == 404


def test_the_import_page_refuses_an_invalid_definition_and_imports_a_valid_one(
    clinic, admin_user, nurse_user, other_org_user, client_for
) -> None:
    from django.urls import reverse

    url = reverse("engagement:questionnaires")
    admin = client_for(admin_user)
    assert b"PHQ-9 quick depression assessment" in admin.get(url).content
    refused = admin.post(url, {"text": json.dumps({"resourceType": "Questionnaire", "status": "someday"})})
    assert refused.status_code == 400 and b"Not a valid FHIR R4 Questionnaire" in refused.content
    definition = {**definitions.gad7(), "url": "https://example.org/q/gad-7-short"}
    assert admin.post(url, {"text": json.dumps(definition), "key": "gad-7-short"}).status_code == 302
    with organization_context(clinic):
        assert Questionnaire.objects.filter(key="gad-7-short").exists()
    nurse = client_for(nurse_user)
    assert nurse.get(url).status_code == 200 and b"Import a questionnaire" not in nurse.get(url).content
    assert nurse.post(url, {"text": "{}"}).status_code == 403
    assert client_for(other_org_user).get(url).status_code == 200  # its own (empty) list
    assert b"gad-7-short" not in client_for(other_org_user).get(url).content


# -- Engagement: questionnaires opened and answered (issue 15, the join of items 2 and 3) -----------


def _sent_to(organization: Any, n: int, *, at: datetime) -> OutboundMessage:
    """A PHQ-9 sent at `at` to a patient of its own."""
    with organization_context(organization):
        someone = PatientFactory(phone_mobile=f"+131255503{n:02d}", preferred_channel="sms", timezone="")
        message = services.questionnaire_send(
            patient=someone,
            questionnaire=_phq9(organization),
            channel="sms",
            key=f"engagement-{n:02d}-" + "e" * 16,
            actor=None,
        )
        OutboundMessage.objects.filter(pk=message.pk).update(status="sent", sent_at=at)
        message.refresh_from_db()
        return message


def test_opening_twice_and_completing_records_one_open_counted_twice_and_one_answer(
    client, client_for, nurse_user, clinic, patient
) -> None:
    from django.urls import reverse

    from engagement.models import EngagementEvent

    message = _sent(clinic, patient)
    url = _url(clinic, message)
    assert client.head(url).status_code == 200  # a HEAD is no open
    assert client.get(url, HTTP_USER_AGENT="Slackbot-LinkExpanding 1.0").status_code == 200  # a preview is none
    with organization_context(clinic):
        assert not EngagementEvent.objects.exists()
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200
    assert _post(client, url, [0, 0, 0, 0, 0, 0, 0, 0, 0]).status_code == 200
    with organization_context(clinic):
        events = {e.kind: e for e in EngagementEvent.objects.filter(message=message)}
        assert set(events) == {"opened", "answered"}
        assert (events["opened"].count, events["answered"].count) == (2, 1)
        assert events["answered"].patient_id == patient.pk
    nurse = client_for(nurse_user)
    tab = nurse.get(reverse("engagement:patient_engagement", args=[patient.pk])).content.decode()
    assert "Questionnaire" in tab and "PHQ-9" in tab and "(2 times)" in tab
    timeline = nurse.get(reverse("patients:timeline", args=[patient.pk])).content.decode()
    assert "Opened by the patient: PHQ-9" in timeline and "Answered by the patient: PHQ-9" in timeline


def test_saved_or_refused_answers_are_not_answered(client, clinic, patient) -> None:
    from engagement.models import EngagementEvent

    message = _sent(clinic, patient)
    url = _url(clinic, message)
    assert _post(client, url, [1, 1, 0], action="save").status_code == 200  # progress kept, not completed
    assert _post(client, url, [1, 1, 0]).status_code == 400  # submitted with questions unanswered
    refused = {**_answers(PHQ9_ITEMS, [0] * 9), "44259-0": "LA9999-9", "action": "submit"}
    assert client.post(url, refused).status_code == 400
    with organization_context(clinic):
        assert not EngagementEvent.objects.filter(kind="answered").exists()


def test_completion_counts_questionnaires_sent_opened_and_answered_in_the_period(client, clinic) -> None:
    from analytics.engagement import completion_table
    from engagement.selectors import engagement_completion

    now = timezone.now()
    answered, opened, unopened = (_sent_to(clinic, n, at=now - timedelta(hours=1)) for n in range(3))
    earlier = _sent_to(clinic, 3, at=now - timedelta(days=40))  # before the period: not counted
    for message in (answered, answered, opened, earlier):
        assert client.get(_url(clinic, message)).status_code == 200
    assert _post(client, _url(clinic, answered), [1, 0, 0, 0, 0, 0, 0, 0, 0]).status_code == 200
    assert _post(client, _url(clinic, earlier), [1, 0, 0, 0, 0, 0, 0, 0, 0]).status_code == 200
    with organization_context(clinic):
        rows = engagement_completion(start=now - timedelta(days=1), end=now + timedelta(days=1))
    [questionnaires] = [r for r in rows if r.subject_type == "questionnaire"]
    # Hand-counted: 3 sent in the period; 2 opened (one of them twice: one message); 1 answered.
    assert (questionnaires.sent, questionnaires.opened, questionnaires.answered) == (3, 2, 1)
    assert questionnaires.answerable and questionnaires.content == "Questionnaire"
    table = completion_table(rows)
    assert (table.values[("questionnaire", "answered")], table.values[("questionnaire", "not_answered")]) == (1, 2)
    with organization_context(clinic):
        assert not unopened.events.exists()
