"""Issue #13 item 7: the compliance officer's screens. Audit search across reads and writes (user,
patient by a POSTed search, action, dates, IP) with a CSV export that is itself logged; anomaly
alerts listed unreviewed first and reviewed (outcome, encrypted note, reviewer); the weekly summary
(counts only); and the VIP/employee flag, set by administrators and compliance, audited."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from auditlog.models import LogEntry
from django.db import connection

from compliance.models import AccessAction, AccessLog, AnomalyAlert
from compliance.services import anomaly_weekly_summary_send
from healthcrm.models import Notification
from healthcrm.tenancy import organization_context
from patients.services import patient_update
from tests.conftest import _member
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _read(organization: Any, at: datetime, actor: str, records: list[str], ip: str = "10.0.0.7") -> AccessLog:
    with time_machine.travel(at, tick=False), organization_context(organization):
        return AccessLog.objects.create(
            actor_label=actor, action=AccessAction.VIEW, view_name="patients:detail", records=records, ip_address=ip
        )


@pytest.fixture
def history(org_a: Any, org_b: Any, admin_user: Any) -> dict[str, Any]:
    with organization_context(org_a):
        alma = PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-4471")
        bram = PatientFactory(given_name="Bram", family_name="Quillfeather", mrn="N-4472")
    with time_machine.travel(datetime(2026, 11, 24, 22, 0, tzinfo=UTC), tick=False), organization_context(org_a):
        from auditlog.context import set_actor

        with set_actor(admin_user):
            patient_update(patient=alma, given_name="Almira")  # a write, by the administrator
    with organization_context(org_b):
        other = PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-4471")
    _read(org_a, datetime(2026, 11, 24, 21, 0, tzinfo=UTC), "nurse@north.example", [f"patients.patient:{alma.pk}"])
    _read(
        org_a,
        datetime(2026, 11, 20, 16, 0, tzinfo=UTC),
        "provider@north.example",
        [f"patients.patient:{bram.pk}"],
        ip="192.0.2.44",
    )
    _read(org_b, datetime(2026, 11, 24, 21, 0, tzinfo=UTC), "nurse@lake.example", [f"patients.patient:{other.pk}"])
    return {"alma": alma, "bram": bram, "other": other}


# The history's month: the personas' own set-up (memberships, sign-ins) is written at the test's clock.
NOVEMBER = "since=2026-11-01&until=2026-11-30"


_ROW = r'<tr data-source="(access|write)"><td><time[^>]*>[^<]*</time></td><td>\w+</td><td>([^<]*)</td>'


def _rows(page: str) -> list[str]:
    """The users of the table's rows, in order."""
    return re.findall(_ROW, page)


def test_audit_search_shows_reads_and_writes_newest_first_in_clinic_time(
    client_for, compliance_user, history, django_assert_max_num_queries
) -> None:
    client = client_for(compliance_user)
    with django_assert_max_num_queries(16):
        page = client.get(f"/compliance/audit/?{NOVEMBER}").content.decode()
    assert _rows(page) == [
        ("write", "admin@north.example"),
        ("access", "nurse@north.example"),
        ("access", "provider@north.example"),
    ]
    assert "When (America/Chicago)" in page and "2026-11-24 16:00:00" in page  # the write, 22:00 UTC
    assert "given_name" in page  # the field a write changed, never its value
    assert "Almira" not in page and "Alma" not in page and "nurse@lake.example" not in page


def test_audit_search_filters_by_source_action_user_ip_and_dates(client_for, compliance_user, history) -> None:
    client = client_for(compliance_user)

    def users(query: str) -> list[str]:
        return [who for _, who in _rows(client.get(f"/compliance/audit/?{NOVEMBER}&{query}").content.decode())]

    assert users("source=write") == ["admin@north.example"]
    assert users("source=access") == ["nurse@north.example", "provider@north.example"]
    assert users("action=update") == ["admin@north.example"]
    assert users("action=view") == ["nurse@north.example", "provider@north.example"]
    assert users("actor=ADMIN") == ["admin@north.example"]
    assert users("ip=192.0.2.44") == ["provider@north.example"]
    assert users("since=2026-11-21") == ["admin@north.example", "nurse@north.example"]
    # Values that do not parse are no filter, never a 500.
    assert client.get("/compliance/audit/?ip=not-an-ip&action=%00&since=x&source=zzz").status_code == 200


def test_audit_search_by_patient_is_posted_and_covers_reads_and_writes(client_for, compliance_user, history) -> None:
    client = client_for(compliance_user)
    response = client.post(f"/compliance/audit/?{NOVEMBER}", {"patient_query": "N-4471"})
    assert "4471" not in response["Location"]
    assert response.status_code == 302
    location = response["Location"]
    assert location.endswith(f"patient={history['alma'].pk}") and "4471" not in location
    page = client.get(location).content.decode()
    assert [who for _, who in _rows(page)] == ["admin@north.example", "nurse@north.example"]  # not Bram's
    assert f"/patients/{history['alma'].pk}/access-flag/" in page  # compliance may flag the record from here
    other = client.get(f"/compliance/audit/?patient={history['other'].pk}").content.decode()
    assert _rows(other) == [] and "Northcott" not in other


def test_audit_csv_export_is_filtered_and_itself_logged(client_for, compliance_user, history, org_a) -> None:
    response = client_for(compliance_user).get(f"/compliance/audit/?{NOVEMBER}&source=write&format=csv")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "When (America/Chicago)"
    assert rows[1][:4] == ["2026-11-24 16:00:00", "write", "admin@north.example", "Updated a record"]
    assert rows[1][4] == f"patients.patient:{history['alma'].pk}" and "given_name" in rows[1][5]
    assert len(rows) == 2 and "Almira" not in response.content.decode()
    with organization_context(org_a):
        export = AccessLog.objects.get(action=AccessAction.EXPORT, view_name="compliance:audit_search")
    assert export.actor_label == compliance_user.username
    assert export.search_fields == ["since", "source", "until"]


def test_audit_search_is_for_compliance_and_admins(client_for, nurse_user, admin_user, other_org_user) -> None:
    assert client_for(nurse_user).get("/compliance/audit/").status_code == 403
    assert client_for(nurse_user).get("/compliance/audit/?format=csv").status_code == 403
    assert client_for(admin_user).get("/compliance/audit/").status_code == 200


# -- Anomaly alerts ---------------------------------------------------------------------------------


@pytest.fixture
def alerts(org_a: Any, org_b: Any, compliance_user: Any) -> dict[str, AnomalyAlert]:
    with organization_context(org_a):
        old = AnomalyAlert.objects.create(rule="after_hours", subject="nurse@north.example", day=date(2026, 11, 20))
        new = AnomalyAlert.objects.create(
            rule="flagged", subject="provider@north.example", day=date(2026, 11, 25), evidence={"patient_ids": [41]}
        )
        done = AnomalyAlert.objects.create(rule="volume", subject="desk@north.example", day=date(2026, 11, 26))
        from compliance.services import anomaly_alert_review

        anomaly_alert_review(alert=done, reviewer=compliance_user, outcome="explained", note="Flu clinic day.")
    with organization_context(org_b):
        theirs = AnomalyAlert.objects.create(rule="volume", subject="nurse@lake.example", day=date(2026, 11, 25))
    return {"old": old, "new": new, "done": done, "theirs": theirs}


def test_alerts_are_listed_unreviewed_first_and_filtered(
    client_for, compliance_user, alerts, django_assert_max_num_queries
) -> None:
    client = client_for(compliance_user)
    with django_assert_max_num_queries(16):
        page = client.get("/compliance/alerts/").content.decode()
    order = [page.index(f"#{alerts[k].pk}</td>") for k in ("new", "old", "done")]
    assert order == sorted(order)
    assert "nurse@lake.example" not in page and "Flu clinic" not in page  # the note is on the alert's page only
    assert f"#{alerts['done'].pk}</td>" not in client.get("/compliance/alerts/?reviewed=no").content.decode()
    only = client.get("/compliance/alerts/?rule=volume").content.decode()
    assert "desk@north.example" in only and "nurse@north.example" not in only
    assert client.get("/compliance/alerts/?rule=%00&reviewed=maybe&page=x").status_code == 200


def test_reviewing_an_alert_records_outcome_reviewer_and_an_encrypted_note(
    client_for, compliance_user, alerts, org_a
) -> None:
    client = client_for(compliance_user)
    url = f"/compliance/alerts/{alerts['new'].pk}/"
    page = client.get(url).content.decode()
    assert "Patient ids" in page and "41" in page
    assert client.post(url, {"outcome": "nope"}).status_code == 400
    response = client.post(url, {"outcome": "inappropriate", "review_note": "Opened a neighbour's record."})
    assert response.status_code == 302
    with organization_context(org_a):
        alert = AnomalyAlert.objects.get(pk=alerts["new"].pk)
        assert alert.outcome == "inappropriate" and alert.reviewed_by_id == compliance_user.pk
        assert alert.review_note == "Opened a neighbour's record." and alert.reviewed_at is not None
        with connection.cursor() as cursor:
            cursor.execute("SELECT review_note FROM compliance_anomalyalert WHERE id = %s", [alert.pk])
            assert "neighbour" not in cursor.fetchone()[0]
        viewed = AccessLog.objects.filter(view_name="compliance:anomaly_review").first()
        assert viewed is not None and f"compliance.anomalyalert:{alert.pk}" in viewed.records


def test_alert_pages_refuse_other_roles_and_other_organizations(
    client_for, nurse_user, admin_user, other_org_user, compliance_user, alerts
) -> None:
    url = f"/compliance/alerts/{alerts['new'].pk}/"
    for user in (nurse_user, admin_user):
        assert client_for(user).get("/compliance/alerts/").status_code == 403
        assert client_for(user).get(url).status_code == 403
        assert client_for(user).get("/compliance/alerts/summary/").status_code == 403
    assert client_for(other_org_user).get(url).status_code == 403  # a nurse there, no permission at all
    assert client_for(compliance_user).get(f"/compliance/alerts/{alerts['theirs'].pk}/").status_code == 404


def test_weekly_summary_counts_only(
    client_for, compliance_user, alerts, org_a, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    client = client_for(compliance_user)
    page = client.get("/compliance/alerts/summary/?week=2026-11-25").content.decode()
    # The week of Monday 23 November: the alerts of the 25th and 26th, not the 20th's.
    assert "2026-11-23 to 2026-11-29" in page
    assert "<strong>2</strong> alerts about 2 staff members, <strong>1</strong> awaiting review" in page
    assert "provider@north.example" not in page and "desk@north.example" not in page
    with django_capture_on_commit_callbacks(execute=True), organization_context(org_a):
        assert anomaly_weekly_summary_send(organization=org_a, week_start=date(2026, 11, 23)) == 1
        note = Notification.objects.get(recipient=compliance_user, kind="anomaly_summary")
    assert note.message == "Anomaly alerts, week of 2026-11-23: 2 raised, 1 awaiting review."
    [mail] = mailoutbox
    assert mail.to == [compliance_user.email] and "week of 2026-11-23" in mail.subject
    assert "A VIP or employee record: 1 (1 awaiting review)" in mail.body
    assert "Far more records than usual: 1 (0 awaiting review)" in mail.body
    assert "provider@north.example" not in mail.body and "desk@north.example" not in mail.body


# -- The VIP / employee flag ----------------------------------------------------------------------------


def test_compliance_and_admins_flag_a_record_and_the_change_is_audited(
    client_for, compliance_user, admin_user, nurse_user, other_org_user, org_a, org_b
) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
    url = f"/patients/{patient.pk}/access-flag/"
    assert client_for(nurse_user).get(url).status_code == 403
    assert client_for(other_org_user).get(url).status_code == 403  # a nurse there: no flag permission
    with organization_context(org_b):
        lake_admin = _member(org_b, "admin", "admin@lake.example")
    assert client_for(lake_admin).get(url).status_code == 404  # may flag there, not this record
    assert client_for(admin_user).get(url).status_code == 200
    client = client_for(compliance_user)
    assert client.post(url, {"access_flag": "royalty"}).status_code == 400
    assert client.post(url, {"access_flag": "employee"}).status_code == 302
    with organization_context(org_a):
        patient.refresh_from_db()
        assert patient.access_flag == "employee"
        entry = LogEntry.objects.filter(object_pk=str(patient.pk), action=LogEntry.Action.UPDATE).latest("pk")
        assert entry.changes == {"access_flag": ["", "employee"]} and entry.actor_id == compliance_user.pk
