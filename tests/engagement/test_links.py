"""Patient links (issue 9, item 13): confirm/cancel act once, expire at the appointment's start at the
latest, never act on a final appointment, answer politely (410) when used again; GET never uses.

Times: time-machine is not a dependency, so the clock is injected: tokens are signed "as of" a
given time (`links.make_token(now=...)`) and appointments start days or hours away from now, far
from any boundary the time of day could cross.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from engagement import links, services
from engagement.models import Consent, LinkUse, OutboundMessage
from healthcrm.tenancy import organization_context
from patients.services import appointment_set_status
from tests.engagement.conftest import configure
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db

USED = b"already been used"
UNAVAILABLE = b"can no longer be changed online"


def _message_about(organization: Any, *, starts_at: datetime | None = None, status: str = "booked") -> Any:
    """A sent reminder about an appointment (in `organization`), and that appointment."""
    configure(organization)
    with organization_context(organization):
        patient = PatientFactory(given_name="Zelda", preferred_channel="sms")
        appointment = AppointmentFactory(patient=patient, **({"starts_at": starts_at} if starts_at else {}))
        appointment.status = status
        appointment.save(update_fields=["status"])
        message = services.outbox_enqueue(
            patient=patient,
            subject_type="appointment",
            subject_id=appointment.pk,
            slot="24h",
            due_at=timezone.now(),
            template_key="appointment_reminder",
        )
        OutboundMessage.objects.filter(pk=message.pk).update(status="sent")
    return message, appointment


def _url(organization: Any, message: Any, action: str, *, issued: datetime | None = None) -> str:
    token = links.make_token(organization_id=organization.pk, message_id=message.pk, action=action, now=issued)
    return f"/engagement/l/{token}/"


def _status(organization: Any, appointment: Any) -> str:
    with organization_context(organization):
        appointment.refresh_from_db()
    return appointment.status


def _uses(organization: Any) -> list[tuple[int, str]]:
    with organization_context(organization):
        return list(LinkUse.objects.values_list("message_id", "action"))


@pytest.fixture
def reminder(org_a: Any) -> tuple[Any, Any]:
    return _message_about(org_a, starts_at=timezone.now() + timedelta(days=3))


def test_a_confirm_link_acts_once_and_a_second_post_changes_nothing(client, org_a, reminder) -> None:
    message, appointment = reminder
    url = _url(org_a, message, "confirm")
    first = client.post(url)
    assert first.status_code == 200 and b"your appointment is confirmed" in first.content
    assert _status(org_a, appointment) == "confirmed"
    with organization_context(org_a):  # staff put it back (the patient called): the old link must not redo it
        appointment_set_status(appointment=appointment, status="booked")
    again = client.post(url)
    assert again.status_code == 410 and USED in again.content and b"please call your clinic" in again.content
    assert _status(org_a, appointment) == "booked"
    assert _uses(org_a) == [(message.pk, "confirm")]
    # Opening the used link again says the same, politely.
    page = client.get(url)
    assert page.status_code == 410 and USED in page.content and b"<form" not in page.content


def test_a_cancelled_appointment_cannot_be_confirmed_by_an_old_link(client, org_a, reminder) -> None:
    message, appointment = reminder
    confirm = _url(org_a, message, "confirm")
    assert client.post(_url(org_a, message, "cancel")).status_code == 200
    assert _status(org_a, appointment) == "cancelled"
    page = client.get(confirm)
    assert page.status_code == 410 and UNAVAILABLE in page.content and b"<form" not in page.content
    used = client.post(confirm)
    assert used.status_code == 410 and UNAVAILABLE in used.content
    assert _status(org_a, appointment) == "cancelled"
    assert _uses(org_a) == [(message.pk, "cancel")]


def test_a_cancel_link_records_that_the_patient_asked(client, org_a, reminder) -> None:
    message, appointment = reminder
    assert client.post(_url(org_a, message, "cancel")).status_code == 200
    with organization_context(org_a):
        appointment.refresh_from_db()
    # The coded reason analytics counts: the patient cancelled it, not the clinic (no staff actor).
    assert (appointment.status, appointment.status_reason) == ("cancelled", "patient_request")
    assert appointment.status_changed_by is None


@pytest.mark.parametrize("final", ["cancelled", "completed", "no_show"])
@pytest.mark.parametrize("action", ["confirm", "cancel"])
def test_links_of_a_final_appointment_are_no_longer_available(client, org_a, final, action) -> None:
    message, appointment = _message_about(org_a, starts_at=timezone.now() + timedelta(days=3), status=final)
    url = _url(org_a, message, action)
    page = client.get(url)
    assert page.status_code == 410 and UNAVAILABLE in page.content and b"<form" not in page.content
    assert client.post(url).status_code == 410
    assert _status(org_a, appointment) == final
    assert _uses(org_a) == []


@pytest.mark.parametrize("action", ["confirm", "cancel"])
def test_a_link_expires_at_the_appointments_start(client, org_a, action) -> None:
    now = timezone.now()
    message, appointment = _message_about(org_a, starts_at=now - timedelta(hours=1))
    url = _url(org_a, message, action, issued=now - timedelta(days=1))  # well within the 14 days
    page = client.get(url)
    assert page.status_code == 410 and UNAVAILABLE in page.content
    post = client.post(url)
    assert post.status_code == 410 and UNAVAILABLE in post.content
    assert _status(org_a, appointment) == "booked"
    assert _uses(org_a) == []


def test_a_link_older_than_the_maximum_age_has_expired(client, org_a, reminder, settings) -> None:
    message, appointment = reminder
    issued = timezone.now() - timedelta(seconds=settings.ENGAGEMENT_LINK_MAX_AGE + 3600)
    for action in ("confirm", "cancel", "unsubscribe"):
        url = _url(org_a, message, action, issued=issued)
        for response in (client.get(url), client.post(url)):
            assert response.status_code == 410 and b"this link has expired" in response.content
    assert _status(org_a, appointment) == "booked" and _uses(org_a) == []


def test_expiry_is_the_earlier_of_the_maximum_age_and_the_start(settings) -> None:
    settings.ENGAGEMENT_LINK_MAX_AGE = 14 * 24 * 3600
    issued = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    token = links.make_token(organization_id=1, message_id=2, action="confirm", now=issued)
    claims = links.read_token(token, now=issued + timedelta(days=13))
    assert claims.issued_at == issued
    assert links.link_expires_at(claims, starts_at=issued + timedelta(days=20)) == issued + timedelta(days=14)
    assert links.link_expires_at(claims, starts_at=issued + timedelta(hours=5)) == issued + timedelta(hours=5)
    unsubscribe = links.read_token(
        links.make_token(organization_id=1, message_id=2, action="unsubscribe", now=issued), now=issued
    )
    assert links.link_expires_at(unsubscribe, starts_at=issued + timedelta(hours=5)) == issued + timedelta(days=14)
    from django.core import signing

    with pytest.raises(signing.SignatureExpired):
        links.read_token(token, now=issued + timedelta(days=14, seconds=1))


def test_opening_a_link_uses_nothing(client, org_a, reminder) -> None:
    """Mail and chat previewers fetch links: a GET shows the question and records no use."""
    message, appointment = reminder
    url = _url(org_a, message, "cancel")
    for _ in range(3):
        page = client.get(url)
        assert page.status_code == 200 and b"Cancel your appointment?" in page.content and b"<form" in page.content
    assert _uses(org_a) == [] and _status(org_a, appointment) == "booked"
    assert client.post(url).status_code == 200 and _status(org_a, appointment) == "cancelled"


def test_an_unsubscribe_link_stays_usable_and_is_recorded_once(client, org_a, reminder) -> None:
    message, _ = reminder
    url = _url(org_a, message, "unsubscribe")
    for _ in range(2):
        response = client.post(url)
        assert response.status_code == 200 and b"no more of these messages" in response.content
    assert _uses(org_a) == [(message.pk, "unsubscribe")]
    with organization_context(org_a):
        assert Consent.objects.get(patient_id=message.patient_id, kind=message.channel).status == "opted_out"


def test_a_link_use_is_invisible_to_another_organization(client, org_a, org_b, reminder) -> None:
    message, _ = reminder
    client.post(_url(org_a, message, "confirm"))
    with organization_context(org_b):
        assert LinkUse.objects.count() == 0
    assert len(_uses(org_a)) == 1


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_posts_of_one_link_act_exactly_once(org_a, monkeypatch) -> None:
    import patients.services

    message, appointment = _message_about(org_a, starts_at=timezone.now() + timedelta(days=3))
    url = _url(org_a, message, "confirm")
    real_confirm = patients.services.appointment_confirm
    calls: list[int] = []

    def slow_confirm(**kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(0.3)  # hold the transaction open: the other request arrives meanwhile
        return real_confirm(**kwargs)

    monkeypatch.setattr(patients.services, "appointment_confirm", slow_confirm)
    start = threading.Barrier(2)
    statuses: list[int] = []

    def click() -> None:
        try:
            start.wait(timeout=10)
            statuses.append(Client().post(url).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200, 410]
    assert len(calls) == 1
    assert _status(org_a, appointment) == "confirmed" and _uses(org_a) == [(message.pk, "confirm")]
