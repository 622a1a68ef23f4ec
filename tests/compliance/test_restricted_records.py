"""Consent enforced at access (#13 item 3): a note or document the patient asked to restrict opens
only through break-the-glass, care team or not; the restriction is set by staff and audited, the
opening is access-logged with the grant, and lists show nothing of a restricted note."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from auditlog.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from compliance.models import AccessAction, AccessLog
from healthcrm.models import Notification
from healthcrm.tenancy import organization_context
from patients.breakglass.services import record_restriction_set
from patients.care.services import care_team_add, note_add
from patients.documents.services import document_upload
from patients.models import BreakGlassEvent, PatientDocument, PatientNote
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\nPRIVATE-RESULT-3141\n%%EOF\n"
BODY = "Discussed a private matter: Qwertyuiop"
GATE = b"The patient asked to restrict this note or document"


@pytest.fixture
def chart(org_a: Any, nurse_user: Any, compliance_user: Any) -> dict[str, Any]:
    """A patient with the nurse on the care team (no break-the-glass needed for the record itself),
    a signed note and a document, both restricted at the patient's request."""
    with organization_context(org_a):
        patient = PatientFactory(given_name="Lena", family_name="Brightwater")
        care_team_add(patient=patient, user=nurse_user, team_role="nurse")
        note = note_add(patient=patient, body=BODY, sign=True, author=nurse_user)
        plain = note_add(patient=patient, body="Routine follow-up", sign=True, author=nurse_user)
        document = document_upload(patient=patient, title="Private result", kind="lab_report", data=PDF)
        record_restriction_set(record=note, restricted=True, actor=nurse_user)
        record_restriction_set(record=document, restricted=True, actor=nurse_user)
    return {"patient": patient, "note": note, "plain": plain, "document": document}


def _note(note: Any) -> str:
    return reverse("patients:note_detail", args=[note.pk])


def _download(document: Any) -> str:
    return reverse("patients:document_download", args=[document.pk])


def _grant(client: Any, patient: Any, next_url: str) -> Any:
    return client.post(
        reverse("patients:break_glass", args=[patient.pk]),
        {"reason": "patient_request", "note": "", "next": next_url, "restricted": "True"},
    )


def test_the_care_team_opens_an_unrestricted_note_without_friction(org_a, chart, nurse_user, client_for) -> None:
    response = client_for(nurse_user).get(_note(chart["plain"]))
    assert response.status_code == 200 and b"Routine follow-up" in response.content


@pytest.mark.parametrize("what", ["note", "document"])
def test_a_restricted_record_asks_the_care_team_for_break_the_glass(org_a, chart, nurse_user, client_for, what) -> None:
    client = client_for(nurse_user)
    url = _note(chart["note"]) if what == "note" else _download(chart["document"])
    response = client.get(url)
    assert response.status_code == 200 and GATE in response.content
    assert BODY.encode() not in response.content and b"PRIVATE-RESULT" not in response.content
    with organization_context(org_a):
        denied = AccessLog.objects.filter(action=AccessAction.DENIED).latest("id")
        label = PatientNote._meta.label_lower if what == "note" else PatientDocument._meta.label_lower
    assert f"{label}:{chart[what].pk}" in denied.records


@pytest.mark.parametrize("what", ["note", "document"])
def test_a_grant_opens_it_logs_the_grant_and_tells_compliance(
    org_a, chart, nurse_user, compliance_user, client_for, what
) -> None:
    client = client_for(nurse_user)
    url = _note(chart["note"]) if what == "note" else _download(chart["document"])
    assert _grant(client, chart["patient"], url)["Location"] == url
    response = client.get(url)
    assert response.status_code == 200
    assert (BODY.encode() if what == "note" else b"PRIVATE-RESULT-3141") in response.content
    with organization_context(org_a):
        grant = BreakGlassEvent.objects.get()
        opened = AccessLog.objects.filter(action=AccessAction.VIEW).latest("id")
        alert = Notification.objects.get(kind="break_glass")
    assert (grant.user_id, grant.patient_id, grant.reason) == (nurse_user.pk, chart["patient"].pk, "patient_request")
    assert f"patients.breakglassevent:{grant.pk}" in opened.records
    assert alert.recipient_id == compliance_user.pk


def test_the_grant_expires_and_the_record_closes_again(org_a, chart, nurse_user, client_for) -> None:
    client = client_for(nurse_user)
    _grant(client, chart["patient"], _note(chart["note"]))
    assert BODY.encode() in client.get(_note(chart["note"])).content
    with time_machine.travel(timezone.now() + timedelta(minutes=31), tick=False):
        client.force_login(nurse_user)  # the session may have idled out in the jump
        assert GATE in client.get(_note(chart["note"])).content


def test_an_amendment_does_not_show_a_restricted_original(org_a, chart, nurse_user, client_for) -> None:
    from patients.care.services import note_amend

    with organization_context(org_a):
        amendment = note_amend(note=chart["note"], body="Corrected", reason="Typo", actor=nurse_user)
    response = client_for(nurse_user).get(_note(amendment))
    assert GATE in response.content and BODY.encode() not in response.content


def test_the_timeline_and_document_list_show_nothing_of_a_restricted_record(
    org_a, chart, nurse_user, client_for
) -> None:
    client = client_for(nurse_user)
    timeline = client.get(reverse("patients:timeline", args=[chart["patient"].pk])).content.decode()
    assert "Qwertyuiop" not in timeline
    assert "Restricted at the patient&#x27;s request" in timeline
    assert "Routine follow-up" in timeline
    documents = client.get(reverse("patients:documents", args=[chart["patient"].pk])).content.decode()
    assert "Private result" not in documents and f"Restricted document #{chart['document'].pk}" in documents


def test_staff_restrict_on_request_and_it_is_audited(org_a, chart, nurse_user, client_for) -> None:
    client = client_for(nurse_user)
    plain = chart["plain"]
    response = client.post(reverse("patients:note_restrict", args=[plain.pk]), {"restricted": "1"})
    assert response.status_code == 302
    with organization_context(org_a):
        plain.refresh_from_db()
        entry = LogEntry.objects.get_for_object(plain).latest("id")
    assert plain.restricted_at is not None
    assert "restricted_at" in entry.changes_dict and entry.actor_id == nurse_user.pk
    assert GATE in client.get(_note(plain)).content


def test_lifting_a_restriction_takes_a_grant_first(org_a, chart, nurse_user, client_for) -> None:
    client = client_for(nurse_user)
    lift = reverse("patients:document_restrict", args=[chart["document"].pk])
    assert GATE in client.post(lift, {"restricted": "0"}).content
    with organization_context(org_a):
        assert PatientDocument.objects.get(pk=chart["document"].pk).restricted_at is not None
    _grant(client, chart["patient"], _download(chart["document"]))
    assert client.post(lift, {"restricted": "0"}).status_code == 302
    with organization_context(org_a):
        assert PatientDocument.objects.get(pk=chart["document"].pk).restricted_at is None


def test_who_may_restrict(org_a, chart, frontdesk_user, other_org_user, client_for) -> None:
    url = reverse("patients:note_restrict", args=[chart["plain"].pk])
    assert client_for(frontdesk_user).post(url, {"restricted": "1"}).status_code == 403
    assert client_for(other_org_user).post(url, {"restricted": "1"}).status_code == 404
    with organization_context(org_a):
        assert PatientNote.objects.get(pk=chart["plain"].pk).restricted_at is None
