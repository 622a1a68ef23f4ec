"""Screens: three personas (writer, read-only, other organization); template lint and preview."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from engagement import links, services, templating
from engagement.models import OutboundMessage, Rule
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import configure
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def message_a(org_a: Any) -> Any:
    configure(org_a)
    with organization_context(org_a):
        patient = PatientFactory(given_name="Zelda", preferred_channel="sms")
        return services.outbox_enqueue(
            patient=patient, subject_type="x", slot="1", due_at=timezone.now(), template_key="lab_results"
        )


def test_outbox_for_writer_403_for_reader_and_other_org_sees_none(
    client_for, nurse_user, analyst_user, other_org_user, message_a, django_assert_max_num_queries
) -> None:
    with django_assert_max_num_queries(45):
        page = client_for(nurse_user).get("/engagement/outbox/?status=pending")
    assert page.status_code == 200 and b"Zelda" in page.content
    assert client_for(analyst_user).get("/engagement/outbox/").status_code == 403
    other_page = client_for(other_org_user).get("/engagement/outbox/")
    assert other_page.status_code == 403 or b"Zelda" not in other_page.content


def test_conversation_of_another_organizations_patient_is_404(client_for, other_org_user, message_a) -> None:
    assert client_for(other_org_user).get(f"/engagement/conversations/{message_a.patient_id}/").status_code == 404


def test_admin_creates_a_rule_and_reminders_are_scheduled(
    client_for, admin_user, org_a, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from engagement import tasks

    monkeypatch.setattr(
        tasks.rule_materialize_task,
        "delay",
        lambda org_id, rule_id: tasks.rule_materialize_task.apply(args=(org_id, rule_id)),
    )
    configure(org_a)
    with organization_context(org_a):
        AppointmentFactory(
            patient=PatientFactory(preferred_channel="sms"), starts_at=timezone.now() + timedelta(hours=2, minutes=20)
        )
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(admin_user).post(
            "/engagement/rules/new/",
            {
                "name": "Reminders",
                "kind": "appointment_reminder",
                "template_key": "appointment_reminder",
                "offsets": "72, 24, 2",
                "is_active": "on",
            },
        )
    assert response.status_code == 302
    with organization_context(org_a):
        rule = Rule.objects.get()
        assert rule.offsets_hours == [72, 24, 2]
        assert OutboundMessage.objects.filter(rule=rule).count() == 1


def test_rule_editor_takes_kind_specific_options_and_refuses_bad_ones(client_for, admin_user, org_a) -> None:
    configure(org_a)
    base = {"name": "Flu campaign", "kind": "campaign", "template_key": "appointment_reminder", "offsets": ""}
    client = client_for(admin_user)
    response = client.post("/engagement/rules/new/", {**base, "campaign-send_on": "next week"})
    assert response.status_code == 400 and "Enter a valid date" in response.content.decode()
    response = client.post("/engagement/rules/new/", {**base, "campaign-age_min": "70", "campaign-age_max": "40"})
    assert response.status_code == 400 and "The oldest age is below the youngest" in response.content.decode()
    response = client.post(
        "/engagement/rules/new/",
        {**base, "campaign-send_on": "2026-12-01", "campaign-languages": "es", "campaign-age_min": "40"},
    )
    assert response.status_code == 302
    with organization_context(org_a):
        assert Rule.objects.get().params == {"send_on": "2026-12-01", "languages": ["es"], "age_min": 40}


def test_rule_editor_previews_its_template(client_for, admin_user, nurse_user, org_a) -> None:
    configure(org_a)
    client = client_for(admin_user)
    response = client.post(
        "/engagement/rules/preview/", {"template_key": "appointment_reminder"}, HTTP_HX_REQUEST="true"
    )
    content = response.content.decode()
    assert response.status_code == 200 and "Hi Alex" in content and "segment" in content
    missing = client.post("/engagement/rules/preview/", {"template_key": "nope"}).content.decode()
    assert 'No active template "nope"' in missing
    assert client_for(nurse_user).post("/engagement/rules/preview/", {"template_key": "x"}).status_code == 403


def test_writer_cannot_edit_rules_and_template_lint_refuses_sensitive_fields(
    client_for, nurse_user, admin_user, org_a
) -> None:
    assert client_for(nurse_user).get("/engagement/rules/new/").status_code == 403
    response = client_for(admin_user).post(
        "/engagement/templates/new/",
        {
            "key": "lab_results",
            "language": "en",
            "channel": "sms",
            "body": "Your {{ lab_result }} for {{ diagnosis }}",
            "is_active": "on",
        },
    )
    assert response.status_code == 400 and b"SMS may not carry" in response.content
    preview = client_for(admin_user).post(
        "/engagement/templates/preview/", {"body": "Hi {{ first_name }} ✅", "channel": "sms"}, HTTP_HX_REQUEST="true"
    )
    assert b"Hi Alex" in preview.content and b"UCS-2" in preview.content


def test_segment_counter() -> None:
    assert templating.count_segments("a" * 160).segments == 1
    assert templating.count_segments("a" * 161).segments == 2
    assert templating.count_segments("{" * 80).units == 160  # extension characters cost two
    assert templating.count_segments("é" * 160).encoding == "GSM-7"
    assert templating.count_segments("ñ" * 70 + "ć").encoding == "UCS-2"
    assert templating.count_segments("ć" * 71).segments == 2
    assert templating.count_segments("😀" * 35).units == 70


def test_signed_links_carry_no_phi_expire_and_confirm(client, org_a, message_a) -> None:
    with organization_context(org_a):
        appointment = AppointmentFactory(patient=message_a.patient, starts_at=timezone.now() + timedelta(days=1))
        OutboundMessage.objects.filter(pk=message_a.pk).update(
            subject_type="appointment", subject_id=appointment.pk, status="sent"
        )
    url = links.link_for(organization_id=org_a.pk, message_id=message_a.pk, action="confirm")
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert "Zelda" not in url and links.read_token(token).message_id == message_a.pk
    assert client.get(f"/engagement/l/{token}/").status_code == 200
    assert b"confirmed" in client.post(f"/engagement/l/{token}/").content
    with organization_context(org_a):
        appointment.refresh_from_db()
    assert appointment.status == "confirmed"
    assert client.get(f"/engagement/l/{token[:-2]}xx/").status_code == 404
    import pytest as _pytest
    from django.core import signing

    with _pytest.raises(signing.SignatureExpired):
        time_travel = links.read_token(token, max_age=-1)  # noqa: F841


def test_read_only_opens_rules_and_templates_but_cannot_write_them(client_for, readonly_user, outreach_a) -> None:
    client = client_for(readonly_user)
    assert client.get("/engagement/rules/").status_code == 200
    assert client.get("/engagement/templates/").status_code == 200
    assert client.get("/engagement/rules/new/").status_code == 403
    assert client.post("/engagement/rules/new/", {"name": "x", "kind": "appointment_reminder"}).status_code == 403
    assert client.post("/engagement/templates/new/", {"key": "x", "body": "y"}).status_code == 403
