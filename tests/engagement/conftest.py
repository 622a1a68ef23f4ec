"""Outreach fixtures: channel settings pointing at a fake Twilio, templates, a reminder rule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine

from engagement.models import ChannelSettings
from engagement.services import template_save
from healthcrm.tenancy import organization_context
from tests.factories import PatientFactory
from tests.integrations.fake_twilio import FakeTwilio

ACCOUNT = "AC" + "0" * 32
TOKEN = "test-auth-token-0123456789abcdef"


@pytest.fixture
def fake_twilio(settings: Any) -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        settings.TWILIO_API_URL = fake.url
        settings.ENGAGEMENT_SMS_BACKEND = "twilio"
        settings.TWILIO_TIMEOUT = 1.0
        yield fake


@pytest.fixture
def daytime() -> Iterator[datetime]:
    """The clock stopped at 15:00 in Chicago on 2026-11-24 (inside quiet hours' sending window)."""
    fixed = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
    with time_machine.travel(fixed, tick=False):
        yield fixed


def configure(organization: Any, **overrides: Any) -> ChannelSettings:
    """Channel settings for an organization (Twilio credentials, generous limits for tests)."""
    with organization_context(organization):
        values = {
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": TOKEN,
            "sms_from_number": "+13125550000",
            "send_rate_per_second": 1000,
            "contact_phone": "(312) 555-0000",
            **overrides,
        }
        found, _ = ChannelSettings.objects.update_or_create(organization=organization, defaults=values)
        for language, sms, email in (
            (
                "en",
                "Hi {{ first_name }}, reminder from {{ clinic_name }}: {{ appointment_time }}. Reply C to confirm, R to reschedule.",  # noqa: E501
                "Dear {{ first_name }}, your appointment is {{ appointment_time }}. Confirm: {{ confirm_link }}",
            ),
            (
                "es",
                "Hola {{ first_name }}, recordatorio de {{ clinic_name }}: {{ appointment_time }}. Responda C para confirmar.",  # noqa: E501
                "Hola {{ first_name }}, su cita es {{ appointment_time }}. Confirmar: {{ confirm_link }}",
            ),
        ):
            for channel, body in (("sms", sms), ("email", email)):
                from engagement.models import MessageTemplate

                existing = MessageTemplate.objects.filter(
                    key="appointment_reminder", language=language, channel=channel
                ).first()
                template_save(
                    template=existing,
                    key="appointment_reminder",
                    language=language,
                    channel=channel,
                    body=body,
                    subject="Appointment reminder",
                )
            existing = MessageTemplate.objects.filter(key="lab_results", language=language, channel="sms").first()
            template_save(
                template=existing,
                key="lab_results",
                language=language,
                channel="sms",
                body="Hi {{ first_name }}, new results are available. Sign in to see them: {{ portal_link }}",
            )
        return found


@pytest.fixture
def outreach_a(org_a: Any) -> ChannelSettings:
    return configure(org_a)


@pytest.fixture
def outreach_b(org_b: Any) -> ChannelSettings:
    return configure(org_b)


@pytest.fixture
def patient_a(org_a: Any, outreach_a: Any) -> Any:
    """Rosa, who takes text messages in Chicago (the delivery tests' patient)."""
    with organization_context(org_a):
        return PatientFactory(
            given_name="Rosa", phone_mobile="+13125550101", preferred_channel="sms", timezone="America/Chicago"
        )
