"""Page links keep every filter: page 2 of a filtered list is page 2 of the same filtered list."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance.models import AccessAction, AccessLog
from engagement import services
from engagement.models import OutboxStatus
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import configure
from tests.factories import MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


def _link(content: bytes, rel: str) -> dict[str, list[str]]:
    text = content.decode()
    start = text.index(f'rel="{rel}"')
    href_at = text.rindex('href="', 0, start) + len('href="')
    href = html.unescape(text[href_at : text.index('"', href_at)])
    return parse_qs(urlsplit(href).query)


def _admin(org: Any, role: str) -> Any:
    user = UserFactory(username=f"{role}@north.example")
    MembershipFactory(user=user, organization=org, role=role)
    return user


def test_access_log_page_two_keeps_its_filters(client_for, org_a) -> None:
    officer = _admin(org_a, "compliance")
    with organization_context(org_a):
        for n in range(55):
            AccessLog.objects.create(
                actor_label="nurse@north.example", action=AccessAction.VIEW, view_name="x", object_ids=[str(n)]
            )
        AccessLog.objects.create(actor_label="someone@else.example", action=AccessAction.LIST, view_name="x")
    client = client_for(officer)
    url = reverse("compliance:access_log")
    first = client.get(url, {"action": AccessAction.VIEW, "actor": "nurse@north.example"})
    assert first.status_code == 200
    wanted = {"action": [AccessAction.VIEW], "actor": ["nurse@north.example"]}
    assert _link(first.content, "next") == {**wanted, "page": ["2"]}
    second = client.get(url, {"action": AccessAction.VIEW, "actor": "nurse@north.example", "page": "2"})
    assert second.status_code == 200
    assert b"Page 2 of 2" in second.content and b"someone@else.example" not in second.content
    assert _link(second.content, "prev") == {**wanted, "page": ["1"]}


def test_outbox_page_two_keeps_its_filters(client_for, org_a) -> None:
    admin = _admin(org_a, "admin")
    configure(org_a)
    with organization_context(org_a):
        patient = PatientFactory(preferred_channel="sms")
        for n in range(52):
            services.outbox_enqueue(
                patient=patient, subject_type="x", slot=str(n), due_at=timezone.now(), template_key="lab_results"
            )
    client = client_for(admin)
    url = reverse("engagement:outbox")
    first = client.get(url, {"status": OutboxStatus.PENDING, "channel": "sms"})
    assert first.status_code == 200
    wanted = {"status": [OutboxStatus.PENDING], "channel": ["sms"]}
    assert _link(first.content, "next") == {**wanted, "page": ["2"]}
    second = client.get(url, {"status": OutboxStatus.PENDING, "channel": "sms", "page": "2"})
    assert second.status_code == 200 and b"Page 2 of 2" in second.content
    assert _link(second.content, "prev") == {**wanted, "page": ["1"]}
