"""What engagement's layout promises: a materializer per scheduled rule kind, the SMS provider a
backend named by a setting, and no import of integrations anywhere in engagement."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from engagement import delivery, services
from engagement.models import RuleKind
from integrations.twilio import backend as twilio_backend

ENGAGEMENT = Path(__file__).resolve().parents[2] / "engagement"


def test_every_scheduled_rule_kind_has_a_materializer() -> None:
    # Notices are enqueued by the services that change what they announce (notice_enqueue; waitlist
    # offers by scheduling freeing a slot), and education by the receivers of a new diagnosis,
    # medication or care plan (education_auto_send).
    notices = {RuleKind.CARE_PLAN_UPDATE, RuleKind.LAB_RESULTS, RuleKind.WAITLIST_OFFER, RuleKind.EDUCATION}
    assert set(services.MATERIALIZERS) == set(RuleKind) - notices


@pytest.mark.parametrize(
    "name, expected",
    [
        ("twilio", twilio_backend.TwilioBackend),
        ("outbox_sink", delivery.SinkBackend),
        ("integrations.twilio.backend.TwilioBackend", twilio_backend.TwilioBackend),
        ("engagement.delivery.backends.SinkBackend", delivery.SinkBackend),
    ],
)
def test_the_sms_backend_is_named_by_a_setting(settings: Any, name: str, expected: type) -> None:
    settings.ENGAGEMENT_SMS_BACKEND = name
    assert type(delivery.sms_backend()) is expected


def test_a_backend_that_is_not_an_sms_backend_is_refused(settings: Any) -> None:
    settings.ENGAGEMENT_SMS_BACKEND = "collections.OrderedDict"
    with pytest.raises(TypeError):
        delivery.sms_backend()


def test_the_sink_sends_without_a_provider() -> None:
    account = delivery.SmsAccount(organization_slug="north", account_sid="", auth_token="")
    sent = delivery.SinkBackend().send(account=account, to="+13125550142", body="Hi", message_id=7)
    assert sent.provider_id == "SINK000000000007"


@pytest.mark.parametrize(
    "twilio_status, status",
    [("queued", "sent"), ("SENT", "sent"), ("delivered", "delivered"), ("read", "delivered"),
     ("undelivered", "failed"), ("failed", "failed"), ("scheduled", ""), ("", "")],
)  # fmt: skip
def test_twilio_status_names_are_translated_in_integrations(twilio_status: str, status: str) -> None:
    assert twilio_backend.delivery_status(twilio_status) == status


def test_twilio_status_callback_url_is_built_from_the_public_base(settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "https://crm.example.org/"
    assert twilio_backend.status_callback_url("north") == "https://crm.example.org/integrations/twilio/north/status/"
    settings.PUBLIC_BASE_URL = ""
    assert twilio_backend.status_callback_url("north") == ""


def test_engagement_never_imports_integrations() -> None:
    found = []
    for path in ENGAGEMENT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):  # inside functions too
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            found += [f"{path.relative_to(ENGAGEMENT)}: {n}" for n in names if n.split(".")[0] == "integrations"]
    assert found == []
