"""Issue 13, item 2: "who viewed my record", staff side. A patient's access report lists the access
log's reads and the change log's writes of that patient only, newest first, in the clinic's zone,
filterable by the clinic's dates, printable, exportable as CSV (the export itself logged); for
compliance officers and administrators only; another organization's patient is 404."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from auditlog.context import set_actor
from django.urls import reverse

from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from patients.care.services import care_plan_start
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

SETUP = datetime(2026, 11, 1, 15, 0, tzinfo=UTC)


def _at(day: int, hour: int = 21) -> Any:
    # 21:00 UTC is 15:00 in Chicago (organization A's zone).
    return time_machine.travel(datetime(2026, 11, day, hour, 0, tzinfo=UTC), tick=False)


@pytest.fixture
def history(org_a, org_b, client_for, nurse_user, provider_user, admin_user, other_org_user) -> dict[str, Any]:
    """Alma (patient A) and Bram (patient B) in organization A, Cleo in organization B; several
    users view and change records of each, on known days."""
    with time_machine.travel(SETUP, tick=False), organization_context(org_a):
        alma = PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-4471")  # write 1 (A)
        bram = PatientFactory(given_name="Bram", family_name="Quillfeather", mrn="N-4472")
        appointment = AppointmentFactory(patient=alma, practitioner=PractitionerFactory())  # write 2 (A)
    with time_machine.travel(SETUP, tick=False), organization_context(org_b):
        cleo = PatientFactory(given_name="Cleo", family_name="Lakeside", mrn="N-4471")
    nurse_user.first_name, nurse_user.last_name = "Nora", "Nurse"
    nurse_user.save()
    with _at(10):  # read 1 (A): the nurse opens Alma's record
        assert client_for(nurse_user).get(reverse("patients:detail", args=[alma.pk])).status_code == 200
    with _at(11):  # read 2 (A): the provider opens Alma's appointment
        assert (
            client_for(provider_user).get(reverse("patients:appointment_detail", args=[appointment.pk])).status_code
            == 200
        )
    with _at(12):  # B only
        assert client_for(admin_user).get(reverse("patients:detail", args=[bram.pk])).status_code == 200
    with _at(13), organization_context(org_a), set_actor(provider_user):  # write 3 (A): a care plan
        care_plan_start(patient=alma, title="Hypertension")
    with _at(14), organization_context(org_a), set_actor(nurse_user):  # B only
        care_plan_start(patient=bram, title="Diabetes")
    with _at(15):  # organization B only
        assert client_for(other_org_user).get(reverse("patients:detail", args=[cleo.pk])).status_code == 200
    return {"alma": alma, "bram": bram, "cleo": cleo, "appointment": appointment}


def _rows(html: str) -> list[str]:
    body = html.split('data-testid="access-report-table"', 1)[1].split("</tbody>", 1)[0]
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in re.findall(r"<tr data-source.*?</tr>", body, re.S)
    ]


def _url(patient: Any, **query: str) -> str:
    url = reverse("patients:access_report", args=[patient.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_the_report_lists_exactly_the_patients_reads_and_writes_newest_first(
    client_for, compliance_user, history
) -> None:
    with _at(20):
        rows = _rows(client_for(compliance_user).get(_url(history["alma"])).content.decode())
    assert rows == [
        "2026-11-13 15:00:00 provider@north.example Provider added care plan",
        "2026-11-11 15:00:00 provider@north.example Provider viewed appointment patients:appointment_detail",
        "2026-11-10 15:00:00 Nora Nurse (nurse@north.example) Nurse viewed patient record patients:detail",
        "2026-11-01 09:00:00 system added appointment",
        "2026-11-01 09:00:00 system added patient",
    ]


def test_no_rows_of_other_patients_or_organizations(client_for, compliance_user, history) -> None:
    with _at(20):
        page = client_for(compliance_user).get(_url(history["bram"])).content.decode()
    rows = _rows(page)
    assert len(rows) == 3 and 'data-testid="access-report-count">3 accesses' in page
    assert "admin@north.example Administrator viewed patient record" in rows[1]
    assert "(nurse@north.example) Nurse added care plan" in rows[0]
    assert "appointment" not in " ".join(rows) and "lake.example" not in page and "Alma" not in page


def test_times_are_the_clinics_and_the_header_says_so(client_for, admin_user, history) -> None:
    page = client_for(admin_user).get(_url(history["alma"])).content.decode()
    assert "When (America/Chicago)" in page and "2026-11-10 15:00:00" in page and "2026-11-10 21:00:00" not in page


def test_filter_by_the_clinics_dates(client_for, compliance_user, history) -> None:
    with _at(20):
        client = client_for(compliance_user)
        rows = _rows(client.get(_url(history["alma"], since="2026-11-10", until="2026-11-11")).content.decode())
        assert [row[:10] for row in rows] == ["2026-11-11", "2026-11-10"]
        assert len(_rows(client.get(_url(history["alma"], until="2026-11-09")).content.decode())) == 2  # the setup
        # Dates that do not parse are no filter, never a 500.
        response = client.get(_url(history["alma"], since="yesterday", until="%00"))
    assert response.status_code == 200
    assert _rows(response.content.decode())[-1] == "2026-11-01 09:00:00 system added patient"


def test_csv_equals_the_page_rows_and_is_itself_logged(org_a, client_for, compliance_user, history) -> None:
    alma = history["alma"]
    with _at(20):
        client = client_for(compliance_user)
        page_rows = _rows(client.get(_url(alma, since="2026-11-02", until="2026-11-19")).content.decode())
        response = client.get(_url(alma, since="2026-11-02", until="2026-11-19", format="csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    header, *lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert header == ["When (America/Chicago)", "Name", "Username", "Role (at the time)", "What", "Page", "Reason"]
    as_page = []
    for when, name, username, role, what, view, reason in lines:
        who = f"{name} ({username})" if name else username
        as_page.append(" ".join(cell for cell in (when, who, role, what, view, reason) if cell))
    assert as_page == page_rows and len(lines) == 3
    with organization_context(org_a):
        export = AccessLog.objects.filter(view_name="patients:access_report").order_by("-created_at", "-id").first()
    assert export is not None and export.action == AccessAction.EXPORT
    assert export.records == [f"patients.patient:{alma.pk}"] and export.actor_label == "compliance@north.example"


def test_viewing_the_report_is_logged_and_then_listed_in_it(org_a, client_for, admin_user, history) -> None:
    with _at(20):
        client = client_for(admin_user)
        client.get(_url(history["alma"]))
        rows = _rows(client.get(_url(history["alma"])).content.decode())
    assert (
        rows[0] == "2026-11-20 15:00:00 admin@north.example Administrator viewed patient record patients:access_report"
    )


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("compliance_user", 200),
        ("admin_user", 200),
        ("nurse_user", 403),
        ("analyst_user", 403),
        ("other_org_user", 404),
    ],
)
def test_who_may_open_it(request, client_for, persona, status, history) -> None:
    response = client_for(request.getfixturevalue(persona)).get(_url(history["alma"]))
    assert response.status_code == status
    csv_response = client_for(request.getfixturevalue(persona)).get(_url(history["alma"], format="csv"))
    assert csv_response.status_code == status


def test_another_organizations_patient_is_404_for_their_compliance_officer(
    client_for, compliance_user, history
) -> None:
    assert client_for(compliance_user).get(_url(history["cleo"])).status_code == 404


def test_reached_from_the_patient_page_and_the_access_log(
    client_for, admin_user, nurse_user, compliance_user, history
) -> None:
    alma = history["alma"]
    link = reverse("patients:access_report", args=[alma.pk])
    assert link in client_for(admin_user).get(reverse("patients:detail", args=[alma.pk])).content.decode()
    assert link not in client_for(nurse_user).get(reverse("patients:detail", args=[alma.pk])).content.decode()
    page = client_for(compliance_user).get(f"{reverse('compliance:access_log')}?patient={alma.pk}").content.decode()
    assert link in page


def test_the_print_view_hides_the_navigation_and_controls(client_for, compliance_user, history) -> None:
    page = client_for(compliance_user).get(_url(history["alma"])).content.decode()
    assert 'data-print data-testid="access-report-print"' in page
    # The navigation and the controls carry the classes the print stylesheet hides.
    assert re.search(r'<header class="topbar">.*<nav aria-label="Main">', page, re.S)
    assert 'class="inline-actions no-print"' in page and 'class="filters no-print"' in page
    from pathlib import Path

    css = Path(__file__).resolve().parents[2].joinpath("static/css/app.css").read_text()
    [rule] = re.findall(r"@media print \{.*?\}\s*\}", css, re.S)
    for hidden in (".topbar", ".no-print", ".pagination"):
        assert hidden in rule


def test_the_report_runs_in_a_fixed_number_of_queries(
    client_for, compliance_user, history, django_assert_max_num_queries
) -> None:
    client = client_for(compliance_user)
    client.get(_url(history["alma"]))  # content types cached
    # 20: the page, the session and sign-in, the access log, the change log, roles, and one for the
    # break-glass grants that give a read its reason.
    with django_assert_max_num_queries(20):
        response = client.get(_url(history["alma"]))
    assert response.status_code == 200


def test_the_role_is_the_one_held_at_the_time(org_a, client_for, compliance_user, nurse_user, history) -> None:
    from healthcrm.models import Membership

    with _at(16), organization_context(org_a):
        membership = Membership.objects.get(user=nurse_user, organization=org_a)
        membership.role = "coordinator"
        membership.save()  # audited: a security event of organization A
    with _at(17):
        assert client_for(nurse_user).get(reverse("patients:detail", args=[history["alma"].pk])).status_code == 200
    with _at(20):
        rows = _rows(client_for(compliance_user).get(_url(history["alma"])).content.decode())
    assert rows[0].startswith("2026-11-17 15:00:00 Nora Nurse (nurse@north.example) Care coordinator viewed")
    assert rows[3].startswith("2026-11-10 15:00:00 Nora Nurse (nurse@north.example) Nurse viewed")
