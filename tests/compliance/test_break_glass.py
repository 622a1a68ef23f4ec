"""Care relationship as the default, break-the-glass as the exception (patients/breakglass/)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from compliance.models import AccessAction, AccessLog
from healthcrm.models import Notification
from healthcrm.tenancy import organization_context
from patients.breakglass.policy import break_glass_settings, has_care_relationship
from patients.models import BreakGlassEvent, CareTask, CareTeamMember
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

REASON = {"reason": "emergency", "note": "Seen in the corridor with chest pain"}


@pytest.fixture
def patient_a(org_a):
    with organization_context(org_a):
        return PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-1")


@pytest.fixture
def restricted(org_a):
    org_a.settings = {"break_glass": {"required": True, "grant_minutes": 30}}
    org_a.save()
    return org_a


def _detail(patient):
    return reverse("patients:detail", args=[patient.pk])


def _is_gate(response) -> bool:
    return response.status_code == 200 and b"Reason needed to open this record" in response.content


# -- The policy: each relationship grants access ----------------------------------------------


def test_settings_default_off_and_bounded(org_a) -> None:
    assert break_glass_settings(org_a).required is False
    org_a.settings = {"break_glass": {"required": True, "grant_minutes": 500, "window_days_before": "x"}}
    options = break_glass_settings(org_a)
    assert (options.required, options.grant_minutes, options.window_days_before) == (True, 60, 30)


def test_care_team_member_opens_without_friction(client_for, nurse_user, patient_a, restricted) -> None:
    client = client_for(nurse_user)
    assert _is_gate(client.get(_detail(patient_a)))
    with organization_context(restricted):
        CareTeamMember.objects.create(patient=patient_a, user=nurse_user, team_role="nurse")
    response = client.get(_detail(patient_a))
    assert response.status_code == 200 and b"Northcott" in response.content and not _is_gate(response)


def test_inactive_care_team_member_is_asked(client_for, nurse_user, patient_a, restricted) -> None:
    with organization_context(restricted):
        CareTeamMember.objects.create(patient=patient_a, user=nurse_user, team_role="nurse", active=False)
    assert _is_gate(client_for(nurse_user).get(_detail(patient_a)))


@pytest.mark.parametrize(
    ("offset", "related"),
    [
        (timedelta(days=-29), True),
        (timedelta(days=6), True),
        (timedelta(days=-31), False),
        (timedelta(days=8), False),
    ],
)
def test_appointment_in_the_window_grants_access(provider_user, patient_a, restricted, offset, related) -> None:
    with organization_context(restricted):
        practitioner = PractitionerFactory(user=provider_user)
        AppointmentFactory(patient=patient_a, practitioner=practitioner, starts_at=timezone.now() + offset)
        assert has_care_relationship(provider_user, patient_a) is related


def test_the_window_is_per_organization(provider_user, patient_a, restricted) -> None:
    with organization_context(restricted):
        practitioner = PractitionerFactory(user=provider_user)
        AppointmentFactory(patient=patient_a, practitioner=practitioner, starts_at=timezone.now() - timedelta(days=20))
        assert has_care_relationship(provider_user, patient_a)
        restricted.settings["break_glass"]["window_days_before"] = 10
        assert not has_care_relationship(provider_user, patient_a)


def test_someone_elses_appointment_does_not_count(provider_user, nurse_user, patient_a, restricted) -> None:
    with organization_context(restricted):
        AppointmentFactory(patient=patient_a, practitioner=PractitionerFactory(user=provider_user))
        assert has_care_relationship(provider_user, patient_a)
        assert not has_care_relationship(nurse_user, patient_a)


def test_open_task_grants_access_and_a_done_one_does_not(client_for, coordinator_user, patient_a, restricted) -> None:
    with organization_context(restricted):
        task = CareTask.objects.create(
            patient=patient_a, title="Call back", assignee=coordinator_user, due_date=timezone.localdate()
        )
    client = client_for(coordinator_user)
    assert not _is_gate(client.get(_detail(patient_a)))
    with organization_context(restricted):
        CareTask.objects.filter(pk=task.pk).update(status="cancelled")
    assert _is_gate(client.get(_detail(patient_a)))


# -- The gate ------------------------------------------------------------------------------------


def test_no_relationship_shows_the_form_and_no_clinical_data(client_for, nurse_user, patient_a, restricted) -> None:
    with organization_context(restricted):
        patient_a.conditions.create(code="44054006", display="Type 2 diabetes")
    for name in ("patients:detail", "patients:care_plan", "patients:timeline", "patients:documents", "patients:edit"):
        response = client_for(nurse_user).get(reverse(name, args=[patient_a.pk]))
        assert _is_gate(response), name
        assert b"Northcott" not in response.content and b"diabetes" not in response.content
        assert b'name="reason"' in response.content
    with organization_context(restricted):
        assert set(AccessLog.objects.values_list("action", flat=True)) == {AccessAction.DENIED}
        assert not BreakGlassEvent.objects.exists()


def test_htmx_partial_is_sent_to_the_form(client_for, nurse_user, patient_a, restricted) -> None:
    response = client_for(nurse_user).get(reverse("patients:timeline", args=[patient_a.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"Northcott" not in response.content
    form = reverse("patients:break_glass", args=[patient_a.pk])
    assert response["HX-Redirect"] == f"{form}?next={_detail(patient_a)}"


def test_break_glass_form_get_shows_form_or_sends_related_users_on(
    client_for, nurse_user, patient_a, restricted
) -> None:
    url = reverse("patients:break_glass", args=[patient_a.pk])
    assert _is_gate(client_for(nurse_user).get(url))
    with organization_context(restricted):
        CareTeamMember.objects.create(patient=patient_a, user=nurse_user, team_role="nurse")
    response = client_for(nurse_user).get(url)
    assert response.status_code == 302 and response["Location"] == _detail(patient_a)


def test_restriction_off_means_no_friction(client_for, nurse_user, patient_a, org_a) -> None:
    response = client_for(nurse_user).get(_detail(patient_a))
    assert response.status_code == 200 and b"Northcott" in response.content


@pytest.mark.parametrize("persona", ["admin_user", "frontdesk_user"])
def test_non_clinical_roles_keep_their_rules(request, client_for, patient_a, restricted, persona) -> None:
    user = request.getfixturevalue(persona)
    response = client_for(user).get(_detail(patient_a))
    assert response.status_code == 200 and b"Northcott" in response.content


def test_analyst_and_other_organization_as_before(
    client_for, analyst_user, other_org_user, patient_a, restricted
) -> None:
    assert client_for(analyst_user).get(_detail(patient_a)).status_code == 403
    assert client_for(other_org_user).get(_detail(patient_a)).status_code == 404
    url = reverse("patients:break_glass", args=[patient_a.pk])
    assert client_for(analyst_user).post(url, REASON).status_code == 403
    assert client_for(other_org_user).post(url, REASON).status_code == 404


def test_front_desk_cannot_break_the_glass(client_for, frontdesk_user, patient_a, restricted) -> None:
    url = reverse("patients:break_glass", args=[patient_a.pk])
    assert client_for(frontdesk_user).post(url, REASON).status_code == 403


def test_list_is_not_restricted(client_for, nurse_user, patient_a, restricted) -> None:
    response = client_for(nurse_user).get(reverse("patients:list"))
    assert response.status_code == 200 and b"Northcott" in response.content


# -- The grant -------------------------------------------------------------------------------------


def test_grant_lets_the_user_in_until_expiry(
    client_for, nurse_user, compliance_user, admin_user, patient_a, restricted
) -> None:
    client = client_for(nurse_user)
    url = reverse("patients:break_glass", args=[patient_a.pk])
    response = client.post(url, {**REASON, "next": _detail(patient_a)})
    assert response.status_code == 302 and response["Location"] == _detail(patient_a)
    with organization_context(restricted):
        event = BreakGlassEvent.objects.get()
        assert (event.user, event.patient, event.reason) == (nurse_user, patient_a, "emergency")
        assert event.note == REASON["note"]
        assert event.expires_at - event.granted_at == timedelta(minutes=30)
        assert AccessLog.objects.filter(
            action=AccessAction.CHANGE, records__contains=[f"patients.patient:{patient_a.pk}"]
        ).exists()
    with organization_context(restricted), connection.cursor() as cursor:  # the note is encrypted at rest
        cursor.execute("SELECT note FROM patients_breakglassevent")
        assert "corridor" not in cursor.fetchone()[0]
    response = client.get(_detail(patient_a))
    assert response.status_code == 200 and b"Northcott" in response.content
    # Signed in again at each instant: the session's own idle timeout is not what this tests.
    with time_machine.travel(event.expires_at - timedelta(seconds=5), tick=False):
        assert not _is_gate(client_for(nurse_user).get(_detail(patient_a)))
    with time_machine.travel(event.expires_at + timedelta(seconds=1), tick=False):
        assert _is_gate(client_for(nurse_user).get(_detail(patient_a)))


def test_grant_is_per_user_and_per_patient(client_for, nurse_user, provider_user, patient_a, restricted) -> None:
    with organization_context(restricted):
        other = PatientFactory(family_name="Southwell")
    client_for(nurse_user).post(reverse("patients:break_glass", args=[patient_a.pk]), REASON)
    assert not _is_gate(client_for(nurse_user).get(_detail(patient_a)))
    assert _is_gate(client_for(nurse_user).get(_detail(other)))
    assert _is_gate(client_for(provider_user).get(_detail(patient_a)))


def test_other_needs_details_and_the_form_re_renders(client_for, nurse_user, patient_a, restricted) -> None:
    url = reverse("patients:break_glass", args=[patient_a.pk])
    response = client_for(nurse_user).post(url, {"reason": "other", "note": ""})
    assert _is_gate(response) and b"Say why you need the record." in response.content
    response = client_for(nurse_user).post(url, {"reason": "emergency", "note": "x" * 501})
    assert _is_gate(response)
    response = client_for(nurse_user).post(url, {"reason": "bogus"})
    assert _is_gate(response)
    with organization_context(restricted):
        assert not BreakGlassEvent.objects.exists()


def test_grant_notifies_every_compliance_officer_without_phi(
    client_for, nurse_user, compliance_user, admin_user, patient_a, restricted
) -> None:
    from tests.conftest import _member

    second = _member(restricted, "compliance", "compliance2@north.example")
    client_for(nurse_user).post(reverse("patients:break_glass", args=[patient_a.pk]), REASON)
    with organization_context(restricted):
        notes = list(Notification.objects.all())
    assert sorted(n.recipient_id for n in notes) == sorted([compliance_user.pk, second.pk])
    for note in notes:
        assert "Northcott" not in note.message and "Alma" not in note.message and "corridor" not in note.message
        assert note.url == reverse("patients:break_glass_events")


def test_gate_costs_one_query_when_related(
    client_for, nurse_user, patient_a, org_a, django_assert_max_num_queries
) -> None:
    client = client_for(nurse_user)
    client.get(_detail(patient_a))
    with CaptureQueriesContext(connection) as unrestricted:
        client.get(_detail(patient_a))
    org_a.settings = {"break_glass": {"required": True}}
    org_a.save()
    with organization_context(org_a):
        CareTeamMember.objects.create(patient=patient_a, user=nurse_user, team_role="nurse")
    with CaptureQueriesContext(connection) as restricted_queries:
        assert client.get(_detail(patient_a)).status_code == 200
    assert len(restricted_queries) <= len(unrestricted) + 2  # the relationship check (+ the care team tab rows)
    with django_assert_max_num_queries(26):
        client.get(_detail(patient_a))


# -- The review -----------------------------------------------------------------------------------


@pytest.fixture
def event(client_for, nurse_user, patient_a, restricted):
    client_for(nurse_user).post(reverse("patients:break_glass", args=[patient_a.pk]), REASON)
    with organization_context(restricted):
        return BreakGlassEvent.objects.get()


def test_events_page_lists_unreviewed_first(client_for, compliance_user, nurse_user, event, restricted) -> None:
    with organization_context(restricted):
        reviewed = BreakGlassEvent.objects.create(
            user=nurse_user,
            user_label="nurse",
            patient=event.patient,
            reason="covering",
            granted_at=event.granted_at + timedelta(minutes=1),
            expires_at=event.granted_at + timedelta(minutes=2),
            reviewed_at=event.granted_at + timedelta(minutes=3),
            outcome="appropriate",
        )
    response = client_for(compliance_user).get(reverse("patients:break_glass_events"))
    assert response.status_code == 200
    content = response.content.decode()
    assert content.index(f"#{event.pk}<") < content.index(f"#{reviewed.pk}<")
    with organization_context(restricted):
        assert AccessLog.objects.filter(action=AccessAction.LIST, actor=compliance_user).exists()


def test_only_compliance_sees_and_reviews(
    client_for, compliance_user, nurse_user, admin_user, org_b, event, restricted
) -> None:
    from tests.conftest import _member

    other_org_user = _member(org_b, "compliance", "compliance@lake.example")
    events = reverse("patients:break_glass_events")
    review = reverse("patients:break_glass_review", args=[event.pk])
    for user in (nurse_user, admin_user):
        assert client_for(user).get(events).status_code == 403
        assert client_for(user).post(review, {"outcome": "appropriate"}).status_code == 403
    assert client_for(other_org_user).get(review).status_code == 404
    assert client_for(other_org_user).post(review, {"outcome": "appropriate"}).status_code == 404
    client = client_for(compliance_user)
    assert client.get(review).status_code == 200
    response = client.post(review, {"outcome": "bogus"})
    assert response.status_code == 200 and b"error" in response.content
    response = client.post(review, {"outcome": "follow_up", "review_note": "Ask the charge nurse"})
    assert response.status_code == 302
    with organization_context(restricted):
        event.refresh_from_db()
    assert (event.outcome, event.reviewed_by, event.review_note) == (
        "follow_up",
        compliance_user,
        "Ask the charge nurse",
    )
    assert event.reviewed_at is not None


def test_grant_never_redirects_off_site(client_for, nurse_user, patient_a, restricted) -> None:
    url = reverse("patients:break_glass", args=[patient_a.pk])
    response = client_for(nurse_user).post(url, {**REASON, "next": "//evil.example/"})
    assert response.status_code == 302 and response["Location"] == _detail(patient_a)
    response = client_for(nurse_user).post(url, {**REASON, "next": "abc"})
    assert response.status_code == 302 and response["Location"] == _detail(patient_a)
    response = client_for(nurse_user).get(url, {"next": "\x00" * 900})
    assert response.status_code in (200, 302)


def test_the_patients_access_report_says_why_for_reads_under_a_grant(
    client_for, nurse_user, admin_user, patient_a, restricted
) -> None:
    """Issue #13 item 2's "why for break-the-glass": the reads made under the grant carry its reason,
    the reads made after it expired do not."""
    from patients.access_report.selectors import patient_access_report

    client = client_for(nurse_user)
    client.post(reverse("patients:break_glass", args=[patient_a.pk]), REASON)
    client.get(_detail(patient_a))  # the grant's redirect target: part of the grant's own row
    assert b"Northcott" in client.get(_detail(patient_a)).content  # a read of its own, under the grant
    with organization_context(restricted):
        event = BreakGlassEvent.objects.get()
    with time_machine.travel(event.expires_at + timedelta(minutes=1), tick=False):
        assert _is_gate(client_for(nurse_user).get(_detail(patient_a)))
    with organization_context(restricted):
        rows = [r for r in patient_access_report(patient=patient_a) if r.username == nurse_user.username]
    views = [r for r in rows if r.source == "read" and r.page == "patients:detail"]
    # Newest first: refused after the expiry, then the read under the grant.
    assert [(r.what, r.reason) for r in views] == [
        ("was refused patient record", ""),
        ("viewed patient record", "Break-glass: Emergency care"),
    ]
    (grant,) = [r for r in rows if r.page == "patients:break_glass"]
    assert grant.reason == "Break-glass: Emergency care"
