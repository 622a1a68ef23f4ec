"""Patient pages: three personas each, access-logged, never across organizations."""

from __future__ import annotations

import pytest
from django.urls import reverse

from compliance.access import search_fingerprint
from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from patients.models import Patient
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient_a(org_a):
    with organization_context(org_a):
        return PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-1")


@pytest.fixture
def patient_b(org_b):
    with organization_context(org_b):
        return PatientFactory(given_name="Bert", family_name="Lakeman", mrn="L-1")


def _log(org, **filters):
    with organization_context(org):
        return list(AccessLog.objects.filter(**filters))


def test_detail_writer_sees_it_and_the_view_is_access_logged(client_for, nurse_user, patient_a, org_a) -> None:
    response = client_for(nurse_user).get(reverse("patients:detail", args=[patient_a.pk]), REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    assert b"Northcott" in response.content
    [entry] = _log(org_a, action=AccessAction.VIEW)
    assert (entry.actor, entry.object_type, entry.object_ids, entry.view_name, entry.ip_address) == (
        nurse_user,
        "patients.patient",
        [str(patient_a.pk)],
        "patients:detail",
        "10.1.2.3",
    )


def test_detail_read_only_role_gets_403_and_the_attempt_is_logged(client_for, analyst_user, patient_a, org_a) -> None:
    response = client_for(analyst_user).get(reverse("patients:detail", args=[patient_a.pk]))
    assert response.status_code == 403
    assert b"Northcott" not in response.content
    [entry] = _log(org_a)
    assert (entry.action, entry.actor, entry.object_ids) == (AccessAction.DENIED, analyst_user, [str(patient_a.pk)])


def test_detail_other_organization_gets_404(client_for, other_org_user, patient_a, org_a, org_b) -> None:
    response = client_for(other_org_user).get(reverse("patients:detail", args=[patient_a.pk]))
    assert response.status_code == 404
    assert b"Northcott" not in response.content
    # Logged as denied, with the id asked for, in the asker's organization (issue 9, item 15);
    # nothing is written into the other organization's log.
    assert _log(org_a) == []
    [entry] = _log(org_b)
    assert (entry.action, entry.actor, entry.records) == (
        AccessAction.DENIED,
        other_org_user,
        [f"patients.patient:{patient_a.pk}"],
    )


def test_list_shows_only_the_current_organization(client_for, nurse_user, other_org_user, patient_a, patient_b) -> None:
    page = client_for(nurse_user).get(reverse("patients:list")).content
    assert b"Northcott" in page and b"Lakeman" not in page
    page = client_for(other_org_user).get(reverse("patients:list")).content
    assert b"Lakeman" in page and b"Northcott" not in page


def test_list_read_only_role_gets_403(client_for, analyst_user, patient_a) -> None:
    assert client_for(analyst_user).get(reverse("patients:list")).status_code == 403


def test_search_is_logged_by_fingerprint_never_by_term(client_for, nurse_user, patient_a, patient_b, org_a) -> None:
    response = client_for(nurse_user).post(reverse("patients:list"), {"q": "Northcott"})
    assert b"Northcott" in response.content
    # Another organization's patient is not found by its exact MRN either.
    assert b"Lakeman" not in client_for(nurse_user).post(reverse("patients:list"), {"q": "L-1"}).content
    entries = _log(org_a, action=AccessAction.SEARCH)
    assert len(entries) == 2
    assert entries[-1].search_fields == ["q"]
    assert entries[-1].search_fingerprint == search_fingerprint({"q": "Northcott"})
    assert entries[-1].object_ids == [str(patient_a.pk)]
    assert "Northcott" not in repr([vars(e) for e in entries])


def test_search_terms_in_the_address_are_ignored(client_for, nurse_user, patient_a, patient_b, org_a) -> None:
    """Searches are POSTed: a term in a URL (history, proxy logs) is never used, so never needed."""
    from tests.factories import PatientFactory

    with organization_context(org_a):
        PatientFactory(family_name="Southwick")
    content = client_for(nurse_user).get(reverse("patients:list"), {"q": "Northcott"}).content.decode()
    assert "Northcott" in content and "Southwick" in content  # the unsearched list
    assert 'method="post"' in content and "hx-push-url" not in content
    with organization_context(org_a):
        assert not AccessLog.objects.filter(action=AccessAction.SEARCH).exists()


def test_htmx_search_returns_only_the_table_partial(client_for, nurse_user, patient_a) -> None:
    response = client_for(nurse_user).post(reverse("patients:list"), {"q": "N-1"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"<html" not in response.content and b"Northcott" in response.content


def test_list_query_count_does_not_grow_with_the_page(
    client_for, nurse_user, org_a, django_assert_max_num_queries
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(nurse_user)
    client.get(reverse("dashboard"))  # the session's first request stamps it; later ones don't write
    counts = []
    for batch in (2, 23):
        with organization_context(org_a):
            PatientFactory.create_batch(batch)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("patients:list")).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]  # 2 rows or a full page of 25: the same queries
    with django_assert_max_num_queries(19):
        client.get(reverse("patients:list"))


def test_create_patient_with_bad_input_re_renders_and_saves_nothing(client_for, nurse_user, org_a) -> None:
    data = {
        "mrn": "N-9",
        "given_name": "Cleo",
        "family_name": "Stone",
        "date_of_birth": "2999-01-01",
        "sex": "female",
        "phone_mobile": "12",
        "email": "not-an-email",
    }
    response = client_for(nurse_user).post(reverse("patients:create"), data)
    assert response.status_code == 400
    content = response.content.decode()
    assert "Enter a valid phone number." in content
    assert "cannot be in the future" in content
    assert "Enter a valid email address." in content
    assert 'value="Cleo"' in content  # nothing the user typed is lost
    with organization_context(org_a):
        assert Patient.objects.count() == 0


def test_create_patient_then_duplicate_mrn_is_a_clear_error(client_for, nurse_user, org_a) -> None:
    data = {
        "mrn": "N-9",
        "given_name": "Cleo",
        "family_name": "Stone",
        "date_of_birth": "1990-01-01",
        "sex": "female",
        "phone_mobile": "(312) 555-0111",
        "email": "cleo@example.org",
    }
    client = client_for(nurse_user)
    response = client.post(reverse("patients:create"), data)
    assert response.status_code == 302
    with organization_context(org_a):
        patient = Patient.objects.get()
        assert patient.phone_mobile == "+13125550111"
    response = client.post(reverse("patients:create"), {**data, "mrn": "n9"})
    assert response.status_code == 400
    assert "A patient with this MRN already exists in this organization." in response.content.decode()


NEW_PATIENT = {
    "mrn": "N-9",
    "given_name": "Cleo",
    "family_name": "Stone",
    "date_of_birth": "1990-01-01",
    "sex": "female",
    "phone_mobile": "(312) 555-0111",
    "email": "cleo@example.org",
}


@pytest.mark.parametrize(
    ("answers", "channel", "consented"),
    [
        ({"sms_consent": "on", "email_consent": "on"}, "sms", {"sms", "email"}),
        ({"sms_consent": "on"}, "sms", {"sms"}),
        ({"email_consent": "on"}, "email", {"email"}),
        ({"sms_consent": "on", "email_consent": "on", "phone_mobile": ""}, "email", {"sms", "email"}),
        ({"sms_consent": "on", "email": ""}, "sms", {"sms"}),
        ({"email_consent": "on", "email": ""}, "none", {"email"}),
        ({}, "none", set()),
    ],
)
def test_a_new_patient_is_reached_by_sms_then_email_when_they_agree(
    client_for, nurse_user, org_a, answers, channel, consented
) -> None:
    """New patients were created with "No outreach", so no reminder ever went: SMS when there is a
    mobile number and SMS consent, else email with an address and consent, else none (#11 item 15)."""
    from engagement.models import Consent

    response = client_for(nurse_user).post(reverse("patients:create"), {**NEW_PATIENT, **answers}, follow=True)
    assert response.status_code == 200
    labels = {"sms": "Text message", "email": "Email", "none": "No outreach"}
    assert f"Patient created. Preferred channel: {labels[channel]}." in response.content.decode()
    with organization_context(org_a):
        patient = Patient.objects.get()
        consents = {c.channel: (c.status, c.source) for c in Consent.objects.filter(patient=patient)}
    assert patient.preferred_channel == channel
    assert consents == dict.fromkeys(consented, ("opted_in", "intake"))


def test_the_new_patient_form_says_which_channel_it_will_use(client_for, nurse_user, org_a) -> None:
    client = client_for(nurse_user)
    page = client.get(reverse("patients:create")).content.decode()
    assert "Agrees to text messages" in page and "Agrees to email" in page
    assert "Reminders go by text message when there is a mobile number" in page
    assert 'data-channel-choice aria-live="polite">No outreach<' in page
    # Re-rendered with an error, it says what the answers give.
    response = client.post(reverse("patients:create"), {**NEW_PATIENT, "email_consent": "on", "mrn": ""})
    assert response.status_code == 400
    assert 'data-channel-choice aria-live="polite">Email<' in response.content.decode()


def test_a_failed_create_records_no_consent(client_for, nurse_user, org_a) -> None:
    from engagement.models import Consent

    with organization_context(org_a):
        PatientFactory(mrn="N-9")
    response = client_for(nurse_user).post(reverse("patients:create"), {**NEW_PATIENT, "sms_consent": "on"})
    assert response.status_code == 400
    with organization_context(org_a):
        assert Consent.objects.count() == 0


def test_create_patient_read_only_role_gets_403(client_for, analyst_user) -> None:
    assert client_for(analyst_user).get(reverse("patients:create")).status_code == 403


def test_access_log_page_is_for_compliance_and_admins_only(client_for, nurse_user, org_a, patient_a) -> None:
    from tests.factories import MembershipFactory, UserFactory

    officer = UserFactory(username="compliance@north.example")
    MembershipFactory(user=officer, organization=org_a, role="compliance")
    client = client_for(nurse_user)
    client.get(reverse("patients:detail", args=[patient_a.pk]))
    assert client.get(reverse("compliance:access_log")).status_code == 403
    response = client_for(officer).get(reverse("compliance:access_log"))
    assert response.status_code == 200
    assert b"nurse@north.example" in response.content and b"Northcott" not in response.content
