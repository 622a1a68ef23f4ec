"""The batched send path (ENGAGEMENT_SEND_BATCH > 1): one task claims a chunk of one
organization's due ids, each by its own conditional UPDATE committed before the network, sends
them on the sender threads and records each result; the same guarantees as message_send."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from engagement import delivery, services
from engagement.models import OutboundMessage
from healthcrm.tenancy import organization_context
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _messages(org: Any, n: int) -> list[Any]:
    with organization_context(org):
        rows = []
        for i in range(n):
            patient = PatientFactory(
                given_name=f"P{i}",
                phone_mobile=f"+1312555{3000 + i:04d}",
                preferred_channel="sms",
                timezone="America/Chicago",
            )
            rows.append(
                services.outbox_enqueue(
                    patient=patient,
                    subject_type="observation",
                    subject_id=1,
                    slot="b",
                    due_at=timezone.now(),
                    template_key="lab_results",
                    channel="sms",
                    urgent=True,
                )
            )
        return rows


def _statuses(org: Any) -> dict[int, str]:
    with organization_context(org):
        return dict(OutboundMessage.objects.values_list("pk", "status"))


def test_a_batch_sends_each_once_and_a_replay_sends_nothing(org_a, outreach_a, fake_twilio, daytime) -> None:
    rows = _messages(org_a, 6)
    with organization_context(org_a):
        services.consent_set(patient=rows[0].patient, channel="sms", status="opted_out", source="staff")
        assert rows[0].patient.phone_mobile == "+13125553000"
    ids = [m.pk for m in rows]
    results = delivery.messages_send(org_a, ids)
    assert results[ids[0]] == "skipped"  # opted out: cancelled before any claim
    assert [results[pk] for pk in ids[1:]] == ["sent"] * 5
    assert delivery.messages_send(org_a, ids) == dict.fromkeys(ids, "skipped")
    assert len(fake_twilio.accepted) == 5 and len({m.to for m in fake_twilio.accepted}) == 5
    statuses = _statuses(org_a)
    assert statuses[ids[0]] == "cancelled" and {statuses[pk] for pk in ids[1:]} == {"sent"}
    with organization_context(org_a):
        sent = OutboundMessage.objects.get(pk=ids[1])
    assert sent.provider_sid and sent.to_address == "+13125553001" and "P1" in sent.body
    assert sent.attempts == 1 and sent.segments == 1


def test_a_batch_retries_a_500_later_through_the_database(org_a, outreach_a, fake_twilio, daytime) -> None:
    rows = _messages(org_a, 4)
    fake_twilio.fail_share, fake_twilio.fail_status = 1.0, 500
    results = delivery.messages_send(org_a, [m.pk for m in rows])
    assert set(results.values()) == {"failed"}
    with organization_context(org_a):
        for row in OutboundMessage.objects.all():
            assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at > daytime


def test_another_organizations_ids_are_not_sent(org_a, org_b, outreach_a, outreach_b, fake_twilio, daytime) -> None:
    rows = _messages(org_b, 2)
    assert set(delivery.messages_send(org_a, [m.pk for m in rows]).values()) == {"skipped"}
    assert fake_twilio.accepted == []
    assert set(_statuses(org_b).values()) == {"pending"}


def test_dispatch_enqueues_chunks_when_batching(org_a, outreach_a, monkeypatch, settings, daytime) -> None:
    from engagement import tasks

    settings.ENGAGEMENT_SEND_BATCH = 4
    batches: list[tuple[Any, ...]] = []
    singles: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.outbox_send_batch_task, "delay", lambda *args: batches.append(args))
    monkeypatch.setattr(tasks.outbox_send_task, "delay", lambda *args: singles.append(args))
    rows = _messages(org_a, 9)
    assert delivery.dispatch_due() == 9
    assert [len(ids) for _, ids in batches] == [4, 4] and len(singles) == 1
    assert {org for org, _ in batches} == {org_a.pk}
    enqueued = [pk for _, ids in batches for pk in ids] + [pk for _, pk in singles]
    assert sorted(enqueued) == sorted(m.pk for m in rows)
