"""Post-visit satisfaction surveys (issue 10, item 6): the survey rule puts one message per completed
visit in the outbox, once; a bare 0-10 SMS reply or the signed link form records one answer per
survey message (comment encrypted); a detractor opens one service-recovery task for the
coordinators; replies with no open survey, expired and used links record nothing; tenants never
see each other's surveys.

Times are relative to the test's clock (tests/clocks.py runs this module under every wall clock);
the end-to-end send stops the clock at 15:00 in Chicago (`daytime`) so quiet hours let it go.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from twilio.request_validator import RequestValidator

from engagement import delivery, links, services
from engagement.management.commands.seed_engagement import TEMPLATES
from engagement.models import ConversationMessage, LinkUse, OutboundMessage, Rule, SurveyResponse
from healthcrm.tenancy import organization_context
from patients.models import Appointment, CareTask
from tests.engagement.conftest import ACCOUNT, TOKEN, configure
from tests.factories import AppointmentFactory, LocationFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

PHONE = "+13125550177"
BASE = "https://crm.example.org"
COMMENT = "The waiting room was freezing and nobody said why"


def _survey_setup(organization: Any) -> Rule:
    """Outreach configured, the default survey templates (en) and an active survey rule."""
    configure(organization)
    with organization_context(organization):
        for (key, language, channel), (subject, body) in TEMPLATES.items():
            if key == "satisfaction_survey" and language == "en":
                services.template_save(key=key, language=language, channel=channel, subject=subject, body=body)
        return services.rule_save(
            name="Satisfaction survey",
            kind="survey",
            template_key="satisfaction_survey",
            params={"delay_hours": 2, "max_age_days": 3},
        )


def _visit(patient: Any, *, ended_ago: timedelta, status: str = "completed", **kw: Any) -> Any:
    """A 30-minute visit of `patient` that ended `ended_ago` before now, with the given status."""
    ends_at = timezone.now() - ended_ago
    visit = AppointmentFactory(patient=patient, starts_at=ends_at - timedelta(minutes=30), ends_at=ends_at, **kw)
    Appointment.objects.filter(pk=visit.pk).update(status=status)
    return visit


def _sent_survey(rule: Rule, patient: Any, visit: Any, *, sent_at: datetime | None = None, channel: str = "sms") -> Any:
    """A survey message about `visit`, marked sent at `sent_at` (default now), as the delivery engine leaves it."""
    message = services.outbox_enqueue(
        patient=patient,
        rule=rule,
        subject_type="survey",
        subject_id=visit.pk,
        slot="survey",
        due_at=timezone.now(),
        channel=channel,
    )
    OutboundMessage.objects.filter(pk=message.pk).update(status="sent", sent_at=sent_at or timezone.now())
    message.refresh_from_db()
    return message


def _survey_url(organization: Any, message: Any, *, issued: datetime | None = None) -> str:
    token = links.make_token(organization_id=organization.pk, message_id=message.pk, action="survey", now=issued)
    return f"/engagement/l/{token}/"


@pytest.fixture
def rule_a(org_a: Any) -> Rule:
    return _survey_setup(org_a)


@pytest.fixture
def patient(org_a: Any, rule_a: Rule) -> Any:
    with organization_context(org_a):
        return PatientFactory(given_name="Iris", phone_mobile=PHONE, preferred_channel="sms")


# -- The rule ----------------------------------------------------------------------------------


def test_the_rule_puts_one_survey_per_completed_visit_in_its_window_exactly_once(org_a, rule_a, patient) -> None:
    with organization_context(org_a):
        due = _visit(patient, ended_ago=timedelta(hours=3))  # completed, 3 h ago: in the window
        _visit(patient, ended_ago=timedelta(hours=1))  # too recent: the 2 h delay has not passed
        _visit(patient, ended_ago=timedelta(days=4))  # older than max_age_days (3)
        _visit(patient, ended_ago=timedelta(hours=5), status="no_show")  # not a completed visit
        _visit(patient, ended_ago=timedelta(hours=6), status="cancelled")
        now = timezone.now()
        services.rule_materialize(rule=rule_a, now=now)
        services.rule_materialize(rule=rule_a, now=now + timedelta(minutes=5))  # the next beat
        # The patient now prefers email: the outbox key holds the channel, the rule must still not add one.
        patient.preferred_channel = "email"
        patient.save(update_fields=["preferred_channel"])
        services.rule_materialize(rule=rule_a, now=now + timedelta(minutes=10))
        rows = list(OutboundMessage.objects.filter(rule=rule_a))
        # Of the five visits only `due` qualifies: one message, the first channel chosen (SMS).
        assert [(m.subject_type, m.subject_id, m.channel, m.slot) for m in rows] == [
            ("survey", due.pk, "sms", "survey")
        ]
        message = rows[0]
        assert message.due_at == due.ends_at + timedelta(hours=2)
        assert message.expires_at == due.ends_at + timedelta(days=3)
        assert message.is_urgent is False  # frequency caps apply to surveys


def test_an_opted_out_patient_gets_no_survey(org_a, rule_a, patient) -> None:
    with organization_context(org_a):
        patient.email = ""
        patient.save(update_fields=["email"])
        services.consent_set(patient=patient, channel="sms", status="opted_out", source="staff")
        _visit(patient, ended_ago=timedelta(hours=3))
        services.rule_materialize(rule=rule_a, now=timezone.now())
        assert OutboundMessage.objects.filter(rule=rule_a).count() == 0


def test_rule_save_refuses_a_bad_survey_window(org_a, rule_a) -> None:
    from django.core.exceptions import ValidationError

    with organization_context(org_a), pytest.raises(ValidationError, match="max_age_days"):
        services.rule_save(rule=rule_a, params={"delay_hours": 2, "max_age_days": "soon"})


# -- End to end: sent by SMS, answered by reply ------------------------------------------------------


def _inbound(client: Any, organization: Any, body: str, sid: str) -> Any:
    path = f"/integrations/twilio/{organization.slug}/inbound/"
    params = {"From": PHONE, "To": "+13125550000", "Body": body, "MessageSid": sid, "AccountSid": ACCOUNT}
    signature = RequestValidator(TOKEN).compute_signature(BASE + path, params)
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)


def test_a_reply_of_9_is_the_nps_of_the_visit_the_latest_survey_asked_about(
    client, settings, org_a, rule_a, patient, fake_twilio, daytime
) -> None:
    settings.PUBLIC_BASE_URL = BASE
    with organization_context(org_a):
        older = _visit(patient, ended_ago=timedelta(days=2))
        _sent_survey(rule_a, patient, older, sent_at=daytime - timedelta(days=1))  # the day before
        latest = _visit(patient, ended_ago=timedelta(hours=3), location=LocationFactory(name="Elm St"))
        services.rule_materialize(rule=rule_a, now=daytime)
        message = OutboundMessage.objects.get(rule=rule_a, subject_id=latest.pk)
    assert delivery.message_send(org_a, message.pk) == "sent"
    (body,) = fake_twilio.bodies_to(PHONE)
    assert body.startswith("Hi Iris, thank you for visiting North Clinic.") and "Reply 0-10" in body
    assert re.search(r"https://crm\.example\.org/engagement/l/[^/\s]+/", body)  # the signed survey link

    response = _inbound(client, org_a, " 9 ", "SMsurvey1")
    assert response.status_code == 200 and b"thank you for your feedback" in response.content
    with organization_context(org_a):
        (answer,) = SurveyResponse.objects.all()
        assert (answer.message_id, answer.appointment_id, answer.patient_id) == (message.pk, latest.pk, patient.pk)
        assert (answer.nps, answer.csat_access, answer.csat_explain, answer.comment) == (9, None, None, "")
        assert (answer.channel, answer.practitioner_id, answer.location_id) == (
            "sms_reply",
            latest.practitioner_id,
            latest.location_id,
        )
        assert answer.recovery_task is None  # a promoter: nothing to recover
        received = ConversationMessage.objects.get(provider_sid="SMsurvey1")
        assert received.keyword == "NPS" and received.read_at is not None  # handled, not waiting for staff
    # A second number answers nothing more: the latest survey is answered (the older one is not reopened).
    again = _inbound(client, org_a, "10", "SMsurvey2")
    assert again.status_code == 200 and b"<Message>" not in again.content
    with organization_context(org_a):
        assert SurveyResponse.objects.count() == 1
        assert ConversationMessage.objects.get(provider_sid="SMsurvey2").read_at is None  # left for staff


def test_a_reply_of_3_opens_exactly_one_recovery_task_for_the_coordinators(org_a, rule_a, patient) -> None:
    with organization_context(org_a):
        visit = _visit(patient, ended_ago=timedelta(hours=3))
        _sent_survey(rule_a, patient, visit)
        assert services.inbound_receive(from_number=PHONE, body="3", sid="SM3").endswith("thank you for your feedback.")
        services.inbound_receive(from_number=PHONE, body="3", sid="SM3b")  # sent twice: answered already
        services.inbound_receive(from_number=PHONE, body="3", sid="SM3")  # a replayed webhook
        (answer,) = SurveyResponse.objects.all()
        (task,) = CareTask.objects.filter(patient=patient)
        assert answer.nps == 3 and answer.recovery_task_id == task.pk
        assert (task.assignee_role, task.assignee_id, task.status) == ("coordinator", None, "open")
        assert task.due_date == timezone.now().astimezone(org_a.zone).date() + timedelta(days=2)


@pytest.mark.parametrize("body", ["7", "0", "10"])
def test_a_number_with_no_open_survey_is_not_recorded(org_a, rule_a, patient, body) -> None:
    other = timedelta(days=8)  # sent longer ago than the survey stays open (7 days)
    with organization_context(org_a):
        services.inbound_receive(from_number=PHONE, body=body, sid="SMnone")  # no survey at all
        visit = _visit(patient, ended_ago=timedelta(days=9))
        _sent_survey(rule_a, patient, visit, sent_at=timezone.now() - other)
        services.inbound_receive(from_number=PHONE, body=body, sid="SMold")
        assert SurveyResponse.objects.count() == 0 and CareTask.objects.count() == 0
        unread = ConversationMessage.objects.filter(read_at__isnull=True, keyword="").count()
        assert unread == 2  # both wait for staff like any text


@pytest.mark.parametrize("body", ["11", "9 out of 10", "-1", "3.5", "nine"])
def test_text_that_is_not_a_bare_0_to_10_is_not_a_score(org_a, rule_a, patient, body) -> None:
    with organization_context(org_a):
        _sent_survey(rule_a, patient, _visit(patient, ended_ago=timedelta(hours=3)))
        assert services.inbound_receive(from_number=PHONE, body=body, sid="SMx") == ""
        assert SurveyResponse.objects.count() == 0


def test_keywords_still_work_while_a_survey_is_open(org_a, rule_a, patient) -> None:
    with organization_context(org_a):
        _sent_survey(rule_a, patient, _visit(patient, ended_ago=timedelta(hours=3)))
        booked = AppointmentFactory(patient=patient, starts_at=timezone.now() + timedelta(days=2))
        assert "confirmed" in services.inbound_receive(from_number=PHONE, body="C", sid="SMc")
        assert Appointment.objects.get(pk=booked.pk).status == "confirmed"
        assert "unsubscribed" in services.inbound_receive(from_number=PHONE, body="STOP", sid="SMs")
        assert "Call us at (312) 555-0000" in services.inbound_receive(from_number=PHONE, body="HELP", sid="SMh")
        assert SurveyResponse.objects.count() == 0


# -- The link form -------------------------------------------------------------------------------


def test_the_link_form_records_nps_csat_and_an_encrypted_comment_once(client, org_a, rule_a, patient) -> None:
    with organization_context(org_a):
        visit = _visit(patient, ended_ago=timedelta(hours=3))
        message = _sent_survey(rule_a, patient, visit, channel="email")
    url = _survey_url(org_a, message)
    page = client.get(url)
    assert page.status_code == 200 and b'data-testid="survey-form"' in page.content
    assert b"How easy was it to get an appointment?" in page.content
    with organization_context(org_a):  # opening the link (link previewers do) records nothing
        assert SurveyResponse.objects.count() == 0 and LinkUse.objects.count() == 0

    posted = client.post(url, {"nps": "8", "csat_access": "4", "csat_explain": "5", "comment": COMMENT})
    assert posted.status_code == 200 and b"Thank you for your feedback" in posted.content
    with organization_context(org_a):
        (answer,) = SurveyResponse.objects.all()
        assert (answer.nps, answer.csat_access, answer.csat_explain) == (8, 4, 5)
        assert (answer.comment, answer.channel, answer.appointment_id) == (COMMENT, "link", visit.pk)
        assert list(LinkUse.objects.values_list("message_id", "action")) == [(message.pk, "survey")]
        with connection.cursor() as cursor:
            cursor.execute("SELECT comment FROM engagement_surveyresponse WHERE id = %s", [answer.pk])
            (raw,) = cursor.fetchone()
        assert raw and COMMENT not in raw and "waiting room" not in raw  # Fernet ciphertext in the column

    # Used: a second post and a second look both answer the polite 410, and nothing changes.
    second = client.post(url, {"nps": "0"})
    assert second.status_code == 410 and b"already been answered" in second.content
    look = client.get(url)
    assert look.status_code == 410 and b"<form" not in look.content
    with organization_context(org_a):
        assert list(SurveyResponse.objects.values_list("nps", flat=True)) == [8]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({}, b"Choose a number from 0 to 10."),  # the NPS is required
        ({"nps": "11"}, b"Choose a number from 0 to 10."),
        ({"nps": "-1", "csat_access": "3"}, b"Choose a number from 0 to 10."),
        ({"nps": "7", "csat_access": "6"}, b"Choose a number from 1 to 5, or leave it empty."),
        ({"nps": "7", "csat_explain": "zero"}, b"Choose a number from 1 to 5, or leave it empty."),
        ({"nps": "7", "comment": "x" * 2001}, b"at most 2000 characters"),
    ],
)
def test_bad_answers_show_the_form_again_with_errors_and_record_nothing(
    client, org_a, rule_a, patient, data, error
) -> None:
    with organization_context(org_a):
        message = _sent_survey(rule_a, patient, _visit(patient, ended_ago=timedelta(hours=3)))
    response = client.post(_survey_url(org_a, message), data)
    assert response.status_code == 400 and b'data-testid="survey-form"' in response.content
    assert b'role="alert"' in response.content and error in response.content
    with organization_context(org_a):
        assert SurveyResponse.objects.count() == 0 and LinkUse.objects.count() == 0
    # The form keeps the link usable: a corrected answer is recorded.
    assert client.post(_survey_url(org_a, message), {"nps": "8"}).status_code == 200


def test_a_detractor_answer_by_link_opens_one_task_whose_title_has_no_comment(client, org_a, rule_a, patient) -> None:
    with organization_context(org_a):
        message = _sent_survey(rule_a, patient, _visit(patient, ended_ago=timedelta(hours=3)))
    url = _survey_url(org_a, message)
    assert client.post(url, {"nps": "2", "comment": COMMENT}).status_code == 200
    assert client.post(url, {"nps": "2", "comment": COMMENT}).status_code == 410
    with organization_context(org_a):
        assert services.inbound_receive(from_number=PHONE, body="1", sid="SMafter") == ""  # answered by link
        (task,) = CareTask.objects.all()
        assert task.assignee_role == "coordinator"
        assert "freezing" not in task.title and "freezing" not in task.details
        assert SurveyResponse.objects.get().recovery_task_id == task.pk


def test_an_answer_by_reply_closes_the_link(client, org_a, rule_a, patient) -> None:
    with organization_context(org_a):
        message = _sent_survey(rule_a, patient, _visit(patient, ended_ago=timedelta(hours=3)))
        services.inbound_receive(from_number=PHONE, body="10", sid="SM10")
    response = client.get(_survey_url(org_a, message))
    assert response.status_code == 410 and b"already been answered" in response.content


def test_a_survey_link_expires_seven_days_after_it_was_issued(client, org_a, rule_a, patient) -> None:
    issued = timezone.now() - timedelta(days=7, hours=1)  # inside the 14-day link age, past the survey's 7
    with organization_context(org_a):
        message = _sent_survey(rule_a, patient, _visit(patient, ended_ago=timedelta(days=8)), sent_at=issued)
    url = _survey_url(org_a, message, issued=issued)
    for response in (client.get(url), client.post(url, {"nps": "9"})):
        assert response.status_code == 410 and b"this link has expired" in response.content
    with organization_context(org_a):
        assert SurveyResponse.objects.count() == 0


# -- Two organizations ---------------------------------------------------------------------------


def test_survey_links_and_answers_stay_in_their_organization(client, org_a, org_b, rule_a, patient) -> None:
    rule_b = _survey_setup(org_b)
    with organization_context(org_a):
        message_a = _sent_survey(rule_a, patient, _visit(patient, ended_ago=timedelta(hours=3)))
    with organization_context(org_b):
        patient_b = PatientFactory(given_name="Bo", phone_mobile=PHONE, preferred_channel="sms")  # same phone
        message_b = _sent_survey(
            rule_b, patient_b, _visit(patient_b, ended_ago=timedelta(hours=3), practitioner=PractitionerFactory())
        )
    # A token naming organization B with A's message id (or the other way round) finds nothing.
    forged_b = links.make_token(organization_id=org_b.pk, message_id=message_a.pk, action="survey")
    forged_a = links.make_token(organization_id=org_a.pk, message_id=message_b.pk, action="survey")
    assert client.get(f"/engagement/l/{forged_b}/").status_code == 404
    assert client.post(f"/engagement/l/{forged_a}/", {"nps": "1"}).status_code == 404
    # B's patient answers B's survey by text: A's survey, to the same number, stays open.
    with organization_context(org_b):
        services.inbound_receive(from_number=PHONE, body="6", sid="SMb")
        assert list(SurveyResponse.objects.values_list("message_id", "nps")) == [(message_b.pk, 6)]
    with organization_context(org_a):
        assert SurveyResponse.objects.count() == 0 and CareTask.objects.count() == 0
    assert client.post(_survey_url(org_a, message_a), {"nps": "9"}).status_code == 200
    with organization_context(org_a):
        assert list(SurveyResponse.objects.values_list("message_id", "nps")) == [(message_a.pk, 9)]
    with organization_context(org_b):
        assert SurveyResponse.objects.count() == 1
        assert CareTask.objects.count() == 1  # B's detractor (6), in B


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_answers_record_one_response_and_one_task(org_a, monkeypatch) -> None:
    import engagement.services.surveys as surveys

    configure(org_a)
    with organization_context(org_a):
        rule = Rule.objects.create(name="Survey", kind="survey", template_key="satisfaction_survey")
        person = PatientFactory(phone_mobile=PHONE, preferred_channel="sms")
        message = _sent_survey(rule, person, _visit(person, ended_ago=timedelta(hours=3)))
    url = _survey_url(org_a, message)
    real_task = surveys.recovery_task_create

    def slow_task(**kwargs: Any) -> Any:
        time.sleep(0.3)  # hold the transaction open with the response inserted: the other post arrives
        return real_task(**kwargs)

    monkeypatch.setattr(surveys, "recovery_task_create", slow_task)
    start = threading.Barrier(2)
    statuses: list[int] = []

    def answer() -> None:
        try:
            start.wait(timeout=10)
            statuses.append(Client().post(url, {"nps": "2"}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=answer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200, 410]
    with organization_context(org_a):
        assert SurveyResponse.objects.count() == 1 and CareTask.objects.count() == 1
        assert LinkUse.objects.count() == 1


def test_staff_read_the_answer_on_the_patients_page_and_analysts_cannot(
    client, org_a, rule_a, patient, coordinator_user, analyst_user, client_for
) -> None:
    from django.urls import reverse

    with organization_context(org_a):
        message = _sent_survey(rule_a, patient, _visit(patient, ended_ago=timedelta(hours=3)))
    client.post(_survey_url(org_a, message), {"nps": "4", "csat_access": "2", "comment": COMMENT})
    url = reverse("engagement:patient_communications", args=[patient.pk])
    page = client_for(coordinator_user).get(url)
    assert page.status_code == 200 and b'data-testid="survey-answer"' in page.content
    assert b"NPS 4/10" in page.content and COMMENT.encode() in page.content
    assert client_for(analyst_user).get(url).status_code in (403, 404)
