"""The pages' daily cube (analytics.cube) gives exactly what the facts give, and follows changes.

The attendance and reminder pages read AppointmentDaily unless a provider is chosen; every
hand-counted test of those pages (test_adherence, test_reminders) goes through it. Here the cube is
compared with the facts grouping for grouping, on the hand-built clinic of test_adherence with
reminders added, with and without a location filter, and after an incremental refresh that
moves a visit to another day.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import adherence, reminders
from analytics.cube import cube_counts, cube_summary
from analytics.models import AppointmentDaily
from analytics.refresh import refresh_run
from engagement.models import OutboundMessage, Rule
from engagement.services.outbox import reminder_slot
from healthcrm.tenancy import organization_context
from patients.models import Appointment
from tests.analytics.test_adherence import NOW, _filters, clinic  # noqa: F401  (the fixture)
from tests.factories import LocationFactory

pytestmark = pytest.mark.django_db


def _remind(appointment: Appointment, rule: Rule, *, channel: str, hours: int) -> None:
    OutboundMessage.objects.create(
        patient=appointment.patient,
        rule=rule,
        template_key="appointment_reminder",
        subject_type="appointment",
        subject_id=appointment.pk,
        channel=channel,
        slot=reminder_slot(hours, appointment.starts_at),
        status="delivered" if channel == "sms" else "sent",
        due_at=appointment.starts_at - timedelta(hours=hours),
        next_attempt_at=appointment.starts_at - timedelta(hours=hours),
        sent_at=appointment.starts_at - timedelta(hours=hours),
    )


@pytest.fixture
def reminded(clinic: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    """The clinic, with two rules' reminders on some visits, a confirmation, and a second location."""
    with organization_context(clinic["org"]):
        early = Rule.objects.create(name="72 h", kind="appointment_reminder", template_key="appointment_reminder")
        late = Rule.objects.create(name="24 h", kind="appointment_reminder", template_key="appointment_reminder")
        v = clinic["visits"]
        for visit in v[0:4]:
            _remind(visit, early, channel="sms", hours=72)
        for visit in v[2:6]:
            _remind(visit, late, channel="email", hours=24)
        _remind(v[8], late, channel="sms", hours=24)
        Appointment.objects.filter(pk=v[1].pk).update(
            confirmed_at=v[1].starts_at - timedelta(hours=30), confirmed_via="sms_reply"
        )
        annex = LocationFactory(name="Annex")
        Appointment.objects.filter(pk__in=[v[0].pk, v[9].pk, v[12].pk]).update(location=annex)
        refresh_run(full=True, now=NOW)
    return {**clinic, "annex": annex}


def _facts(filters: Any) -> dict[str, Any]:
    return {**adherence.fact_counts(filters), **reminders.fact_reminder_counts(filters)}


def _same(cube: dict[str, Any], facts: dict[str, Any]) -> None:
    for name, cells in facts.items():
        assert cube[name] == cells, name


def test_the_cube_gives_every_grouping_the_facts_give(reminded: dict[str, Any]) -> None:
    with organization_context(reminded["org"]):
        filters = _filters()
        cube = cube_counts(filters)
        assert cube is not None
        _same(cube, _facts(filters))
        assert cube_summary(filters) == {
            outcome: n for (outcome,), n in adherence.fact_counts(filters)["summary"].items()
        }
        # Hand counts from the fixture: 15 due visits; the 72 h rule reached 4, the 24 h rule 5.
        assert sum(cube["summary"].values()) == 15
        assert sum(n for (rule, _), n in cube["rule"].items() if rule == Rule.objects.get(name="72 h").pk) == 4
        assert sum(n for (rule, _), n in cube["rule"].items() if rule == Rule.objects.get(name="24 h").pk) == 5
        # With a location filter: the annex has 3 of them.
        at_annex = dataclasses.replace(filters, location=reminded["annex"])
        cube = cube_counts(at_annex)
        assert cube is not None
        _same(cube, _facts(at_annex))
        assert sum(cube["summary"].values()) == 3


def test_a_provider_filter_reads_the_facts(reminded: dict[str, Any]) -> None:
    with organization_context(reminded["org"]):
        assert cube_counts(_filters(practitioner=reminded["a"])) is None
        table = adherence.outcome_table(_filters(practitioner=reminded["a"]), "provider")
        assert [row["label"] for row in table.display_rows()] == ["Dr A", "All visits"]


def test_an_incremental_refresh_moves_a_visit_between_days(reminded: dict[str, Any]) -> None:
    with organization_context(reminded["org"]):
        moved = reminded["visits"][0]  # attended on 1 June
        new_start = datetime(2026, 6, 15, 15, 0, tzinfo=UTC)
        Appointment.objects.filter(pk=moved.pk).update(
            starts_at=new_start, ends_at=new_start + timedelta(minutes=30), updated_at=NOW + timedelta(minutes=5)
        )
        refresh_run(now=NOW + timedelta(minutes=10))
        filters = _filters()
        _same(cube_counts(filters) or {}, _facts(filters))
        days = set(AppointmentDaily.objects.filter(dimension="type").values_list("local_date", flat=True))
        assert datetime(2026, 6, 1).date() not in days  # its only visit left
        assert datetime(2026, 6, 15).date() in days
