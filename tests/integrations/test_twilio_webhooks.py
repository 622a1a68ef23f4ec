"""Twilio webhooks: signature against PUBLIC_BASE_URL (403, nothing written otherwise), keywords,
replies linked by phone blind index, idempotent status callbacks; the client's host rewrite."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from twilio.request_validator import RequestValidator

from engagement import services
from engagement.etiquette import keyword_of
from engagement.models import Consent, ConversationMessage, OutboundMessage
from healthcrm.tenancy import organization_context
from integrations.twilio.client import send_sms
from patients.models import CareTask
from tests.engagement.conftest import ACCOUNT, TOKEN, configure, fake_twilio  # noqa: F401 - a fixture
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db

BASE = "https://crm.example.org"
PHONE = "+13125550142"


@pytest.fixture
def public(settings: Any) -> None:
    settings.PUBLIC_BASE_URL = BASE


@pytest.fixture
def patient(org_a: Any, public: None) -> Any:
    configure(org_a)
    with organization_context(org_a):
        return PatientFactory(phone_mobile=PHONE, preferred_channel="sms")


def _post(
    client: Any,
    org: Any,
    params: dict[str, str],
    *,
    kind: str = "inbound",
    sign: bool = True,
    token: str = TOKEN,
    url: str | None = None,
) -> Any:
    path = f"/integrations/twilio/{org.slug}/{kind}/"
    headers = {}
    if sign:
        headers["HTTP_X_TWILIO_SIGNATURE"] = RequestValidator(token).compute_signature(url or BASE + path, params)
    return client.post(path, params, **headers)


def _inbound(body: str, sid: str = "SMin1") -> dict[str, str]:
    return {"From": PHONE, "To": "+13125550000", "Body": body, "MessageSid": sid, "AccountSid": ACCOUNT}


@pytest.mark.parametrize(
    "word", ["STOP", "stop", "  Stop ", "STOPALL", "unsubscribe", "CANCEL", "end", "QUIT", "REVOKE", "OptOut"]
)
def test_every_stop_keyword_opts_out_and_cancels_pending_sms(client, org_a, patient, word) -> None:
    with organization_context(org_a):
        message = services.outbox_enqueue(
            patient=patient,
            subject_type="x",
            slot="1",
            due_at=timezone.now() + timedelta(hours=1),
            template_key="lab_results",
        )
    response = _post(client, org_a, _inbound(word))
    assert response.status_code == 200 and b"unsubscribed" in response.content
    with organization_context(org_a):
        assert Consent.objects.get(patient=patient, kind="sms").status == "opted_out"
        assert OutboundMessage.objects.get(pk=message.pk).status == "cancelled"


def test_keywords_are_whole_messages() -> None:
    assert keyword_of(" start ") == "START" and keyword_of("UNSTOP") == "START" and keyword_of("help") == "HELP"
    assert (
        keyword_of("please stop calling") == "" and keyword_of("yes") == "CONFIRM" and keyword_of("r") == "RESCHEDULE"
    )


def test_start_opts_back_in_and_help_answers_with_the_clinic_contact(client, org_a, patient) -> None:
    _post(client, org_a, _inbound("STOP", "SM1"))
    response = _post(client, org_a, _inbound("Start", "SM2"))
    with organization_context(org_a):
        assert Consent.objects.get(patient=patient, kind="sms").status == "opted_in"
    response = _post(client, org_a, _inbound("HELP", "SM3"))
    assert b"(312) 555-0000" in response.content and b"North Clinic" in response.content


def test_bad_or_missing_signature_is_403_and_writes_nothing(client, org_a, patient) -> None:
    assert _post(client, org_a, _inbound("STOP"), sign=False).status_code == 403
    assert _post(client, org_a, _inbound("STOP"), token="wrong-token").status_code == 403
    # Signed for the http:// URL (what a spoofed Host or a proxy without TLS would give): refused.
    assert (
        _post(
            client,
            org_a,
            _inbound("STOP"),
            url=BASE.replace("https", "http") + f"/integrations/twilio/{org_a.slug}/inbound/",
        ).status_code
        == 403
    )
    # Signed with organization A's token but posted to organization B's URL.
    with organization_context(org_a):
        assert ConversationMessage.objects.count() == 0 and Consent.objects.count() == 0


def test_reply_c_confirms_and_r_creates_a_front_desk_task_and_the_inbox_counts_unread(
    client, org_a, patient, nurse_user, client_for
) -> None:
    with organization_context(org_a):
        appointment = AppointmentFactory(patient=patient, starts_at=timezone.now() + timedelta(days=1))
    assert b"confirmed" in _post(client, org_a, _inbound("C", "SMc")).content
    _post(client, org_a, _inbound("R", "SMr"))
    _post(client, org_a, _inbound("Can I bring my daughter?", "SMq"))
    _post(client, org_a, _inbound("Can I bring my daughter?", "SMq"))  # replayed: stored once
    with organization_context(org_a):
        appointment.refresh_from_db()
        assert appointment.status == "confirmed"
        assert CareTask.objects.filter(patient=patient, assignee_role="frontdesk").count() == 1
        assert ConversationMessage.objects.filter(patient=patient).count() == 3
    page = client_for(nurse_user).get("/engagement/conversations/")
    assert page.status_code == 200 and b'data-testid="unread">3<' in page.content
    page = client_for(nurse_user).get(f"/engagement/conversations/{patient.pk}/")
    assert b"Can I bring my daughter?" in page.content
    assert b'data-testid="unread"' not in client_for(nurse_user).get("/engagement/conversations/").content


def test_status_callbacks_are_idempotent(client, org_a, patient) -> None:
    with organization_context(org_a):
        message = services.outbox_enqueue(
            patient=patient, subject_type="x", slot="1", due_at=timezone.now(), template_key="lab_results"
        )
        OutboundMessage.objects.filter(pk=message.pk).update(status="sent", provider_sid="SMabc")
    delivered = {"MessageSid": "SMabc", "MessageStatus": "delivered", "AccountSid": ACCOUNT}
    assert _post(client, org_a, delivered, kind="status").status_code == 204
    with organization_context(org_a):
        first = OutboundMessage.objects.get(pk=message.pk)
    assert first.status == "delivered"
    _post(client, org_a, delivered, kind="status")  # replay
    _post(client, org_a, {"MessageSid": "SMabc", "MessageStatus": "sent", "AccountSid": ACCOUNT}, kind="status")  # late
    with organization_context(org_a):
        again = OutboundMessage.objects.get(pk=message.pk)
    assert (
        again.status == "delivered"
        and again.updated_at == first.updated_at
        and again.delivered_at == first.delivered_at
    )


def test_the_client_rewrites_the_host_and_sends_a_twilio_shaped_request(fake_twilio) -> None:  # noqa: F811
    sent = send_sms(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        to=PHONE,
        body="Hi",
        from_number="+13125550000",
        status_callback=BASE + "/integrations/twilio/north/status/",
    )
    accepted = fake_twilio.accepted[0]
    assert sent.sid == accepted.sid and accepted.auth_user == ACCOUNT and accepted.account_sid == ACCOUNT
    assert accepted.status_callback.endswith("/status/") and accepted.body == "Hi"
