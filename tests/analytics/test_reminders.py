"""Reminder effectiveness and the outreach funnel on a hand-built clinic (counts worked out below)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db.models import Sum
from django.urls import reverse

from analytics import reminders
from analytics.filters import Filters, Period
from analytics.models import OutreachDaily
from analytics.refresh import refresh_run
from engagement.models import ConversationMessage, LinkUse, OutboundMessage, Rule
from engagement.services.outbox import reminder_slot
from healthcrm.tenancy import organization_context
from patients.models import Appointment
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 17, 4, 30, tzinfo=UTC)
JUNE = Filters(Period(date(2026, 6, 1), date(2026, 6, 16)), None, None, None)


def _message(
    patient: Any, rule: Any, status: str, due: datetime, *, channel: str = "sms", visit: Any = None, offset: int = 24
) -> OutboundMessage:
    return OutboundMessage.objects.create(
        patient=patient,
        rule=rule,
        template_key=rule.template_key,
        subject_type="appointment" if visit else "campaign",
        subject_id=visit.pk if visit else None,
        channel=channel,
        slot=reminder_slot(offset, visit.starts_at) if visit else f"c{due:%d%H}",
        status=status,
        due_at=due,
        next_attempt_at=due,
        sent_at=due if status in ("sent", "delivered") else None,
    )


def _reply(patient: Any, at: datetime, body: str, keyword: str = "") -> None:
    message = ConversationMessage.objects.create(
        patient=patient, direction="in", phone="+17735550100", body=body, keyword=keyword
    )
    ConversationMessage.objects.filter(pk=message.pk).update(created_at=at)


def test_funnel_puts_each_message_in_one_stage(org_a: Any) -> None:
    """Rule "News" (SMS, due 5 June 15:00 UTC = 10:00 Chicago): 9 messages.

    1 pending, 1 cancelled -> not sent 2; 1 failed; 1 sent without receipt; delivered 5, of which
    one patient replied "thanks" 2 h later (replied), one answered STOP (opted out), one used the
    unsubscribe link (opted out), and one replied 4 days later (outside 72 h: still delivered).
    Stages: not sent 2, failed 1, sent 1, delivered 2, replied 1, opted out 2 = 9.
    """
    with organization_context(org_a):
        rule = Rule.objects.create(name="News", kind="campaign", template_key="news")
        due = datetime(2026, 6, 5, 15, 0, tzinfo=UTC)
        patients = [PatientFactory(preferred_language="es" if i < 3 else "en") for i in range(9)]
        for patient, status in zip(patients[:4], ["pending", "cancelled", "failed", "sent"], strict=True):
            _message(patient, rule, status, due)
        delivered = [_message(p, rule, "delivered", due) for p in patients[4:]]
        _reply(patients[4], due + timedelta(hours=2), "thanks")
        _reply(patients[5], due + timedelta(hours=1), "STOP", keyword="STOP")
        LinkUse.objects.create(message=delivered[2], action="unsubscribe", used_at=due + timedelta(hours=3))
        _reply(patients[7], due + timedelta(days=4), "late reply")
        refresh_run(full=True, now=NOW)

        assert set(OutreachDaily.objects.values_list("day", flat=True)) == {date(2026, 6, 5)}
        stages = ["scheduled", "not_sent", "failed", "sent", "delivered", "replied", "opted_out"]
        totals = OutreachDaily.objects.aggregate(**{s: Sum(s) for s in stages})
        assert [totals[s] for s in stages] == [9, 2, 1, 1, 2, 1, 2]
        by_language = reminders.funnel(JUNE, "language")
        # es: patients 0-2 (pending, cancelled, failed) = 3; en: the other 6.
        assert by_language.values[("es", "__total__")] == 3
        assert by_language.values[("en", "__total__")] == 6
        # Every count is below 11: all hidden, and the chart's stages with them.
        stages = reminders.funnel_stages(reminders.funnel(JUNE, "rule"))
        assert stages[1:] == [("Sent", None), ("Delivered", None), ("Replied", None), ("Opted out", None)]


def test_incremental_funnel_recounts_the_days_a_reply_changes(org_a: Any) -> None:
    with organization_context(org_a):
        rule = Rule.objects.create(name="News", kind="campaign", template_key="news")
        due = datetime(2026, 6, 15, 15, 0, tzinfo=UTC)
        patient = PatientFactory()
        _message(patient, rule, "delivered", due)
        later = NOW + timedelta(hours=1)
        refresh_run(full=True, now=later)
        assert OutreachDaily.objects.get().replied == 0
        _reply(patient, due + timedelta(hours=30), "see you then")
        ConversationMessage.objects.update(created_at=later + timedelta(minutes=1))  # arrived after the run
        refresh_run(now=later + timedelta(minutes=5))
        # 15 June 15:00 + 72 h covers the reply at 17 June 05:31: attributed, counted as replied.
        assert OutreachDaily.objects.get().replied == 1


def test_attendance_by_exposure_channel_offset_and_rule(org_a: Any) -> None:
    """40 due visits, one provider, in June:
    - 12 confirmed by SMS reply after a delivered 24 h SMS reminder: 12 attended.
    - 14 with a delivered 72 h email + 24 h SMS reminder, not confirmed: 11 attended, 3 no-shows.
    - 14 with no reminder delivered (the reminder failed): 3 attended, 11 no-shows.
    Show rate: confirmed 12/12, delivered 11/14, none 3/14.
    """
    with organization_context(org_a):
        rule = Rule.objects.create(name="Day before", kind="appointment_reminder", template_key="appointment_reminder")
        doc = PractitionerFactory()
        patient = PatientFactory()
        plan = [("confirmed", "completed")] * 12 + [("delivered", "completed")] * 11 + [("delivered", "no_show")] * 3
        plan += [("none", "completed")] * 3 + [("none", "no_show")] * 11
        for i, (exposure, status) in enumerate(plan):
            starts = datetime(2026, 6, 1, 14, 0, tzinfo=UTC) + timedelta(hours=7 * i)
            visit = AppointmentFactory(patient=patient, practitioner=doc, starts_at=starts, status=status)
            if exposure == "none":
                _message(patient, rule, "failed", starts - timedelta(hours=24), visit=visit)
                continue
            _message(patient, rule, "delivered", starts - timedelta(hours=24), visit=visit)
            if exposure == "confirmed":
                Appointment.objects.filter(pk=visit.pk).update(
                    confirmed_at=starts - timedelta(hours=20), confirmed_via="sms_reply"
                )
            else:
                _message(patient, rule, "sent", starts - timedelta(hours=72), visit=visit, channel="email", offset=72)
        refresh_run(full=True, now=NOW)

        exposure = {row["key"]: row for row in reminders.by_exposure(JUNE).display_rows()}
        assert exposure["confirmed"]["cells"][:2] == [12, 0]
        assert exposure["confirmed"]["rates"][0][0] == 1.0
        # The 3 no-shows (delivered) and the 3 attended (none) are below 11; each row total (14) shows,
        # so each row's other non-zero cell (11) is withheld too, and with it the rows' rates.
        assert exposure["delivered"]["cells"] == ["hidden", "<11", 0, 0]
        assert exposure["none"]["cells"] == ["<11", "hidden", 0, 0]
        assert exposure["delivered"]["total"] == 14
        assert exposure["delivered"]["rates"][0] is None
        channel = reminders.by_channel(JUNE)
        assert channel.values[("both", "__total__")] == 14  # email 72 h + SMS 24 h
        assert channel.values[("sms", "__total__")] == 12
        assert channel.values[("none", "__total__")] == 14
        offsets = reminders.by_offset(JUNE)
        assert offsets.values[("72 h + 24 h", "__total__")] == 14
        assert offsets.values[("24 h", "__total__")] == 12
        confirmation = reminders.confirmation_by_rule(JUNE)
        # Visits with a delivered reminder from the rule: 12 + 14 = 26; confirmed 12.
        assert confirmation.values[(str(rule.pk), "confirmed")] == 12
        assert confirmation.values[(str(rule.pk), "__total__")] == 26
        value, low, high = confirmation.rate(str(rule.pk), confirmation.rates[0])
        assert value == pytest.approx(12 / 26)
        assert low < 12 / 26 < high


def test_reminders_page_renders_for_an_analyst(org_a: Any, analyst_user: Any, client_for: Any) -> None:
    with organization_context(org_a):
        refresh_run(full=True, now=NOW)
    response = client_for(analyst_user).get(reverse("analytics:reminders"))
    assert response.status_code == 200
    assert "Show rate by reminder exposure" in response.content.decode()
    exported = client_for(analyst_user).get(reverse("analytics:reminders"), {"export": "funnel-rule"})
    assert exported.content.decode().splitlines()[0].startswith("Rule,Not sent,Failed")
