"""The patient record's Messages tab (#11 item 6): a full page with the record's layout and tabs (it
was a bare fragment), the history, and a one-off SMS or email to the patient that goes through the
outbox: consent, quiet hours and caps apply, and a form sent twice sends one message."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse

from engagement import delivery, services, tasks
from engagement.models import OutboundMessage
from healthcrm.tenancy import organization_context
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
KEY = "k" * 22


@pytest.fixture
def patient_a(org_a: Any, outreach_a: Any) -> Any:
    with organization_context(org_a):
        return PatientFactory(
            given_name="Rosa",
            family_name="Quillfeather",
            phone_mobile="+13125550101",
            email="rosa@example.org",
            preferred_channel="sms",
            timezone="America/Chicago",
        )


@pytest.fixture
def queued(monkeypatch: Any) -> list[tuple[Any, ...]]:
    """The send tasks the view enqueued (ids only), instead of a broker."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.outbox_send_task, "delay", lambda *args: calls.append(args))
    return calls


def _url(patient: Any) -> str:
    return reverse("engagement:patient_communications", args=[patient.pk])


def _send(client: Any, patient: Any, capture: Any, **data: str) -> Any:
    with capture(execute=True):
        return client.post(_url(patient), {"channel": "sms", "body": "Please call us back.", "key": KEY, **data})


def _messages(org: Any) -> list[OutboundMessage]:
    with organization_context(org):
        return list(OutboundMessage.objects.all())


def test_the_messages_tab_is_a_page_of_the_record(client_for, nurse_user, patient_a) -> None:
    page = client_for(nurse_user).get(_url(patient_a)).content.decode()
    assert '<header class="topbar">' in page and "<title>Patient" in page  # the site's layout
    assert "<h1>Rosa Quillfeather" in page  # whose record
    assert re.search(r'aria-current="page">Messages</a>', page)  # the tab is marked current
    assert reverse("patients:detail", args=[patient_a.pk]) in page  # the way back: the other tabs
    assert 'id="send-message"' in page and 'data-testid="communication-history"' in page
    # From the record's Summary tab, Messages is a tab (no longer a button to a bare fragment).
    summary = client_for(nurse_user).get(reverse("patients:detail", args=[patient_a.pk])).content.decode()
    assert f'href="{_url(patient_a)}" hx-get="{_url(patient_a)}" hx-target="#patient-tabs"' in summary


def test_htmx_opens_the_tab_without_the_page_around_it(client_for, nurse_user, patient_a) -> None:
    page = client_for(nurse_user).get(_url(patient_a), HTTP_HX_REQUEST="true").content.decode()
    assert 'aria-current="page">Messages<' in page and "topbar" not in page


def test_other_organization_gets_404_and_roles_without_outreach_403(
    client_for, other_org_user, analyst_user, patient_a, org_a, queued, django_capture_on_commit_callbacks
) -> None:
    assert client_for(other_org_user).get(_url(patient_a)).status_code == 404
    assert _send(client_for(other_org_user), patient_a, django_capture_on_commit_callbacks).status_code == 404
    assert client_for(analyst_user).get(_url(patient_a)).status_code == 403
    assert _send(client_for(analyst_user), patient_a, django_capture_on_commit_callbacks).status_code == 403
    assert _messages(org_a) == [] and queued == []


def test_a_one_off_sms_goes_once_even_when_the_form_is_sent_twice(
    client_for, nurse_user, patient_a, org_a, fake_twilio, daytime, queued, django_capture_on_commit_callbacks
) -> None:
    client = client_for(nurse_user)
    for _ in range(2):  # a double click
        response = _send(client, patient_a, django_capture_on_commit_callbacks)
        assert response.status_code == 302 and response["Location"] == _url(patient_a)
    [message] = _messages(org_a)
    assert (message.subject_type, message.channel, message.is_urgent, message.sent_by) == (
        "staff_message",
        "sms",
        False,
        nurse_user,
    )
    assert queued[0] == (org_a.pk, message.pk)  # ids only, never the text
    for _org_id, message_id in queued:
        delivery.message_send(org_a, message_id)
    [sent] = fake_twilio.accepted
    assert sent.to == "+13125550101" and sent.body == "North Clinic: Please call us back."
    page = client.get(_url(patient_a)).content.decode()
    assert "Text message queued: it goes now" in page or "SMS queued: it goes now" in page
    assert "Staff message from" in page and "Sent" in page


def test_a_one_off_email_says_which_clinic_it_is_from(
    client_for, nurse_user, patient_a, org_a, mailoutbox, daytime, queued, django_capture_on_commit_callbacks
) -> None:
    response = _send(client_for(nurse_user), patient_a, django_capture_on_commit_callbacks, channel="email")
    assert response.status_code == 302
    [message] = _messages(org_a)
    assert delivery.message_send(org_a, message.pk) == "sent"
    [email] = mailoutbox
    assert (email.to, email.subject, email.body) == (
        ["rosa@example.org"],
        "Message from North Clinic",
        "Please call us back.",
    )


def test_a_channel_the_patient_opted_out_of_or_has_no_address_for_is_refused(
    client_for, nurse_user, patient_a, org_a, daytime, queued, django_capture_on_commit_callbacks
) -> None:
    with organization_context(org_a):
        services.consent_set(patient=patient_a, channel="sms", status="opted_out", source="sms_keyword")
    client = client_for(nurse_user)
    page = client.get(_url(patient_a)).content.decode()
    assert "This patient opted out of text messages." in page  # said before anyone writes
    response = _send(client, patient_a, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert "This patient opted out of text messages." in response.content.decode()
    assert "Please call us back." in response.content.decode()  # what was typed is kept
    with organization_context(org_a):
        patient_a.email = ""
        patient_a.save()
    response = _send(client, patient_a, django_capture_on_commit_callbacks, channel="email")
    assert response.status_code == 400 and "This patient has no email address." in response.content.decode()
    assert _messages(org_a) == [] and queued == []


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"body": "   "}, "This field is required."),
        ({"body": "x" * 1001}, "Keep a text message to 1,000 characters (it has 1,001)."),
        ({"body": "x" * 5001, "channel": "email"}, "Ensure this value has at most 5000 characters"),
        ({"key": ""}, "This form has expired: open the Messages tab again."),
        ({"key": "../../" + "x" * 30}, "This form has expired: open the Messages tab again."),
        ({"channel": "fax"}, "Select a valid choice."),
    ],
)
def test_bad_input_re_renders_with_a_clear_error(
    client_for, nurse_user, patient_a, org_a, daytime, queued, django_capture_on_commit_callbacks, data, error
) -> None:
    response = _send(client_for(nurse_user), patient_a, django_capture_on_commit_callbacks, **data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert _messages(org_a) == []


def test_quiet_hours_hold_a_late_evening_message_until_the_patients_morning(
    client_for, nurse_user, patient_a, org_a, fake_twilio, time_machine, queued, django_capture_on_commit_callbacks
) -> None:
    time_machine.move_to(datetime(2026, 11, 24, 22, 30, tzinfo=CHICAGO).astimezone(UTC), tick=False)
    client = client_for(nurse_user)
    response = _send(client, patient_a, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    [message] = _messages(org_a)
    morning = datetime(2026, 11, 25, 8, 0, tzinfo=CHICAGO)
    assert message.next_attempt_at == morning and queued == []  # not sent tonight
    page = client.get(_url(patient_a)).content.decode()
    assert "queued for Wed 25 Nov, 08:00 (the patient&#x27;s quiet hours)" in page
    assert delivery.message_send(org_a, message.pk) == "skipped" and fake_twilio.accepted == []
    time_machine.move_to(morning.astimezone(UTC), tick=False)
    assert delivery.message_send(org_a, message.pk) == "sent" and len(fake_twilio.accepted) == 1


def test_the_daily_cap_holds_a_one_off_after_todays_reminder(
    client_for, nurse_user, patient_a, org_a, fake_twilio, daytime, queued, django_capture_on_commit_callbacks
) -> None:
    with organization_context(org_a):
        reminder = services.outbox_enqueue(
            patient=patient_a,
            subject_type="observation",
            subject_id=1,
            slot="today",
            due_at=daytime,
            template_key="lab_results",
            channel="sms",
            urgent=False,
        )
    assert delivery.message_send(org_a, reminder.pk) == "sent"
    _send(client_for(nurse_user), patient_a, django_capture_on_commit_callbacks)
    [message] = [m for m in _messages(org_a) if m.subject_type == "staff_message"]
    assert delivery.message_send(org_a, message.pk) == "skipped"
    with organization_context(org_a):
        message.refresh_from_db()
    assert message.status == "pending" and message.next_attempt_at > daytime + timedelta(hours=23)
    assert len(fake_twilio.accepted) == 1
