"""The care-gap pages: who may open them, what they show and log, and their two actions.

Personas: the coordinator works the worklist; the analyst (aggregates only) gets 403 on it and
sees the closure rate; a nurse of organization B gets 404 for A's gaps. Counts by hand in each test.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse

from analytics.models import CareGap
from compliance.models import AccessAction, AccessLog
from engagement.models import CallLog, OutboundMessage, Rule
from healthcrm.tenancy import organization_context
from patients.care.services import care_team_add
from tests.engagement.conftest import configure
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

REFRESHED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _gap(patient: Any, key: str = "hba1c", opened_on: date = date(2026, 5, 1), **extra: Any) -> CareGap:
    return CareGap.objects.create(
        patient=patient, recall_key=key, period="2026-Q2", opened_on=opened_on, refreshed_at=REFRESHED, **extra
    )


@pytest.fixture
def gaps(org_a: Any) -> dict[str, Any]:
    """Three open gaps (Ada: hba1c and flu; Ben: annual) and one closed (Ada's old mammography)."""
    configure(org_a)
    with organization_context(org_a):
        ada = PatientFactory(given_name="Ada", family_name="Lovelace", preferred_channel="sms")
        ben = PatientFactory(given_name="Ben", family_name="Okafor", preferred_channel="sms")
        return {
            "ada": ada,
            "ben": ben,
            "hba1c": _gap(ada, "hba1c", date(2026, 3, 2)),
            "flu": _gap(ada, "flu_shot", date(2026, 5, 1)),
            "annual": _gap(ben, "annual_wellness", date(2026, 1, 5)),
            "closed": _gap(ada, "mammography", date(2025, 1, 5), closed_on=date(2025, 2, 1), closed_by="observation"),
        }


def test_worklist_lists_open_gaps_oldest_first_with_links_to_the_patients(client_for, coordinator_user, gaps) -> None:
    page = client_for(coordinator_user).get(reverse("analytics:gaps"))
    assert page.status_code == 200
    # 3 open gaps (the closed one is not listed), oldest first.
    assert [row.gap for row, _ in page.context["rows"]] == [gaps["annual"], gaps["hba1c"], gaps["flu"]]
    html = page.content.decode()
    assert "Ada Lovelace" in html and "Ben Okafor" in html
    assert reverse("patients:detail", args=[gaps["ada"].pk]) in html
    assert "HbA1c every 3 months (type 2 diabetes)" in html and "2 Mar 2026" in html


def test_worklist_is_access_logged_as_a_list_naming_each_gap_and_patient(client_for, coordinator_user, gaps, org_a):
    client_for(coordinator_user).get(reverse("analytics:gaps"), {"kind": "hba1c"})
    with organization_context(org_a):
        [entry] = AccessLog.objects.all()
    assert (entry.action, entry.view_name) == (AccessAction.LIST, "analytics:gaps")
    # One gap shown (Ada's hba1c): the gap, then its patient.
    assert entry.records == [f"analytics.caregap:{gaps['hba1c'].pk}", f"patients.patient:{gaps['ada'].pk}"]


def test_analysts_and_front_desk_get_403_on_the_worklist_and_its_export(client_for, analyst_user, frontdesk_user, gaps):
    for user in (analyst_user, frontdesk_user):
        client = client_for(user)
        assert client.get(reverse("analytics:gaps")).status_code == 403
        assert client.get(reverse("analytics:gaps_export")).status_code == 403
        assert client.post(reverse("analytics:gap_recall", args=[gaps["hba1c"].pk])).status_code == 403
        assert (
            client.post(reverse("analytics:gap_call", args=[gaps["hba1c"].pk]), {"outcome": "reached"}).status_code
            == 403
        )


def test_another_organizations_gap_is_404_and_its_list_is_empty(client_for, other_org_user, gaps, org_a, org_b):
    client = client_for(other_org_user)
    assert (
        client.post(reverse("analytics:gap_call", args=[gaps["hba1c"].pk]), {"outcome": "reached"}).status_code == 404
    )
    assert client.post(reverse("analytics:gap_recall", args=[gaps["hba1c"].pk])).status_code == 404
    page = client.get(reverse("analytics:gaps"))
    assert page.status_code == 200 and page.context["rows"] == []
    with organization_context(org_a):
        assert not CallLog.objects.exists() and not OutboundMessage.objects.exists()
        assert not AccessLog.objects.exists()
    # The two refusals are logged as denied in B, with the id asked for.
    with organization_context(org_b):
        denied = list(AccessLog.objects.filter(action=AccessAction.DENIED).order_by("id"))
        assert [e.view_name for e in denied] == ["analytics:gap_call", "analytics:gap_recall"]
        assert all(str(gaps["hba1c"].pk) in e.records[0] for e in denied)


def test_filters_by_kind_care_team_and_attempts(client_for, coordinator_user, nurse_user, gaps, org_a) -> None:
    with organization_context(org_a):
        care_team_add(patient=gaps["ben"], user=nurse_user, team_role="nurse")
    client = client_for(coordinator_user)

    def shown(**query: Any) -> list[CareGap]:
        page = client.get(reverse("analytics:gaps"), query)
        assert page.status_code == 200
        return [row.gap for row, _ in page.context["rows"]]

    assert shown(kind="flu_shot") == [gaps["flu"]]
    assert shown(care_team=nurse_user.pk) == [gaps["annual"]]  # the nurse is on Ben's team only
    client.post(reverse("analytics:gap_call", args=[gaps["flu"].pk]), {"outcome": "no_answer"})
    assert shown(attempts="some") == [gaps["flu"]]
    assert shown(attempts="none") == [gaps["annual"], gaps["hba1c"]]
    # Bad values: the form says so, the list is unfiltered, never a 500.
    page = client.get(reverse("analytics:gaps"), {"kind": "nope", "care_team": "x", "attempts": "\x00"})
    assert page.status_code == 200 and page.context["gap_filters"].errors
    assert len(page.context["rows"]) == 3


def test_log_call_stores_the_outcome_and_note_and_shows_it_on_the_row(client_for, coordinator_user, gaps, org_a):
    client = client_for(coordinator_user)
    back = reverse("analytics:gaps") + "?kind=hba1c"
    response = client.post(
        reverse("analytics:gap_call", args=[gaps["hba1c"].pk]),
        {"outcome": "voicemail", "note": "Asked her to call back", "next": back},
    )
    assert response.status_code == 302 and response.url == back
    with organization_context(org_a):
        [call] = CallLog.objects.all()
    assert (call.patient_id, call.recall_key, call.outcome, call.note, call.called_by_id) == (
        gaps["ada"].pk,
        "hba1c",
        "voicemail",
        "Asked her to call back",
        coordinator_user.pk,
    )
    page = client.get(back)
    assert "Call: Left voicemail" in page.content.decode() and "Call logged." in page.content.decode()
    # No outcome: nothing stored, an error shown; an outside `next` is not followed.
    response = client.post(
        reverse("analytics:gap_call", args=[gaps["hba1c"].pk]), {"outcome": "", "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response.url == reverse("analytics:gaps")
    with organization_context(org_a):
        assert CallLog.objects.count() == 1
    assert client.get(reverse("analytics:gap_call", args=[gaps["hba1c"].pk])).status_code == 405


def test_send_recall_queues_once_then_says_it_was_already_sent(client_for, coordinator_user, gaps, org_a) -> None:
    with organization_context(org_a):
        Rule.objects.create(
            name="HbA1c", kind="preventive_recall", template_key="recall_hba1c", params={"recall": "hba1c"}
        )
    client = client_for(coordinator_user)
    url = reverse("analytics:gap_recall", args=[gaps["hba1c"].pk])
    first = client.post(url, follow=True).content.decode()
    second = client.post(url, follow=True).content.decode()
    assert "Recall queued" in first
    assert "already sent this period" in second
    with organization_context(org_a):
        [message] = OutboundMessage.objects.all()
    assert (message.patient_id, message.subject_type, message.sent_by_id) == (
        gaps["ada"].pk,
        "recall",
        coordinator_user.pk,
    )
    assert message.slot.startswith("hba1c:")
    # Ada's flu gap has no recall rule here: nothing is sent, and the page says why.
    page = client.post(reverse("analytics:gap_recall", args=[gaps["flu"].pk]), follow=True).content.decode()
    assert "No active recall rule" in page
    with organization_context(org_a):
        assert OutboundMessage.objects.count() == 1
    # A closed gap sends nothing.
    page = client.post(reverse("analytics:gap_recall", args=[gaps["closed"].pk]), follow=True).content.decode()
    assert "This gap is closed" in page
    with organization_context(org_a):
        assert OutboundMessage.objects.count() == 1
    # The row shows the message as an attempt.
    rows = {row.gap.pk: row for row, _ in client.get(reverse("analytics:gaps")).context["rows"]}
    assert len(rows[gaps["hba1c"].pk].messages) == 1 and rows[gaps["flu"].pk].attempts == 0


def test_worklist_pages_and_pins_its_queries(client_for, coordinator_user, org_a, django_assert_max_num_queries):
    with organization_context(org_a):
        for day in range(30):
            _gap(PatientFactory(), "annual_wellness", date(2026, 1, 1) + timedelta(days=day))
    client = client_for(coordinator_user)
    # 22 queries measured (session, membership, permissions, the access log, two for the page of
    # gaps, one each for patients, messages and calls...): constant, whatever the page's size.
    with django_assert_max_num_queries(22):
        first = client.get(reverse("analytics:gaps"))
    # 30 gaps: 25 on page 1, 5 on page 2, with a link between them.
    assert len(first.context["rows"]) == 25 and 'rel="next"' in first.content.decode()
    second = client.get(reverse("analytics:gaps"), {"page": 2})
    assert len(second.context["rows"]) == 5
    with organization_context(org_a):
        entry = AccessLog.objects.filter(view_name="analytics:gaps").order_by("id").first()
    assert entry is not None and len(entry.records) == 50  # 25 gaps and their 25 patients


def test_worklist_csv_is_an_access_logged_export(client_for, coordinator_user, gaps, org_a) -> None:
    response = client_for(coordinator_user).get(reverse("analytics:gaps_export"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert lines[0][:4] == ["Patient", "MRN", "Gap", "Open since"]
    assert [line[0] for line in lines[1:]] == ["Ben Okafor", "Ada Lovelace", "Ada Lovelace"]
    with organization_context(org_a):
        [entry] = AccessLog.objects.all()
    assert entry.action == AccessAction.EXPORT and len(entry.records) == 5  # 3 gaps, 2 patients


def test_gap_closure_page_is_phi_free_and_open_to_analysts(client_for, analyst_user, org_a) -> None:
    with organization_context(org_a):
        # June 2026: 12 gaps closed in 5 days, 13 open = 25 opened; 12/25 = 48 %.
        for i in range(25):
            closed = i < 12
            _gap(
                PatientFactory(),
                "hba1c",
                date(2026, 6, 1),
                closed_on=date(2026, 6, 6) if closed else None,
                closed_by="observation" if closed else "",
            )
    client = client_for(analyst_user)
    page = client.get(reverse("analytics:gap_closure"), {"start": "2026-06-01", "end": "2026-06-30", "within": "30"})
    assert page.status_code == 200
    table = dict(page.context["tables"])["closure"]
    [june, total] = table.display_rows()
    assert (june["cells"], june["total"]) == ([12, 13], 25)
    assert june["rates"][0][0] == pytest.approx(0.48)
    assert "Ada" not in page.content.decode()
    export = client.get(
        reverse("analytics:gap_closure"), {"start": "2026-06-01", "end": "2026-06-30", "export": "closure"}
    )
    assert export.status_code == 200 and "48.0" in export.content.decode()
    # Tabs: the analyst sees Gap closure, not Care gaps.
    assert [label for _, label in page.context["tabs"]][-1:] == ["Gap closure"]
    with organization_context(org_a):
        assert not AccessLog.objects.exists()
