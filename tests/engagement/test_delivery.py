"""The delivery engine in-process: outbox uniqueness, claim, retries, permanent failures, quiet
hours, caps, consent, rate limit, reconcile of unknown outcomes, and reminder materialization."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from engagement import delivery, services
from engagement.models import Consent, OutboundMessage
from healthcrm.models import Notification
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import ACCOUNT, TOKEN, configure
from tests.factories import AppointmentFactory, MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


def _message(patient: Any, *, slot: str = "s1", due: datetime | None = None, urgent: bool = True, **kw: Any) -> Any:
    """A test-local outbox row: a lab-results notice (no rule needed)."""
    return services.outbox_enqueue(
        patient=patient,
        subject_type="observation",
        subject_id=1,
        slot=slot,
        due_at=due or timezone.now(),
        template_key=kw.pop("template_key", "lab_results"),
        channel=kw.pop("channel", "sms"),
        urgent=urgent,
        **kw,
    )


def _refresh(org: Any, message: Any) -> Any:
    with organization_context(org):
        return OutboundMessage.objects.get(pk=message.pk)


def test_one_row_per_key_and_the_database_refuses_a_duplicate(org_a, patient_a) -> None:
    with organization_context(org_a):
        first = _message(patient_a)
        again = _message(patient_a)
        assert first.pk == again.pk
        assert OutboundMessage.objects.count() == 1
        duplicate = OutboundMessage(
            patient=patient_a,
            subject_type="observation",
            subject_id=1,
            channel="sms",
            slot="s1",
            due_at=timezone.now(),
            next_attempt_at=timezone.now(),
        )
        with pytest.raises(IntegrityError), transaction.atomic():
            duplicate.save()


def test_send_once_stores_the_sid_and_a_second_run_does_nothing(org_a, patient_a, fake_twilio, daytime) -> None:
    with organization_context(org_a):
        message = _message(patient_a)
    assert delivery.message_send(org_a, message.pk) == "sent"
    assert delivery.message_send(org_a, message.pk) == "skipped"
    assert len(fake_twilio.accepted) == 1
    sent = fake_twilio.accepted[0]
    assert sent.to == "+13125550101" and sent.from_ == "+13125550000" and sent.auth_user == ACCOUNT
    assert sent.body.startswith("Hi Rosa, new results are available")
    row = _refresh(org_a, message)
    assert row.status == "sent" and row.provider_sid == sent.sid and row.attempts == 1


def test_the_claim_touches_one_row_once(org_a, patient_a, daytime) -> None:
    with organization_context(org_a):
        message = _message(patient_a)
        first = delivery._prepare(org_a, message.pk, timezone.now())
        second = delivery._prepare(org_a, message.pk, timezone.now())
    assert first is not None and second is None


def test_two_batches_loaded_before_either_claims_send_the_message_once(org_a, patient_a, daytime) -> None:
    """Two workers read the same pending row, then both try to claim it: the conditional UPDATE, not
    the earlier read, decides; exactly one claim wins and the attempt is counted once."""
    with organization_context(org_a):
        message = _message(patient_a)
        batches = [delivery.send._Batch.load([message.pk]) for _ in range(2)]
        assert all(message.pk in batch.messages for batch in batches)  # both saw it pending
        claims = [delivery._prepare(org_a, message.pk, timezone.now(), batch) for batch in batches]
    assert [claim is not None for claim in claims] == [True, False]
    row = _refresh(org_a, message)
    assert row.status == "sending" and row.attempts == 1


@pytest.mark.parametrize("status", [500, 429])
def test_transient_failures_go_back_to_pending_with_backoff(org_a, patient_a, fake_twilio, daytime, status) -> None:
    fake_twilio.fail_share, fake_twilio.fail_status = 1.0, status
    with organization_context(org_a):
        message = _message(patient_a)
    assert delivery.message_send(org_a, message.pk) == "failed"
    row = _refresh(org_a, message)
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt_at > daytime + timedelta(seconds=10)  # 30 s base, jittered in [15, 30]
    assert fake_twilio.accepted == []


def test_giving_up_after_max_attempts_alerts_the_admins(org_a, patient_a, fake_twilio, daytime) -> None:
    admin = UserFactory(username="admin@north.example")
    MembershipFactory(user=admin, organization=org_a, role="admin")
    configure(org_a, max_attempts=2)
    fake_twilio.fail_share = 1.0
    with organization_context(org_a):
        message = _message(patient_a)
    delivery.message_send(org_a, message.pk)
    with organization_context(org_a):
        OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=daytime)
    delivery.message_send(org_a, message.pk)
    row = _refresh(org_a, message)
    assert row.status == "failed" and row.attempts == 2
    with organization_context(org_a):
        alert = Notification.objects.get(recipient=admin)
    assert f"#{message.pk}" in alert.message and "Rosa" not in alert.message


@pytest.mark.parametrize(("numbers", "code"), [("invalid_numbers", "21211"), ("opted_out_numbers", "21610")])
def test_permanent_failures_are_not_retried(org_a, patient_a, fake_twilio, daytime, numbers, code) -> None:
    getattr(fake_twilio, numbers).add("+13125550101")
    with organization_context(org_a):
        message = _message(patient_a)
    delivery.message_send(org_a, message.pk)
    row = _refresh(org_a, message)
    assert row.status == "failed" and row.error_code == code and row.attempts == 1
    assert delivery.message_send(org_a, message.pk) == "skipped"
    with organization_context(org_a):
        opted_out = Consent.objects.filter(patient=patient_a, kind="sms", status="opted_out").exists()
    assert opted_out is (code == "21610")


def test_an_opted_out_patient_gets_nothing(org_a, patient_a, fake_twilio, daytime) -> None:
    with organization_context(org_a):
        message = _message(patient_a)
        services.consent_set(patient=patient_a, channel="sms", status="opted_out", source="staff")
    assert delivery.message_send(org_a, message.pk) == "skipped"
    assert _refresh(org_a, message).status == "cancelled"
    assert fake_twilio.accepted == []


def test_quiet_hours_defer_a_2300_message_to_0800_local_and_it_then_goes(
    org_a, patient_a, fake_twilio, time_machine
) -> None:
    late = datetime(2026, 11, 24, 23, 0, tzinfo=UTC).replace(tzinfo=None)
    import zoneinfo

    chicago = zoneinfo.ZoneInfo("America/Chicago")
    at_2300 = late.replace(tzinfo=chicago)
    time_machine.move_to(at_2300, tick=False)
    with organization_context(org_a):
        message = _message(patient_a, due=at_2300.astimezone(UTC))
    # Created at 23:00: scheduled for 08:00 straight away, and refused at send time too.
    assert _refresh(org_a, message).next_attempt_at == datetime(2026, 11, 25, 8, 0, tzinfo=chicago)
    assert delivery.message_send(org_a, message.pk) == "skipped"
    row = _refresh(org_a, message)
    assert row.status == "pending" and row.next_attempt_at == datetime(2026, 11, 25, 8, 0, tzinfo=chicago)
    time_machine.move_to(datetime(2026, 11, 25, 8, 0, tzinfo=chicago).astimezone(UTC), tick=False)
    assert delivery.message_send(org_a, message.pk) == "sent"
    assert len(fake_twilio.accepted) == 1


def test_frequency_cap_defers_non_urgent_messages(org_a, patient_a, fake_twilio, daytime) -> None:
    with organization_context(org_a):
        first = _message(patient_a, slot="a", urgent=False)
        second = _message(patient_a, slot="b", urgent=False)
        urgent = _message(patient_a, slot="c", urgent=True)
    assert delivery.message_send(org_a, first.pk) == "sent"
    assert delivery.message_send(org_a, second.pk) == "skipped"
    row = _refresh(org_a, second)
    assert row.status == "pending" and row.next_attempt_at > daytime + timedelta(hours=23)
    assert delivery.message_send(org_a, urgent.pk) == "sent"


def test_email_fallback_when_sms_opted_out(org_a, outreach_a, mailoutbox, daytime) -> None:
    with organization_context(org_a):
        patient = PatientFactory(
            given_name="Eva", email="eva@example.org", preferred_channel="sms", timezone="America/Chicago"
        )
        services.consent_set(patient=patient, channel="sms", status="opted_out", source="staff")
        rule = services.rule_save(
            name="Reminders", kind="appointment_reminder", template_key="appointment_reminder", offsets_hours=[2]
        )
        appointment = AppointmentFactory(patient=patient, starts_at=daytime + timedelta(hours=2))
        services.rule_materialize(rule=rule, now=daytime)
        message = OutboundMessage.objects.get(subject_id=appointment.pk)
    assert message.channel == "email"
    assert delivery.message_send(org_a, message.pk) == "sent"
    assert len(mailoutbox) == 1 and "Dear Eva" in mailoutbox[0].body and "/engagement/l/" in mailoutbox[0].body
    assert mailoutbox[0].alternatives and "<p>" in mailoutbox[0].alternatives[0][0]


def test_reminders_materialize_once_per_offset_and_follow_the_appointment(
    org_a, patient_a, fake_twilio, daytime
) -> None:
    with organization_context(org_a):
        rule = services.rule_save(
            name="Reminders",
            kind="appointment_reminder",
            template_key="appointment_reminder",
            offsets_hours=[72, 24, 2],
        )
        appointment = AppointmentFactory(patient=patient_a, starts_at=daytime + timedelta(hours=24, minutes=10))
        services.rule_materialize(rule=rule, now=daytime)
        services.rule_materialize(rule=rule, now=daytime)  # idempotent
        slots = sorted(OutboundMessage.objects.filter(rule=rule).values_list("slot", flat=True))
        # 72 h is long past; 24 h is due in 10 minutes; 2 h is not yet within the look-ahead.
        assert slots == [services.reminder_slot(24, appointment.starts_at)]
        later = daytime + timedelta(hours=22, minutes=30)
        services.rule_materialize(rule=rule, now=later)
        assert OutboundMessage.objects.filter(rule=rule).count() == 2
        # Rescheduled: the old reminders are cancelled at send time, new ones are made.
        appointment.starts_at += timedelta(days=1)
        appointment.ends_at += timedelta(days=1)
        appointment.save()
        first = OutboundMessage.objects.filter(rule=rule).order_by("due_at").first()
    assert delivery.message_send(org_a, first.pk) == "skipped"
    assert _refresh(org_a, first).status_reason == "The appointment was rescheduled."


def test_a_cancelled_appointment_cancels_its_reminder(org_a, patient_a, fake_twilio, daytime) -> None:
    from patients.services import appointment_cancel

    with organization_context(org_a):
        rule = services.rule_save(
            name="R", kind="appointment_reminder", template_key="appointment_reminder", offsets_hours=[2]
        )
        appointment = AppointmentFactory(patient=patient_a, starts_at=daytime + timedelta(hours=2))
        services.rule_materialize(rule=rule, now=daytime)
        message = OutboundMessage.objects.get(rule=rule)
        appointment_cancel(appointment=appointment, reason="clinic")
    assert delivery.message_send(org_a, message.pk) == "skipped"
    assert _refresh(org_a, message).status == "cancelled"
    assert fake_twilio.accepted == []


def test_the_reminder_text_is_in_the_patients_language_and_time_zone(org_a, outreach_a, fake_twilio, daytime) -> None:
    with organization_context(org_a):
        patient = PatientFactory(
            given_name="Lucía",
            phone_mobile="+13125550199",
            preferred_channel="sms",
            preferred_language="es",
            timezone="America/Chicago",
        )
        rule = services.rule_save(
            name="R", kind="appointment_reminder", template_key="appointment_reminder", offsets_hours=[2]
        )
        AppointmentFactory(patient=patient, starts_at=datetime(2026, 11, 24, 23, 0, tzinfo=UTC))
        services.rule_materialize(rule=rule, now=daytime)
        message = OutboundMessage.objects.get(rule=rule)
    delivery.message_send(org_a, message.pk)
    body = fake_twilio.accepted[0].body
    assert body.startswith("Hola Lucía, recordatorio de North Clinic") and "17:00" in body  # 23:00 UTC in Chicago


def test_an_unknown_outcome_is_settled_by_asking_the_provider(org_a, patient_a, fake_twilio, settings) -> None:
    # The real clock (the provider stamps real times); no quiet hours so the hour does not matter.
    configure(org_a, quiet_start=time(0), quiet_end=time(0))
    settings.TWILIO_TIMEOUT = 0.3
    fake_twilio.hang, fake_twilio.hang_share = 1.0, 1.0
    with organization_context(org_a):
        message = _message(patient_a)
    assert delivery.message_send(org_a, message.pk) == "failed"
    assert _refresh(org_a, message).status == "sending"  # outcome unknown: not rescheduled blindly
    assert delivery.message_reconcile(org_a, message.pk) == "sent"
    row = _refresh(org_a, message)
    assert row.status == "sent" and row.provider_sid == fake_twilio.accepted[0].sid
    assert len(fake_twilio.accepted) == 1


def test_a_claim_that_never_reached_the_provider_is_sent_again(org_a, patient_a, fake_twilio) -> None:
    configure(org_a, quiet_start=time(0), quiet_end=time(0))
    with organization_context(org_a):
        message = _message(patient_a)
        delivery._prepare(org_a, message.pk, timezone.now())  # a worker claimed it, then died
    assert delivery.message_reconcile(org_a, message.pk) == "retry"
    assert delivery.message_send(org_a, message.pk) == "sent"
    assert len(fake_twilio.accepted) == 1


def test_the_scan_takes_due_rows_in_bounded_batches_and_skips_them_while_queued(
    org_a, patient_a, daytime, settings
) -> None:
    with organization_context(org_a):
        rows = [_message(patient_a, slot=f"s{i}", due=daytime - timedelta(minutes=i)) for i in range(5)]
        _message(patient_a, slot="future", due=daytime + timedelta(hours=1))
        due, stale = delivery.due_ids(org_a, now=daytime, limit=3)
        assert sorted(due) == sorted([rows[4].pk, rows[3].pk, rows[2].pk]) and stale == []
        due, _ = delivery.due_ids(org_a, now=daytime, limit=10)
        assert sorted(due) == sorted([rows[1].pk, rows[0].pk])
        # Lost tasks: the rows come back after ENGAGEMENT_REQUEUE_AFTER.
        due, _ = delivery.due_ids(
            org_a, now=daytime + timedelta(seconds=settings.ENGAGEMENT_REQUEUE_AFTER + 1), limit=10
        )
        assert len(due) == 5


def test_dispatch_enqueues_ids_only_per_organization(org_a, org_b, patient_a, outreach_b, monkeypatch, daytime) -> None:
    from engagement import tasks

    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.outbox_send_task, "delay", lambda *args: sent.append(args))
    with organization_context(org_a):
        message = _message(patient_a)
    assert delivery.dispatch_due() == 1
    assert sent == [(org_a.pk, message.pk)]


def test_rate_reserve_spaces_sends_and_refuses_long_waits(settings) -> None:
    import uuid

    key = int(uuid.uuid4().int % 10**9) + 10**9  # an organization id nobody else uses
    waits = [delivery.rate_reserve(key, 5) for _ in range(5)]
    assert waits[0] == pytest.approx(0, abs=0.01)
    assert all(b - a == pytest.approx(0.204, abs=0.02) for a, b in zip(waits, waits[1:], strict=False))
    settings.ENGAGEMENT_RATE_MAX_WAIT = 0.5
    assert delivery.rate_reserve(key, 5) < 0


def test_next_allowed_is_dst_safe() -> None:
    import zoneinfo

    from engagement.etiquette import next_allowed

    ny = zoneinfo.ZoneInfo("America/New_York")
    # 23:00 the night before the spring-forward (2026-03-08): 08:00 EDT = 12:00 UTC.
    assert next_allowed(datetime(2026, 3, 7, 23, 0, tzinfo=ny), ny, time(8), time(21)) == datetime(
        2026, 3, 8, 12, 0, tzinfo=UTC
    )
    # 23:00 the night before fall-back (2026-11-01): 08:00 EST = 13:00 UTC.
    assert next_allowed(datetime(2026, 10, 31, 23, 0, tzinfo=ny), ny, time(8), time(21)) == datetime(
        2026, 11, 1, 13, 0, tzinfo=UTC
    )
    # A window starting at 02:30 on the spring-forward night (that wall time does not exist).
    result = next_allowed(datetime(2026, 3, 8, 1, 0, tzinfo=ny), ny, time(2, 30), time(21))
    assert result == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    # Inside the window: unchanged.
    inside = datetime(2026, 6, 1, 15, 0, tzinfo=ny)
    assert next_allowed(inside, ny, time(8), time(21)) == inside


def test_credentials_are_stored_encrypted(org_a, outreach_a) -> None:
    from django.db import connection

    with organization_context(org_a), connection.cursor() as cursor:
        cursor.execute(
            "SELECT twilio_auth_token FROM engagement_channelsettings WHERE organization_id = %s", [org_a.pk]
        )
        stored = cursor.fetchone()[0]
    assert TOKEN not in stored and stored.startswith("gAAAA")
