"""Issue #13 item 7: anomaly alerts. Each rule fires on a constructed history and stays quiet on a
normal one (the clock frozen); an alert is stored once per rule, user and day with its evidence (ids,
counts, times: no PHI), and a review (outcome, encrypted note, reviewer) survives a later scan."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from axes.models import AccessFailureLog

from compliance.models import AccessAction, AccessLog, AnomalyAlert, AnomalyRule
from compliance.services import anomaly_alert_review, anomaly_scan
from compliance.tasks import anomaly_scan_task
from healthcrm.models import Notification
from healthcrm.tenancy import organization_context
from tests.factories import MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

# Wednesday 2 December 2026 in Chicago (organization A): 16:00 UTC is 10:00 there, inside the
# default hours (Monday to Friday, 07:00 to 19:00).
DAY = date(2026, 12, 2)
MIDMORNING = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 3, 0, 30, tzinfo=UTC)  # 18:30 in Chicago, still the 2nd


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _staff(organization: Any, username: str, last_name: str = "Smith", role: str = "nurse") -> Any:
    user = UserFactory(username=username, last_name=last_name)
    MembershipFactory(user=user, organization=organization, role=role)
    return user


def _open(organization: Any, user: Any, at: datetime, patient_ids: list[int], action: str = AccessAction.VIEW) -> None:
    """The user opened each patient's record at `at` (one access-log row per record)."""
    with time_machine.travel(at, tick=False), organization_context(organization):
        for pk in patient_ids:
            AccessLog.objects.create(
                actor=user,
                actor_label=user.username,
                action=action,
                view_name="patients:detail",
                records=[f"patients.patient:{pk}"],
                ip_address="10.0.0.8",
            )


def _scan(organization: Any, day: date = DAY) -> list[AnomalyAlert]:
    with organization_context(organization):
        anomaly_scan(organization=organization, day=day)
        return list(AnomalyAlert.objects.order_by("rule", "subject"))


def _fired(alerts: list[AnomalyAlert], rule: str) -> list[AnomalyAlert]:
    return [alert for alert in alerts if alert.rule == rule]


# -- Far more records than the user's own baseline ---------------------------------------------------


def _usual_weeks(organization: Any, user: Any, per_day: int) -> None:
    """Ten working days before DAY, `per_day` distinct patients each, mid-morning."""
    for back in range(1, 15):
        at = MIDMORNING - timedelta(days=back)
        if at.weekday() < 5:
            _open(organization, user, at, [5000 + back * 100 + i for i in range(per_day)])


def test_volume_fires_above_the_users_own_baseline(org_a) -> None:
    nurse = _staff(org_a, "nurse@north.example")
    _usual_weeks(org_a, nurse, per_day=5)  # median 5: threshold max(3 x 5 + 10, 30) = 30
    _open(org_a, nurse, MIDMORNING, list(range(1, 42)))  # 41 distinct patients today
    [alert] = _fired(_scan(org_a), AnomalyRule.VOLUME)
    assert alert.subject == "nurse@north.example" and alert.user_id == nurse.pk and alert.day == DAY
    assert alert.evidence["distinct_patients"] == 41 and alert.evidence["threshold"] == 30
    assert alert.evidence["baseline_median"] == 5 and alert.evidence["baseline_active_days"] == 10
    assert len(alert.evidence["access_log_ids"]) == 41


def test_volume_stays_quiet_on_a_busy_but_usual_day_and_for_a_newcomer_under_the_floor(org_a) -> None:
    busy = _staff(org_a, "busy@north.example")
    _usual_weeks(org_a, busy, per_day=20)  # threshold max(3 x 20 + 10, 30) = 70
    _open(org_a, busy, MIDMORNING, list(range(1, 61)))  # 60: a heavy day for anyone else
    newcomer = _staff(org_a, "new@north.example")
    _open(org_a, newcomer, MIDMORNING, list(range(100, 125)))  # no history: the floor (30) applies
    # Re-opening the same records many times is not "more records".
    _open(org_a, newcomer, MIDMORNING + timedelta(hours=1), list(range(100, 125)))
    assert _fired(_scan(org_a), AnomalyRule.VOLUME) == []


# -- A patient with the user's own family name ----------------------------------------------------


def test_same_family_name_fires_by_comparing_digests(org_a) -> None:
    nurse = _staff(org_a, "nurse@north.example", last_name="Quillfeather")
    with organization_context(org_a):
        relative = PatientFactory(given_name="Ada", family_name="QUILLFEATHER")
        stranger = PatientFactory(given_name="Bo", family_name="Northcott")
    _open(org_a, nurse, MIDMORNING, [relative.pk, stranger.pk])
    [alert] = _fired(_scan(org_a), AnomalyRule.SAME_FAMILY)
    assert alert.evidence["patient_ids"] == [relative.pk]
    with organization_context(org_a):
        row = AccessLog.objects.get(records=[f"patients.patient:{relative.pk}"])
    assert alert.evidence["access_log_ids"] == [row.pk]
    assert "quillfeather" not in str(alert.evidence).lower()


def test_same_family_name_stays_quiet_for_other_names_and_users_without_one(org_a) -> None:
    nurse = _staff(org_a, "nurse@north.example", last_name="Quillfeather")
    nameless = _staff(org_a, "desk@north.example", last_name="")
    with organization_context(org_a):
        patients = [PatientFactory(family_name="Northcott"), PatientFactory(family_name="Quill")]
    _open(org_a, nurse, MIDMORNING, [p.pk for p in patients])
    _open(org_a, nameless, MIDMORNING, [p.pk for p in patients])
    assert _fired(_scan(org_a), AnomalyRule.SAME_FAMILY) == []


# -- After hours (the organization's, in its zone) ------------------------------------------------------


def test_after_hours_fires_at_night_in_the_organizations_zone(org_a) -> None:
    nurse = _staff(org_a, "nurse@north.example")
    # 23:30 in Chicago on the 2nd is 05:30 UTC on the 3rd: the clinic's day is still the 2nd.
    late = datetime(2026, 12, 3, 5, 30, tzinfo=UTC)
    with time_machine.travel(late + timedelta(minutes=5), tick=False):
        _open(org_a, nurse, MIDMORNING, [11])
        _open(org_a, nurse, late, [12])
        [alert] = _fired(_scan(org_a), AnomalyRule.AFTER_HOURS)
    assert alert.day == DAY and alert.evidence["accesses"] == 1
    assert alert.evidence["local_times"] == ["23:30"] and alert.evidence["zone"] == "America/Chicago"


def test_after_hours_stays_quiet_in_hours_and_follows_the_organizations_own_hours(org_a) -> None:
    nurse = _staff(org_a, "nurse@north.example")
    _open(org_a, nurse, MIDMORNING, [11, 12])  # 10:00 on a Wednesday
    assert _fired(_scan(org_a), AnomalyRule.AFTER_HOURS) == []
    # A clinic open on Wednesday evenings: 20:00 there is in its hours, not after them.
    org_a.settings = {"compliance": {"hours": {"wed": [["07:00", "21:00"]]}}}
    org_a.save()
    _open(org_a, nurse, datetime(2026, 12, 3, 2, 0, tzinfo=UTC), [13])  # 20:00 Wednesday in Chicago
    assert _fired(_scan(org_a), AnomalyRule.AFTER_HOURS) == []


# -- VIP and employee records -------------------------------------------------------------------------


def test_opening_a_flagged_record_fires_and_an_ordinary_one_does_not(org_a) -> None:
    nurse = _staff(org_a, "nurse@north.example")
    colleague = _staff(org_a, "colleague@north.example")
    with organization_context(org_a):
        vip = PatientFactory(access_flag="vip")
        employee = PatientFactory(access_flag="employee")
        ordinary = PatientFactory()
    _open(org_a, nurse, MIDMORNING, [vip.pk, employee.pk, ordinary.pk])
    _open(org_a, colleague, MIDMORNING, [ordinary.pk])
    [alert] = _fired(_scan(org_a), AnomalyRule.FLAGGED_RECORD)
    assert alert.subject == "nurse@north.example"
    assert alert.evidence["patient_ids"] == sorted([vip.pk, employee.pk])
    assert alert.evidence["flags"] == {str(vip.pk): "vip", str(employee.pk): "employee"}


# -- Failed sign-ins (django-axes) ---------------------------------------------------------------------


def _failures(username: str, count: int, at: datetime) -> None:
    for i in range(count):
        with time_machine.travel(at + timedelta(minutes=i), tick=False):
            AccessFailureLog.objects.create(
                username=username, ip_address="203.0.113.9", user_agent="test", http_accept="*/*", path_info="/login/"
            )


def test_many_failed_sign_ins_fire_for_the_organizations_member_only(org_a, org_b) -> None:
    _staff(org_a, "nurse@north.example")
    _staff(org_a, "desk@north.example")
    _staff(org_b, "nurse@lake.example")
    _failures("Nurse@North.example", 6, MIDMORNING)  # the case typed does not matter
    _failures("desk@north.example", 2, MIDMORNING)  # a forgotten password, not an attack
    _failures("nurse@lake.example", 9, MIDMORNING)  # another organization's member
    _failures("nurse@north.example", 9, MIDMORNING - timedelta(days=2))  # another day
    [alert] = _fired(_scan(org_a), AnomalyRule.FAILED_LOGINS)
    assert alert.subject == "nurse@north.example" and alert.evidence["failures"] == 6
    assert alert.evidence["ip_addresses"] == ["203.0.113.9"] and alert.evidence["locked_out"] is False
    with organization_context(org_b):
        assert [a.subject for a in _fired(_scan(org_b), AnomalyRule.FAILED_LOGINS)] == ["nurse@lake.example"]


# -- Stored once, reviewed, and the scan task -------------------------------------------------------------


def test_an_alert_is_stored_once_per_rule_user_and_day_and_keeps_its_review(org_a, compliance_user) -> None:
    nurse = _staff(org_a, "nurse@north.example")
    with organization_context(org_a):
        vip = PatientFactory(access_flag="vip")
        other = PatientFactory(access_flag="vip")
    _open(org_a, nurse, MIDMORNING, [vip.pk])
    [first] = _fired(_scan(org_a), AnomalyRule.FLAGGED_RECORD)
    with organization_context(org_a):
        assert Notification.objects.filter(recipient=compliance_user, kind="anomaly_alert").count() == 1
        anomaly_alert_review(alert=first, reviewer=compliance_user, outcome="explained", note="Covering the ward.")
    _open(org_a, nurse, MIDMORNING + timedelta(hours=1), [other.pk])
    [again] = _fired(_scan(org_a), AnomalyRule.FLAGGED_RECORD)
    assert again.pk == first.pk and again.evidence["patient_ids"] == sorted([vip.pk, other.pk])
    assert again.outcome == "explained" and again.review_note == "Covering the ward."
    with organization_context(org_a):
        # No second notification for an alert already known.
        assert Notification.objects.filter(recipient=compliance_user, kind="anomaly_alert").count() == 1


def test_the_scan_task_takes_ids_and_scans_the_organizations_today_and_yesterday(org_a, org_b) -> None:
    nurse = _staff(org_a, "nurse@north.example")
    with organization_context(org_a):
        vip = PatientFactory(access_flag="vip")
    _open(org_a, nurse, MIDMORNING - timedelta(days=1), [vip.pk])  # yesterday in Chicago
    _open(org_a, nurse, MIDMORNING, [vip.pk])  # today in Chicago
    assert anomaly_scan_task(org_a.pk) == 2
    assert anomaly_scan_task(org_a.pk) == 0  # nothing new the second time
    assert anomaly_scan_task(org_b.pk) == 0
    with organization_context(org_a):
        assert sorted(AnomalyAlert.objects.values_list("day", flat=True)) == [DAY - timedelta(days=1), DAY]


def test_failed_sign_ins_through_the_login_page_reach_the_rule(client, org_a) -> None:
    """django-axes records each failure (AXES_ENABLE_ACCESS_FAILURE_LOG): the rule reads real ones."""
    _staff(org_a, "nurse@north.example")
    with time_machine.travel(MIDMORNING, tick=False):
        for i in range(5):
            ip = f"198.51.100.{i + 1}"  # one address each: axes locks nobody out before the fifth
            client.post("/accounts/login/", {"username": "nurse@north.example", "password": "wrong"}, REMOTE_ADDR=ip)
    [alert] = _fired(_scan(org_a), AnomalyRule.FAILED_LOGINS)
    assert alert.evidence["failures"] == 5 and len(alert.evidence["ip_addresses"]) == 5


def test_hours_that_do_not_parse_fall_back_to_the_default_and_the_scan_goes_on(org_a) -> None:
    org_a.settings = {"compliance": {"hours": {"wed": [["19:00", "07:00"]]}}}  # closes before it opens
    org_a.save()
    nurse = _staff(org_a, "nurse@north.example")
    _open(org_a, nurse, MIDMORNING, [11])  # 10:00: inside the default hours
    _open(org_a, nurse, datetime(2026, 12, 2, 12, 30, tzinfo=UTC), [12])  # 06:30 there: before them
    [alert] = _fired(_scan(org_a), AnomalyRule.AFTER_HOURS)
    assert alert.evidence["local_times"] == ["06:30"]
