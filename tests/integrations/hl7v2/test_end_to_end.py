"""End to end: a PM system books a visit with SIU^S12 over real loopback MLLP; the reminder rule
schedules its reminder (materializer), it is sent by SMS, and the patient confirms by replying C."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from twilio.request_validator import RequestValidator

from engagement import delivery, services
from engagement.models import OutboundMessage
from healthcrm.tenancy import organization_context
from integrations.hl7v2.parsing import ack_code
from patients.models import Appointment
from tests.engagement.conftest import ACCOUNT, TOKEN, configure
from tests.factories import PatientFactory
from tests.integrations.hl7v2.messages import pid, siu
from tests.integrations.hl7v2.mllp import exchange, run_listener

pytestmark = pytest.mark.django_db

BASE = "https://crm.example.org"
PHONE = "+13125550142"


@pytest.fixture
def afternoon() -> Iterator[datetime]:
    """15:00 in Chicago on 2026-11-24 (outside quiet hours); the clock ticks (the event loop needs it)."""
    start = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=True):
        yield start


def test_an_s12_over_mllp_is_reminded_by_sms_and_confirmed_by_reply(
    client: Any,
    settings: Any,
    sender: Any,
    org_a: Any,
    fake_twilio: Any,
    afternoon: datetime,
) -> None:
    settings.PUBLIC_BASE_URL = BASE
    configure(org_a)
    with organization_context(org_a):
        patient = PatientFactory(
            mrn="191919", given_name="Jamie", phone_mobile=PHONE, preferred_channel="sms", timezone="America/Chicago"
        )
        rule = services.rule_save(
            name="Reminders", kind="appointment_reminder", template_key="appointment_reminder", offsets_hours=[24]
        )
    # Tomorrow 15:10 at the clinic: the 24-hour reminder is due in ten minutes.
    identity = pid(mrn="191919", extra_ids="", given="Jamie", phones="^PRN^CP^^^^^^^^^+13125550142", language="ENG")

    async def scenario(port: int) -> list[str]:
        return await exchange(port, siu("S12", "PM-7001", start="202611251510", pid_segment=identity))

    (ack,) = run_listener(scenario)

    assert ack_code(ack) == "AA"
    with organization_context(org_a):
        appointment = Appointment.objects.get(patient=patient)
        assert appointment.starts_at == datetime(2026, 11, 25, 21, 10, tzinfo=UTC)
        assert services.rule_materialize(rule=rule, now=afternoon) == 1
        reminder = OutboundMessage.objects.get(rule=rule, subject_id=appointment.pk)
    assert delivery.message_send(org_a, reminder.pk) == "sent"
    (sms,) = fake_twilio.accepted
    assert sms.to == PHONE and "3:10 PM" in sms.body and "Reply C to confirm" in sms.body

    path = f"/integrations/twilio/{org_a.slug}/inbound/"
    reply = {"From": PHONE, "To": "+13125550000", "Body": "C", "MessageSid": "SMreply1", "AccountSid": ACCOUNT}
    signature = RequestValidator(TOKEN).compute_signature(BASE + path, reply)
    response = client.post(path, reply, HTTP_X_TWILIO_SIGNATURE=signature)

    assert response.status_code == 200 and b"confirmed" in response.content
    with organization_context(org_a):
        appointment.refresh_from_db()
    assert (appointment.status, appointment.confirmed_via) == ("confirmed", "sms_reply")
    assert timedelta(0) <= appointment.confirmed_at - afternoon < timedelta(minutes=5)
