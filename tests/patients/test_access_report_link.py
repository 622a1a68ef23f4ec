"""Issue 13, item 2, the patient's side of "who viewed my record": staff send a signed, expiring
link to the contact on file; the link asks for a one-time code sent there (6 digits, hashed at
rest, 10 minutes, 5 tries per code, 10 in all, 3 codes an hour); after the code the patient sees
the same rows as the staff report (names and roles, no page names, nobody else's data), and the
view is access-logged. A tampered or expired link, or a wrong code, shows a polite page and
writes nothing but the attempt counters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.core import mail
from django.test import Client
from django.urls import reverse

from compliance.models import AccessAction, AccessLog
from engagement.access_reports import services, tokens
from engagement.models import AccessReportRequest, OutboundMessage
from healthcrm.tenancy import organization_context
from patients.access_report.selectors import patient_access_report
from patients.care.services import care_plan_start
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

SETUP = datetime(2026, 11, 1, 15, 0, tzinfo=UTC)
ASKED = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)  # 15:00 in Chicago: inside the sending window


def _at(moment: datetime) -> Any:
    return time_machine.travel(moment, tick=False)


@pytest.fixture
def history(org_a, org_b, client_for, nurse_user, provider_user, admin_user, other_org_user) -> dict[str, Any]:
    """Alma's record is viewed and changed by known people on known days; Bram's and another
    organization's patient's too (never in Alma's report)."""
    with _at(SETUP), organization_context(org_a):
        alma = PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-4471", email="alma@example.org")
        bram = PatientFactory(given_name="Bram", family_name="Quillfeather", mrn="N-4472")
        appointment = AppointmentFactory(patient=alma, practitioner=PractitionerFactory())
    with _at(SETUP), organization_context(org_b):
        cleo = PatientFactory(given_name="Cleo", family_name="Lakeside", mrn="N-4471")
    nurse_user.first_name, nurse_user.last_name = "Nora", "Nurse"
    nurse_user.save()
    with _at(datetime(2026, 11, 10, 21, 0, tzinfo=UTC)):
        assert client_for(nurse_user).get(reverse("patients:detail", args=[alma.pk])).status_code == 200
    with _at(datetime(2026, 11, 11, 21, 0, tzinfo=UTC)):
        url = reverse("patients:appointment_detail", args=[appointment.pk])
        assert client_for(provider_user).get(url).status_code == 200
    with _at(datetime(2026, 11, 12, 21, 0, tzinfo=UTC)):
        assert client_for(admin_user).get(reverse("patients:detail", args=[bram.pk])).status_code == 200
    with _at(datetime(2026, 11, 13, 21, 0, tzinfo=UTC)), organization_context(org_a), set_actor(provider_user):
        care_plan_start(patient=alma, title="Hypertension")
    with _at(datetime(2026, 11, 15, 21, 0, tzinfo=UTC)):
        assert client_for(other_org_user).get(reverse("patients:detail", args=[cleo.pk])).status_code == 200
    return {"alma": alma, "bram": bram, "cleo": cleo}


def _request(org: Any, patient: Any, channel: str = "email") -> tuple[AccessReportRequest, str]:
    with _at(ASKED), organization_context(org):
        access = services.access_report_request_create(patient=patient, channel=channel, now=ASKED)
    token = tokens.make_token(organization_id=org.pk, request_id=access.pk, now=ASKED)
    return access, token


def _link(token: str) -> str:
    return reverse("engagement:access_report_link", args=[token])


def _report(token: str) -> str:
    return reverse("engagement:access_report_patient", args=[token])


def _code() -> str:
    [code] = re.findall(r"\b(\d{6})\b", mail.outbox[-1].body)
    return code


def _counts(org: Any) -> tuple[int, int]:
    with organization_context(org):
        return AccessLog.objects.count(), LogEntry.objects.count()


def _text(cell: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()


def _table_rows(html: str) -> list[list[str]]:
    body = html.split('data-testid="patient-access-report-table"', 1)[1].split("</tbody>", 1)[0]
    return [
        [
            re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr data-source.*?</tr>", body, re.S)
    ]


# -- Staff send the link --------------------------------------------------------------------------


def test_compliance_sends_the_link_to_the_contact_on_file(org_a, client_for, compliance_user, history) -> None:
    alma = history["alma"]
    with _at(ASKED):
        response = client_for(compliance_user).post(
            reverse("engagement:access_report_request", args=[alma.pk]), {"channel": "email"}
        )
    assert response.status_code == 302
    with organization_context(org_a):
        access = AccessReportRequest.objects.get(patient=alma)
        message = OutboundMessage.objects.get(subject_type="access_report", subject_id=access.pk)
        logged = AccessLog.objects.filter(view_name="engagement:access_report_request").get()
    assert (access.channel, access.source, access.requested_by) == ("email", "staff", compliance_user)
    assert access.link_expires_at == ASKED + timedelta(days=7)
    assert message.patient_id == alma.pk and message.is_urgent and "/engagement/r/" in message.body
    token = message.body.split("/engagement/r/", 1)[1].split("/", 1)[0]
    with _at(ASKED):
        claims = tokens.read_token(token, now=ASKED)
    assert (claims.organization_id, claims.request_id) == (org_a.pk, access.pk)
    assert logged.action == AccessAction.CHANGE and f"patients.patient:{alma.pk}" in logged.records


def test_only_compliance_and_administrators_send_it_and_never_across_organizations(
    org_a, client_for, nurse_user, analyst_user, other_org_user, admin_user, history
) -> None:
    url = reverse("engagement:access_report_request", args=[history["alma"].pk])
    with _at(ASKED):
        assert client_for(nurse_user).post(url).status_code == 403
        assert client_for(analyst_user).post(url).status_code == 403
        assert client_for(other_org_user).post(url).status_code == 404
        assert client_for(admin_user).get(url).status_code == 405
    with organization_context(org_a):
        assert not AccessReportRequest.objects.exists()
    with _at(ASKED):
        assert client_for(admin_user).post(url).status_code == 302  # the preferred reachable channel
    with organization_context(org_a):
        assert AccessReportRequest.objects.get().channel in ("sms", "email")


def test_a_patient_with_no_reachable_contact_gets_no_request(org_a, client_for, compliance_user) -> None:
    with organization_context(org_a):
        patient = PatientFactory(phone_mobile="", email="")
    with _at(ASKED):
        response = client_for(compliance_user).post(
            reverse("engagement:access_report_request", args=[patient.pk]), follow=True
        )
    assert "no mobile number or email" in response.content.decode()
    with organization_context(org_a):
        assert not AccessReportRequest.objects.exists()


# -- The patient: link, code, report -------------------------------------------------------------


def test_the_patients_report_rows_match_the_access_log_row_by_row(org_a, history, provider_user) -> None:
    alma = history["alma"]
    access, token = _request(org_a, alma)
    patient = Client()
    when = ASKED + timedelta(hours=1)
    with _at(when):
        page = patient.get(_link(token))
        assert page.status_code == 200 and "Alma" not in page.content.decode() and not mail.outbox
        assert patient.post(_link(token), {"action": "send", "channel": "email"}).status_code == 200
        assert mail.outbox[-1].to == ["alma@example.org"]
        response = patient.post(_link(token), {"action": "verify", "code": _code()})
        assert response.status_code == 302 and response["Location"] == _report(token)
        html = patient.get(_report(token)).content.decode()
    rows = _table_rows(html)

    # The expected rows, built from the logs themselves: each access-log row naming Alma, each
    # change-log entry of her records, newest first, by name and role at the time.
    with organization_context(org_a):
        reads = list(AccessLog.objects.filter(records__contains=[f"patients.patient:{alma.pk}"]))
        mine = [e for e in reads if e.action != AccessAction.DENIED]
        with _at(when):
            staff_rows = patient_access_report(patient=alma)
    assert len([r for r in staff_rows if r.source == "read"]) == len(mine)
    assert [e.actor_label for e in sorted(mine, key=lambda e: e.created_at, reverse=True)] == [
        services.PATIENT_LABEL,  # this very view, logged before the rows were read
        "provider@north.example",
        "nurse@north.example",
    ]
    zone = org_a.zone
    expected = [
        [r.when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"), r.full_name or r.username, r.role, r.what, r.reason]
        for r in staff_rows
    ]
    assert rows == expected
    assert rows[0][1:4] == [services.PATIENT_LABEL, "", "viewed patient record"]
    literal = [row[1:4] for row in rows]
    assert literal == [
        [services.PATIENT_LABEL, "", "viewed patient record"],
        ["system", "", "changed access report request"],  # the report was opened (last_viewed_at)
        ["system", "", "changed access report request"],  # the code was checked (verified_at)
        ["system", "", "changed access report request"],  # a code was sent
        ["system", "", "added access report request"],
        ["provider@north.example", "Provider", "added care plan"],
        ["provider@north.example", "Provider", "viewed appointment"],
        ["Nora Nurse", "Nurse", "viewed patient record"],
        ["system", "", "added appointment"],
        ["system", "", "added patient"],
    ]
    assert "Bram" not in html and "Cleo" not in html and "patients:detail" not in html  # no page names
    with organization_context(org_a):
        access.refresh_from_db()
    assert access.verified_at == when and access.last_viewed_at == when and access.code_hash == ""


def test_the_code_is_hashed_at_rest_and_never_in_the_outbox(org_a, history) -> None:
    access, token = _request(org_a, history["alma"])
    patient = Client()
    with _at(ASKED):
        patient.post(_link(token), {"action": "send", "channel": "email"})
    code = _code()
    with organization_context(org_a):
        access.refresh_from_db()
        bodies = [m.body for m in OutboundMessage.objects.all()]
        entries = [str(e.changes) for e in LogEntry.objects.all()]
    assert len(access.code_hash) == 64 and code not in access.code_hash
    assert access.code_expires_at == ASKED + timedelta(minutes=10)
    assert not any(code in body for body in bodies)
    assert not any(access.code_hash in entry for entry in entries)


def test_a_tampered_or_unknown_link_is_a_polite_404_and_writes_nothing(org_a, history) -> None:
    _access, token = _request(org_a, history["alma"])
    before = _counts(org_a)
    patient = Client()
    forged = tokens.make_token(organization_id=org_a.pk, request_id=_access.pk + 1000, now=ASKED)
    with _at(ASKED):
        for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "x" * 10, forged):
            for response in (
                patient.get(_link(bad)),
                patient.post(_link(bad), {"action": "send", "channel": "email"}),
                patient.get(_report(bad)),
            ):
                assert response.status_code == 404
                assert "does not work" in response.content.decode() and "Alma" not in response.content.decode()
    assert _counts(org_a) == before and not mail.outbox


def test_an_expired_link_shows_nothing(org_a, history) -> None:
    _access, token = _request(org_a, history["alma"])
    before = _counts(org_a)
    patient = Client()
    with _at(ASKED + timedelta(days=7, seconds=1)):
        for response in (patient.get(_link(token)), patient.post(_link(token), {"action": "send", "channel": "email"})):
            assert response.status_code == 410 and "expired" in response.content.decode()
    assert _counts(org_a) == before and not mail.outbox


def test_a_wrong_code_moves_only_the_counters_and_locks_the_link_after_ten(org_a, history) -> None:
    access, token = _request(org_a, history["alma"])
    patient = Client()
    clock = ASKED
    with _at(clock):
        patient.post(_link(token), {"action": "send", "channel": "email"})
    code = _code()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    before = _counts(org_a)
    with _at(clock):
        for left in (4, 3, 2, 1):
            response = patient.post(_link(token), {"action": "verify", "code": wrong})
            assert response.status_code == 400 and f"{left} tr" in response.content.decode()
        response = patient.post(_link(token), {"action": "verify", "code": wrong})
        assert "ask for a new one" in response.content.decode()
        # Five wrong tries void the code: the right one no longer opens the report.
        assert patient.post(_link(token), {"action": "verify", "code": code}).status_code == 400
        assert patient.get(_report(token)).status_code == 302
    assert _counts(org_a) == before  # no log rows: only the counters moved
    with organization_context(org_a):
        access.refresh_from_db()
    assert (access.code_attempts, access.failed_attempts, access.verified_at) == (5, 5, None)
    clock += timedelta(minutes=2)  # a new code, five more wrong tries: ten in all lock the link
    with _at(clock):
        patient.post(_link(token), {"action": "send", "channel": "email"})
        wrong = f"{(int(_code()) + 1) % 1_000_000:06d}"
        for _try in range(4):
            assert patient.post(_link(token), {"action": "verify", "code": wrong}).status_code == 400
        locked = patient.post(_link(token), {"action": "verify", "code": wrong})
        assert locked.status_code == 400 and "locked" in locked.content.decode()
    with _at(clock):
        response = patient.get(_link(token))
    assert response.status_code == 410 and "locked" in response.content.decode()
    with organization_context(org_a):
        access.refresh_from_db()
    assert access.failed_attempts == services.MAX_FAILED_ATTEMPTS


def test_codes_expire_and_are_rate_limited(org_a, history) -> None:
    _access, token = _request(org_a, history["alma"])
    patient = Client()
    with _at(ASKED):
        assert patient.post(_link(token), {"action": "send", "channel": "email"}).status_code == 200
        again = patient.post(_link(token), {"action": "send", "channel": "email"})
        assert again.status_code == 400 and "wait a minute" in again.content.decode() and len(mail.outbox) == 1
    code = _code()
    with _at(ASKED + timedelta(minutes=10, seconds=1)):
        late = patient.post(_link(token), {"action": "verify", "code": code})
        assert late.status_code == 400 and "expired" in late.content.decode()
    for minutes in (12, 14):
        with _at(ASKED + timedelta(minutes=minutes)):
            assert patient.post(_link(token), {"action": "send", "channel": "email"}).status_code == 200
    with _at(ASKED + timedelta(minutes=16)):
        fourth = patient.post(_link(token), {"action": "send", "channel": "email"})
        assert fourth.status_code == 400 and "in an hour" in fourth.content.decode() and len(mail.outbox) == 3
        # A channel with no contact on file is refused.
        assert patient.post(_link(token), {"action": "send", "channel": "fax"}).status_code == 400
    with _at(ASKED + timedelta(minutes=80)):
        assert patient.post(_link(token), {"action": "send", "channel": "email"}).status_code == 200


def test_the_report_needs_the_code_in_this_browser_and_lapses(org_a, history) -> None:
    _access, token = _request(org_a, history["alma"])
    patient, stranger = Client(), Client()
    with _at(ASKED):
        assert patient.get(_report(token)).status_code == 302  # no code yet: back to the code page
        patient.post(_link(token), {"action": "send", "channel": "email"})
        patient.post(_link(token), {"action": "verify", "code": _code()})
        assert patient.get(_report(token)).status_code == 200
        assert stranger.get(_report(token)).status_code == 302  # the link alone is not enough
    with _at(ASKED + timedelta(minutes=31)):
        assert patient.get(_report(token)).status_code == 302


# -- The patient's own request form -----------------------------------------------------------------


def test_the_request_form_sends_the_link_only_to_a_matching_contact_and_answers_the_same(org_a, org_b, history) -> None:
    alma = history["alma"]
    with organization_context(org_a):
        birth = alma.date_of_birth
    patient = Client()
    url = reverse("engagement:access_report_ask", args=[org_a.slug])
    with _at(ASKED):
        assert patient.get(url).status_code == 200
        answers = [
            patient.post(url, {"date_of_birth": birth.isoformat(), "contact": "ALMA@example.org"}),
            patient.post(url, {"date_of_birth": "1901-01-01", "contact": "alma@example.org"}),  # wrong birth date
            patient.post(url, {"date_of_birth": birth.isoformat(), "contact": "someone@example.org"}),
            patient.post(url, {"date_of_birth": birth.isoformat(), "contact": "not a phone"}),
            patient.post(
                reverse("engagement:access_report_ask", args=[org_b.slug]),
                {"date_of_birth": birth.isoformat(), "contact": "alma@example.org"},
            ),
        ]
        for response in answers:
            assert response.status_code == 200 and 'data-testid="access-ask-sent"' in response.content.decode()
            assert "Alma" not in response.content.decode()
        assert patient.post(url, {"date_of_birth": "", "contact": ""}).status_code == 400
        assert patient.get(reverse("engagement:access_report_ask", args=["nowhere"])).status_code == 404
    with organization_context(org_a):
        [access] = AccessReportRequest.objects.all()
        message = OutboundMessage.objects.get(subject_type="access_report")
    assert (access.patient_id, access.source, access.channel, access.requested_by) == (
        alma.pk,
        "patient",
        "email",
        None,
    )
    assert message.patient_id == alma.pk and message.channel == "email"
    with organization_context(org_b):
        assert not AccessReportRequest.objects.exists()


def test_the_request_form_sends_at_most_three_links_a_day_per_patient(org_a, history) -> None:
    alma = history["alma"]
    with organization_context(org_a):
        birth = alma.date_of_birth.isoformat()
    url = reverse("engagement:access_report_ask", args=[org_a.slug])
    with _at(ASKED):
        for _ in range(5):
            Client().post(url, {"date_of_birth": birth, "contact": "alma@example.org"})
    with organization_context(org_a):
        assert AccessReportRequest.objects.filter(patient=alma).count() == 3
    with _at(ASKED + timedelta(days=1, minutes=1)):
        Client().post(url, {"date_of_birth": birth, "contact": "alma@example.org"})
    with organization_context(org_a):
        assert AccessReportRequest.objects.filter(patient=alma).count() == 4
