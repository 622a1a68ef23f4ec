"""The patient record's Consent tab (#11, "Patient record: a consent screen"): each channel's current
consent with its source and date, the full history of changes (every path through `consent_set`
writes one: staff, SMS keywords, unsubscribe links, intake), and staff recording a change."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from compliance.models import AccessAction, AccessLog
from engagement import links, services
from engagement.models import Consent, ConsentChange, OutboundMessage, OutboxStatus
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import configure
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db

PHONE = "+13125550177"


@pytest.fixture
def patient(org_a: Any) -> Any:
    configure(org_a)
    with organization_context(org_a):
        return PatientFactory(given_name="Ines", phone_mobile=PHONE, preferred_channel="sms")


def _url(patient: Any) -> str:
    return reverse("engagement:patient_consent", args=[patient.pk])


def _history(org: Any, patient: Any) -> list[tuple[str, str, str, str]]:
    with organization_context(org):
        rows = ConsentChange.objects.filter(patient_id=patient.pk).order_by("id")
        return [(c.channel, c.status, c.source, c.actor_label) for c in rows]


# -- Every path through consent_set writes history ------------------------------------------------


def test_a_change_recorded_by_staff_writes_history_with_actor_and_note(org_a, patient, nurse_user) -> None:
    with organization_context(org_a):
        services.consent_set(
            patient=patient, channel="sms", status="opted_out", source="staff", actor=nurse_user, note="Asked by phone"
        )
        [change] = ConsentChange.objects.all()
    assert (change.channel, change.status, change.source, change.actor_id) == (
        "sms",
        "opted_out",
        "staff",
        nurse_user.pk,
    )
    assert change.actor_label == nurse_user.username and change.note == "Asked by phone"


def test_stop_and_start_keywords_write_history(org_a, patient) -> None:
    with organization_context(org_a):
        services.inbound_receive(from_number=PHONE, body="STOP", sid="SMstop1")
        services.inbound_receive(from_number=PHONE, body="START", sid="SMstart1")
    assert _history(org_a, patient) == [
        ("sms", "opted_out", "sms_keyword", ""),
        ("sms", "opted_in", "sms_keyword", ""),
    ]


def test_an_unsubscribe_link_writes_history(client, org_a, patient) -> None:
    with organization_context(org_a):
        appointment = AppointmentFactory(patient=patient, starts_at=timezone.now() + timedelta(days=3))
        message = services.outbox_enqueue(
            patient=patient,
            subject_type="appointment",
            subject_id=appointment.pk,
            slot="24h",
            due_at=timezone.now(),
            template_key="appointment_reminder",
        )
        OutboundMessage.objects.filter(pk=message.pk).update(status="sent")
    token = links.make_token(organization_id=org_a.pk, message_id=message.pk, action="unsubscribe")
    assert client.post(f"/engagement/l/{token}/").status_code == 200
    assert _history(org_a, patient) == [("sms", "opted_out", "link", "")]


def test_consents_given_at_intake_write_history(org_a) -> None:
    from patients.services import patient_create

    with organization_context(org_a):
        created = patient_create(
            mrn="NC-777",
            given_name="Ada",
            family_name="Mori",
            date_of_birth=date(1986, 1, 2),
            phone_mobile=PHONE,
            sms_consent=True,
        )
    assert _history(org_a, created) == [("sms", "opted_in", "intake", "")]


def test_a_failed_service_call_writes_no_history(org_a, patient) -> None:
    with organization_context(org_a), pytest.raises(ValidationError):
        services.consent_set(patient=patient, channel="sms", status="maybe", source="staff")
    assert _history(org_a, patient) == []


def test_the_note_is_encrypted_at_rest_and_redacted_in_the_audit_log(org_a, patient, nurse_user) -> None:
    with organization_context(org_a):
        change_consent = services.consent_set(
            patient=patient, channel="email", status="opted_out", source="staff", actor=nurse_user, note="Zyxwv reason"
        )
        change = ConsentChange.objects.get()
        with connection.cursor() as cursor:
            cursor.execute("SELECT note FROM engagement_consentchange WHERE id = %s", [change.pk])
            (raw,) = cursor.fetchone()
        entry = LogEntry.objects.get_for_object(change).get()
    assert change_consent.status == "opted_out"
    assert "Zyxwv" not in raw
    assert "Zyxwv" not in str(entry.changes)


# -- The tab ------------------------------------------------------------------------------------


def test_the_tab_shows_current_consent_and_history_newest_first(org_a, patient, nurse_user, client_for) -> None:
    with organization_context(org_a):
        services.inbound_receive(from_number=PHONE, body="STOP", sid="SMstop2")
        services.consent_set(
            patient=patient, channel="sms", status="opted_in", source="signed_form", actor=nurse_user, note="Signed"
        )
    response = client_for(nurse_user).get(_url(patient))
    assert response.status_code == 200
    html = response.content.decode()
    current = html[html.index('data-testid="consent-current"') : html.index("</table>")]
    assert "Opted in" in current and "Signed consent form" in current and "Nothing recorded" in current
    history = html[html.index('data-testid="consent-history"') :]
    history = history[history.index("<tbody>") :]
    rows = re.findall(r"<tr>(.*?)</tr>", history, re.S)
    assert "Signed consent form" in rows[0] and nurse_user.username in rows[0] and "Signed" in rows[0]
    assert "SMS keyword" in rows[1] and "Opted out" in rows[1] and "the system" in rows[1]
    assert 'aria-current="page">Consent</a>' in html


def test_a_nurse_records_an_opt_out_which_cancels_pending_messages(org_a, patient, nurse_user, client_for) -> None:
    with organization_context(org_a):
        appointment = AppointmentFactory(patient=patient, starts_at=timezone.now() + timedelta(days=3))
        pending = services.outbox_enqueue(
            patient=patient,
            subject_type="appointment",
            subject_id=appointment.pk,
            slot="24h",
            due_at=timezone.now() + timedelta(days=2),
            template_key="appointment_reminder",
        )
    client = client_for(nurse_user)
    data = {"kind": "sms", "status": "opted_out", "source": "staff", "note": "Asked at the desk"}
    response = client.post(_url(patient), data)
    assert response.status_code == 302
    with organization_context(org_a):
        assert Consent.objects.get(patient=patient, kind="sms").status == "opted_out"
        assert OutboundMessage.objects.get(pk=pending.pk).status == OutboxStatus.CANCELLED
        log = AccessLog.objects.filter(view_name="engagement:patient_consent").latest("id")
    assert _history(org_a, patient) == [("sms", "opted_out", "staff", nurse_user.username)]
    assert log.action == AccessAction.CHANGE and f"patients.patient:{patient.pk}" in log.records
    assert "Asked at the desk" in client.get(_url(patient)).content.decode()


@pytest.mark.parametrize("role", ["frontdesk", "coordinator", "provider", "admin"])
def test_roles_that_may_record_consent(org_a, patient, client_for, role, request) -> None:
    user = request.getfixturevalue(f"{role}_user")
    client = client_for(user)
    assert b"Record a change" in client.get(_url(patient)).content
    response = client.post(_url(patient), {"kind": "email", "status": "opted_out", "source": "staff"})
    assert response.status_code == 302
    assert _history(org_a, patient) == [("email", "opted_out", "staff", user.username)]


@pytest.mark.parametrize("role", ["analyst", "compliance"])
def test_roles_without_consent_access_get_403(org_a, patient, client_for, role, request) -> None:
    client = client_for(request.getfixturevalue(f"{role}_user"))
    assert client.get(_url(patient)).status_code == 403
    response = client.post(_url(patient), {"kind": "sms", "status": "opted_out", "source": "staff"})
    assert response.status_code == 403
    assert _history(org_a, patient) == []


def test_another_organizations_patient_is_404(org_a, patient, other_org_user, client_for) -> None:
    client = client_for(other_org_user)
    assert client.get(_url(patient)).status_code == 404
    assert client.post(_url(patient), {"kind": "sms", "status": "opted_out", "source": "staff"}).status_code == 404
    assert _history(org_a, patient) == []


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "fax", "status": "opted_out", "source": "staff"},
        {"kind": "sms", "status": "maybe", "source": "staff"},
        {"kind": "sms", "status": "opted_out", "source": "sms_keyword"},  # only the system writes that one
        {"kind": "sms", "status": "opted_out", "source": "staff", "note": "x" * 501},
        {"kind": "\x00", "status": "\x00", "source": "\x00", "note": "\x00"},
        {},
    ],
)
def test_hostile_or_bad_input_re_renders_the_form_with_errors(org_a, patient, nurse_user, client_for, data) -> None:
    response = client_for(nurse_user).post(_url(patient), data)
    assert response.status_code == 400
    assert b'class="error"' in response.content
    assert _history(org_a, patient) == []
