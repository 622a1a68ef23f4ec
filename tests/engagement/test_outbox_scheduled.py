"""Issue #11 item 11: the outbox shows everything scheduled, not only the next hour. A reminder is
queued an hour before it is due; the reminders the rules will send later are listed below the
queue, by due time, filterable by the clinic's dates, so staff can check tomorrow's reminders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engagement.models import Rule
from engagement.services import rule_materialize
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import configure
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db

RULE = "Appointment reminders"
UNREACHABLE = "Not sent: no consent or contact"


@pytest.fixture
def scheduled(org_a: Any, daytime: Any) -> dict[str, Any]:
    """The seeded 72/24/2 h rule at 15:00 Chicago (21:00 UTC) on Tuesday 2026-11-24."""
    configure(org_a)
    now = daytime
    with organization_context(org_a):
        rule = Rule.objects.create(
            name="Appointment reminders",
            kind="appointment_reminder",
            template_key="appointment_reminder",
            offsets_hours=[72, 24, 2],
        )
        people = {
            name: PatientFactory(given_name=name, family_name="Testperson", preferred_channel="sms")
            for name in ("Tomorrow", "Later", "Cancelled", "Soon", "Quiet")
        }
        people["Quiet"].preferred_channel = "none"
        people["Quiet"].save()

        def visit(name: str, hours: float, **kw: Any) -> Any:
            starts = now + timedelta(hours=hours)
            return AppointmentFactory(
                patient=people[name], starts_at=starts, ends_at=starts + timedelta(minutes=30), **kw
            )

        visits = {
            "tomorrow": visit("Tomorrow", 26),  # 24 h due in 2 h, 2 h due tomorrow; 72 h passed
            "later": visit("Later", 24 * 5),  # all three ahead
            "cancelled": visit("Cancelled", 30, status="cancelled"),
            "soon": visit("Soon", 2.5),  # its 2 h reminder is due in 30 min: queued now, not "scheduled"
            "quiet": visit("Quiet", 24 * 3 + 5),  # three reminders, no channel
        }
        queued = rule_materialize(rule=rule, now=now)
    return {"rule": rule, "visits": visits, "queued": queued, "now": now}


def _scheduled_rows(page: Any) -> list[str]:
    import re

    html = page.content.decode()
    table = html.split('data-testid="scheduled-table"', 1)
    if len(table) < 2:
        return []
    body = table[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr data-status=\"scheduled\">(.*?)</tr>", body, re.S)
    return [
        " | ".join(re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S))
        for row in rows
    ]


def test_outbox_lists_every_reminder_the_rule_will_send_by_due_time(
    client_for, nurse_user, scheduled, django_assert_max_num_queries
) -> None:
    assert scheduled["queued"] == 1  # only Soon's 2 h reminder is due within the hour
    with django_assert_max_num_queries(40):
        page = client_for(nurse_user).get("/engagement/outbox/")
    assert page.status_code == 200
    rows = _scheduled_rows(page)
    # Due times in Chicago: now is 15:00 on the 24th.
    assert rows == [
        "2026-11-24 17:00 | Tomorrow Testperson | Appointment reminders | 24 h before | 2026-11-25 17:00 | SMS",
        f"2026-11-24 20:00 | Quiet Testperson | {RULE} | 72 h before | 2026-11-27 20:00 | {UNREACHABLE}",
        "2026-11-25 15:00 | Tomorrow Testperson | Appointment reminders | 2 h before | 2026-11-25 17:00 | SMS",
        "2026-11-26 15:00 | Later Testperson | Appointment reminders | 72 h before | 2026-11-29 15:00 | SMS",
        f"2026-11-26 20:00 | Quiet Testperson | {RULE} | 24 h before | 2026-11-27 20:00 | {UNREACHABLE}",
        f"2026-11-27 18:00 | Quiet Testperson | {RULE} | 2 h before | 2026-11-27 20:00 | {UNREACHABLE}",
        "2026-11-28 15:00 | Later Testperson | Appointment reminders | 24 h before | 2026-11-29 15:00 | SMS",
        "2026-11-29 13:00 | Later Testperson | Appointment reminders | 2 h before | 2026-11-29 15:00 | SMS",
    ]
    assert "Soon Testperson" in page.content.decode().split('data-testid="scheduled-table"')[0]  # queued above


def test_scheduled_reminders_filter_by_the_clinics_dates_and_rule(client_for, nurse_user, scheduled, org_a) -> None:
    client = client_for(nurse_user)
    tomorrow = _scheduled_rows(client.get("/engagement/outbox/?due_from=2026-11-25&due_to=2026-11-25"))
    assert [r.split(" | ")[:2] for r in tomorrow] == [["2026-11-25 15:00", "Tomorrow Testperson"]]
    assert len(_scheduled_rows(client.get("/engagement/outbox/?due_from=2026-11-26"))) == 5
    with organization_context(org_a):
        other = Rule.objects.create(
            name="Other", kind="appointment_reminder", template_key="appointment_reminder", offsets_hours=[48]
        )
    only_other = _scheduled_rows(client.get(f"/engagement/outbox/?rule={other.pk}"))
    assert only_other and all(" | Other | " in r for r in only_other)
    # A queued-status filter shows the queue only: scheduled reminders have no status yet.
    assert _scheduled_rows(client.get("/engagement/outbox/?status=pending")) == []


def test_paused_rules_schedule_nothing_and_other_clinics_see_none(
    client_for, nurse_user, other_org_user, analyst_user, scheduled, org_a
) -> None:
    assert client_for(analyst_user).get("/engagement/outbox/").status_code == 403
    other = client_for(other_org_user).get("/engagement/outbox/")
    assert other.status_code == 200 and "Testperson" not in other.content.decode()
    with organization_context(org_a):
        Rule.objects.filter(pk=scheduled["rule"].pk).update(is_active=False)
    assert _scheduled_rows(client_for(nurse_user).get("/engagement/outbox/")) == []


def test_reminders_queued_early_are_not_listed_twice(client_for, nurse_user, scheduled, org_a) -> None:
    """The demo seed queues the next days' reminders in advance: those show in the queue only."""
    with organization_context(org_a):
        rule_materialize(rule=scheduled["rule"], now=scheduled["now"] + timedelta(hours=2))  # Tomorrow's 24 h
    rows = _scheduled_rows(client_for(nurse_user).get("/engagement/outbox/"))
    assert len(rows) == 7 and not any(r.startswith("2026-11-24 17:00 | Tomorrow") for r in rows)
