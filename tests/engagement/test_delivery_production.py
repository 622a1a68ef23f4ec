"""Outreach in the production shape: attempts the provider answered vs tries it never saw, retries
bounded by a message's useful life, unknown outcomes settled soon and by DateCreated (a message still
queued at Twilio has no DateSent), SMS held (not failed) while a clinic's account is incomplete, the
stale time derived from the send's own limits (tests/test_settings.py: the start-up refusals)."""

from __future__ import annotations

import socket
from datetime import time, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from engagement import delivery
from engagement.delivery.scan import due_ids
from engagement.delivery.send import HELD_NOT_CONFIGURED
from engagement.models import OutboundMessage
from healthcrm.models import Notification
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import configure
from tests.engagement.test_delivery import _message, _refresh
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _closed_port_url() -> str:
    """An address nothing listens on (connection refused at once): the provider is unreachable."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def admin(org_a: Any) -> Any:
    user = UserFactory(username="admin@north.example")
    MembershipFactory(user=user, organization=org_a, role="admin")
    return user


def test_an_outage_never_uses_up_the_attempts_the_provider_answers(
    org_a, patient_a, fake_twilio, daytime, settings
) -> None:
    """max_attempts=1 and the provider unreachable for a while: the try it never saw does not count,
    the message goes once it is back (the old rule failed it for good after one lost try)."""
    configure(org_a, max_attempts=1)
    with organization_context(org_a):
        message = _message(patient_a)
    settings.TWILIO_API_URL = _closed_port_url()
    assert delivery.message_send(org_a, message.pk) == "failed"
    row = _refresh(org_a, message)
    assert row.status == "sending" and row.provider_attempts == 0  # outcome unknown: ask before resending
    assert delivery.message_reconcile(org_a, message.pk) == "unknown"  # still cannot ask: keep it
    settings.TWILIO_API_URL = fake_twilio.url
    assert delivery.message_reconcile(org_a, message.pk) == "retry"  # the provider holds nothing
    assert _refresh(org_a, message).status == "pending"
    assert delivery.message_send(org_a, message.pk) == "sent"
    row = _refresh(org_a, message)
    assert (row.status, row.attempts, row.provider_attempts) == ("sent", 2, 1)
    assert len(fake_twilio.accepted) == 1


def test_attempts_the_provider_answered_still_end_at_max_attempts(org_a, patient_a, fake_twilio, daytime) -> None:
    configure(org_a, max_attempts=2)
    fake_twilio.fail_share = 1.0  # 500 every time: an answer, so each try counts
    with organization_context(org_a):
        message = _message(patient_a)
    delivery.message_send(org_a, message.pk)
    assert _refresh(org_a, message).provider_attempts == 1
    with organization_context(org_a):
        OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=daytime)
    delivery.message_send(org_a, message.pk)
    row = _refresh(org_a, message)
    assert (row.status, row.provider_attempts) == ("failed", 2)
    assert "2 attempts the provider answered" in row.status_reason


def test_retries_stop_when_the_message_can_no_longer_help_and_the_admins_hear_of_it(
    org_a, patient_a, admin, fake_twilio, daytime, settings
) -> None:
    """A reminder is useless after the visit: a retry that would come after expires_at is not
    scheduled; the message fails with the reason and the clinic's admins are told (ids only)."""
    settings.ENGAGEMENT_RETRY_BASE = 3600.0  # the next try would be 30-60 min away
    fake_twilio.fail_share = 1.0
    with organization_context(org_a):
        soon = _message(patient_a, slot="visit-in-10-min", expires_at=daytime + timedelta(minutes=10))
        later = _message(patient_a, slot="visit-tomorrow", expires_at=daytime + timedelta(days=1))
    delivery.message_send(org_a, soon.pk)
    delivery.message_send(org_a, later.pk)
    row = _refresh(org_a, soon)
    assert row.status == "failed" and "moment passed" in row.status_reason
    assert _refresh(org_a, later).status == "pending"  # time left: retried
    with organization_context(org_a):
        alerts = list(Notification.objects.filter(recipient=admin).values_list("message", flat=True))
    assert alerts == [f"Message #{soon.pk} could not be sent: {row.status_reason}"[:255]]
    assert "Rosa" not in alerts[0]


def test_an_unreachable_provider_past_the_visit_ends_the_message(
    org_a, patient_a, admin, fake_twilio, daytime, settings
) -> None:
    with organization_context(org_a):
        message = _message(patient_a, expires_at=daytime + timedelta(hours=2))
    settings.TWILIO_API_URL = _closed_port_url()
    delivery.message_send(org_a, message.pk)
    assert delivery.message_reconcile(org_a, message.pk) == "unknown"
    with time_machine.travel(daytime + timedelta(hours=2, minutes=1), tick=False):
        assert delivery.message_reconcile(org_a, message.pk) == "failed"
    row = _refresh(org_a, message)
    assert row.status == "failed" and "could not be asked" in row.status_reason
    with organization_context(org_a):
        assert Notification.objects.filter(recipient=admin, kind="outreach.failed").count() == 1


def test_a_timed_out_send_is_settled_in_seconds_by_date_created(org_a, patient_a, fake_twilio, settings) -> None:
    """The send timed out but Twilio queued it: the sweep asks from ENGAGEMENT_SETTLE_UNKNOWN_AFTER
    on (not the stale time a crash needs), and finds the still-queued message, which has no DateSent
    (the fake, like Twilio, lists nothing under a DateSent filter): sent once, not twice."""
    configure(org_a, quiet_start=time(0), quiet_end=time(0))  # the real clock: the fake stamps real times
    settings.TWILIO_TIMEOUT = 0.3
    settings.ENGAGEMENT_SENDING_STALE_AFTER = 75.0
    settings.ENGAGEMENT_SETTLE_UNKNOWN_AFTER = 30.0
    fake_twilio.hang, fake_twilio.hang_share = 1.0, 1.0
    with organization_context(org_a):
        message = _message(patient_a)
    assert delivery.message_send(org_a, message.pk) == "failed"
    start = timezone.now()
    with organization_context(org_a):
        assert due_ids(org_a, now=start + timedelta(seconds=10), limit=10)[1] == []
        assert due_ids(org_a, now=start + timedelta(seconds=31), limit=10)[1] == [message.pk]
    fake_twilio.hang_share = 0.0
    assert delivery.message_reconcile(org_a, message.pk) == "sent"
    assert fake_twilio.date_sent_filtered == 0
    row = _refresh(org_a, message)
    assert row.status == "sent" and row.provider_sid == fake_twilio.accepted[0].sid and row.settle_at is None
    assert len(fake_twilio.accepted) == 1


def test_sms_are_held_while_the_clinic_account_is_incomplete_then_go(
    org_a, patient_a, admin, fake_twilio, daytime
) -> None:
    configure(org_a, twilio_auth_token="")
    with organization_context(org_a):
        first, second = _message(patient_a, slot="a"), _message(patient_a, slot="b")
    assert delivery.messages_send(org_a, [first.pk, second.pk]) == {first.pk: "skipped", second.pk: "skipped"}
    for message in (first, second):
        row = _refresh(org_a, message)
        assert (row.status, row.status_reason) == ("pending", HELD_NOT_CONFIGURED)
        assert row.next_attempt_at == daytime + timedelta(minutes=15)
    with organization_context(org_a):
        OutboundMessage.objects.update(next_attempt_at=daytime)
    delivery.message_send(org_a, first.pk)  # looked at again, still held: no second alert
    with organization_context(org_a):
        alerts = Notification.objects.filter(recipient=admin, kind="outreach.not_configured")
        assert alerts.count() == 1 and "Outreach settings" in alerts.get().message
    assert fake_twilio.accepted == []
    configure(org_a)  # the admin completes the account
    assert delivery.message_send(org_a, first.pk) == "sent"
    assert len(fake_twilio.accepted) == 1


def test_a_held_message_ends_when_it_can_no_longer_help(org_a, patient_a, fake_twilio, daytime) -> None:
    configure(org_a, sms_from_number="", messaging_service_sid="")
    with organization_context(org_a):
        message = _message(patient_a, expires_at=daytime + timedelta(minutes=5))
    delivery.message_send(org_a, message.pk)
    assert _refresh(org_a, message).status == "pending"
    with time_machine.travel(daytime + timedelta(minutes=6), tick=False):
        delivery.message_send(org_a, message.pk)
    assert _refresh(org_a, message).status == "cancelled"


def test_the_development_sink_holds_nothing(org_a, patient_a, daytime, settings) -> None:
    """Without a provider (development), an empty account is no reason to hold: the sink sends."""
    settings.ENGAGEMENT_SMS_BACKEND = "outbox_sink"
    configure(org_a, twilio_auth_token="")
    with organization_context(org_a):
        message = _message(patient_a)
    assert delivery.message_send(org_a, message.pk) == "sent"
