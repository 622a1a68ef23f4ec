"""Issue #11 item 10: the access log page a compliance officer works with. Times in the clinic's
zone and the header says which; filters by patient (MRN or name through the blind index, POSTed),
by the start of a user's name and by dates (the clinic's days); a CSV export that is itself
logged; and one staff action writes one row (a reply is one change, not three identical views)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine

from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import configure
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _row(organization: Any, at: datetime, actor: str, records: list[str], action: str = "view") -> AccessLog:
    with time_machine.travel(at, tick=False), organization_context(organization):
        return AccessLog.objects.create(actor_label=actor, action=action, view_name="patients:detail", records=records)


@pytest.fixture
def log(org_a: Any, org_b: Any) -> dict[str, Any]:
    with organization_context(org_a):
        alma = PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-4471")
        bram = PatientFactory(given_name="Bram", family_name="Quillfeather", mrn="N-4472")
    with organization_context(org_b):
        other = PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-4471")
    rows = {
        # 2026-11-24 21:00 UTC is 15:00 in Chicago (organization A's zone).
        "alma_nurse": _row(
            org_a, datetime(2026, 11, 24, 21, 0, tzinfo=UTC), "nurse@north.example", [f"patients.patient:{alma.pk}"]
        ),
        # 05:30 UTC on the 25th is still the 24th, 23:30, in Chicago.
        "alma_late": _row(
            org_a,
            datetime(2026, 11, 25, 5, 30, tzinfo=UTC),
            "provider@north.example",
            ["patients.appointment:9", f"patients.patient:{alma.pk}"],
        ),
        "bram_admin": _row(
            org_a, datetime(2026, 11, 20, 16, 0, tzinfo=UTC), "admin@north.example", [f"patients.patient:{bram.pk}"]
        ),
        "other_org": _row(
            org_b, datetime(2026, 11, 24, 21, 0, tzinfo=UTC), "nurse@lake.example", [f"patients.patient:{other.pk}"]
        ),
    }
    return {"alma": alma, "bram": bram, "other": other, **rows}


def _users(page: str) -> list[str]:
    return [
        u
        for u in ("nurse@north.example", "provider@north.example", "admin@north.example", "nurse@lake.example")
        if f"<td>{u}</td>" in page
    ]


def test_times_are_the_clinics_and_the_header_says_so(client_for, compliance_user, log) -> None:
    page = client_for(compliance_user).get("/compliance/access-log/").content.decode()
    assert "When (America/Chicago)" in page and "When (UTC)" not in page
    assert "2026-11-24 15:00:00" in page and "2026-11-24 21:00:00" not in page


def test_filter_by_user_prefix_and_by_the_clinics_dates(client_for, compliance_user, log) -> None:
    client = client_for(compliance_user)
    assert _users(client.get("/compliance/access-log/?actor=nurse").content.decode()) == ["nurse@north.example"]
    assert _users(client.get("/compliance/access-log/?actor=PROV").content.decode()) == ["provider@north.example"]
    day = client.get("/compliance/access-log/?since=2026-11-24&until=2026-11-24").content.decode()
    assert _users(day) == ["nurse@north.example", "provider@north.example"]  # 23:30 local counts as the 24th
    assert _users(client.get("/compliance/access-log/?until=2026-11-23").content.decode()) == ["admin@north.example"]
    # Dates that do not parse are no filter, never a 500.
    assert client.get("/compliance/access-log/?since=yesterday&until=%00").status_code == 200


def test_filter_by_patient_mrn_or_name_posted_never_in_the_url(client_for, compliance_user, log, org_a) -> None:
    client = client_for(compliance_user)
    for query in ("N-4471", "Northcott", "alma northcott"[:4]):
        response = client.post("/compliance/access-log/?actor=", {"patient_query": query})
        assert response.status_code == 302, query
        location = response["Location"]
        assert location.endswith(f"patient={log['alma'].pk}") and "4471" not in location and "orth" not in location
    page = client.get(f"/compliance/access-log/?patient={log['alma'].pk}").content.decode()
    assert _users(page) == ["nurse@north.example", "provider@north.example"]  # not Bram's row, not org B's
    assert "N-4471 · Alma Northcott" in page
    with organization_context(org_a):
        search = AccessLog.objects.filter(view_name="compliance:access_log", action=AccessAction.SEARCH).first()
        assert search is not None and search.search_fields == ["patient"] and search.search_fingerprint
        assert f"patients.patient:{log['alma'].pk}" in search.records
        assert not AccessLog.objects.filter(search_fingerprint__icontains="4471").exists()
    missing = client.post("/compliance/access-log/", {"patient_query": "Zzyzx"})
    assert missing.status_code == 400 and "No patient matches" in missing.content.decode()
    # Another organization's patient id filters to nothing and names no one.
    other = client.get(f"/compliance/access-log/?patient={log['other'].pk}").content.decode()
    assert _users(other) == [] and "Northcott" not in other


def test_csv_export_is_filtered_in_clinic_time_and_itself_logged(client_for, compliance_user, log, org_a) -> None:
    response = client_for(compliance_user).get("/compliance/access-log/?actor=nurse&format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "When (America/Chicago)"
    assert [r[:3] for r in rows[1:]] == [["2026-11-24 15:00:00", "nurse@north.example", "Viewed a record"]]
    with organization_context(org_a):
        export = AccessLog.objects.get(action=AccessAction.EXPORT)
    assert export.actor_label == compliance_user.username and export.search_fields == ["actor"]


def test_access_log_is_for_compliance_and_admins_only(client_for, nurse_user, admin_user, compliance_user, log) -> None:
    assert client_for(nurse_user).get("/compliance/access-log/").status_code == 403
    assert client_for(nurse_user).get("/compliance/access-log/?format=csv").status_code == 403
    assert client_for(admin_user).get("/compliance/access-log/").status_code == 200


def test_one_staff_reply_writes_one_row_per_action(client_for, nurse_user, org_a) -> None:
    configure(org_a)
    with organization_context(org_a):
        patient = PatientFactory(phone_mobile="+13125550199")
    client = client_for(nurse_user)
    url = f"/engagement/conversations/{patient.pk}/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"body": "See you tomorrow."}, follow=True)
    assert response.status_code == 200 and b"Reply queued." in response.content
    with organization_context(org_a):
        rows = list(AccessLog.objects.filter(view_name="engagement:conversation").order_by("created_at", "pk"))
    assert [r.action for r in rows] == [AccessAction.VIEW, AccessAction.CHANGE]
    assert all(r.records == [f"patients.patient:{patient.pk}"] for r in rows)
    # Opening the conversation again later is a new view.
    client.get(url)
    with organization_context(org_a):
        assert AccessLog.objects.filter(view_name="engagement:conversation").count() == 3
