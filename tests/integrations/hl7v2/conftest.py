from __future__ import annotations

from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from integrations.hl7v2.processing import Received, hl7_message_receive
from integrations.hl7v2.services import hl7_sender_register
from tests.engagement.conftest import fake_twilio  # noqa: F401 - the end-to-end test's fake provider
from tests.integrations.hl7v2.messages import APPLICATION, FACILITY, SECRET


@pytest.fixture
def sender(org_a: Any) -> Any:
    with organization_context(org_a):
        return hl7_sender_register(
            name="North PM", sending_facility=FACILITY, sending_application=APPLICATION, secret=SECRET
        )


@pytest.fixture
def send(sender: Any) -> Any:
    """`send(text)` -> Received: the processing core, as the listener calls it (no organization current)."""

    def run(text: str | bytes, **kwargs: Any) -> Received:
        return hl7_message_receive(text.encode() if isinstance(text, str) else text, **kwargs)

    return run
