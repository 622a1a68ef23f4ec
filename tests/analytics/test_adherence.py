"""Attendance figures on a hand-built clinic: every expected number is counted below, by hand."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse

from analytics import adherence
from analytics.filters import Filters, Period
from analytics.models import AppointmentFact, Exposure, Outcome
from analytics.refresh import refresh_run
from engagement.models import OutboundMessage, Rule
from engagement.services.outbox import reminder_slot
from healthcrm.tenancy import organization_context
from patients.models import Appointment
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 17, 4, 30, tzinfo=UTC)  # the suite's default clock (23:30 on 16 June in Chicago)


def _visit(
    patient: Any,
    practitioner: Any,
    day: int,
    hour_utc: int,
    status: str,
    *,
    booked_days_before: int = 7,
    changed_hours_before: float | None = None,
    reason: str = "",
) -> Appointment:
    starts = datetime(2026, 6, day, hour_utc, 0, tzinfo=UTC)
    appointment = AppointmentFactory(
        patient=patient, practitioner=practitioner, starts_at=starts, status=status, status_reason=reason
    )
    changed = starts - timedelta(hours=changed_hours_before) if changed_hours_before is not None else None
    Appointment.objects.filter(pk=appointment.pk).update(
        created_at=starts - timedelta(days=booked_days_before), status_changed_at=changed
    )
    return appointment


@pytest.fixture
def clinic(org_a: Any) -> dict[str, Any]:
    """Dr A: 12 visits, Dr B: 4 visits, all in June 2026 (times in UTC; Chicago is UTC-5 in June).

    Dr A (12): 8 attended, 2 no-shows, 1 late cancel (cancelled 3 h before), 1 cancelled (3 days before)
    Dr B (4):  2 attended, 1 no-show, 1 still upcoming (after NOW: not counted)
    """
    with organization_context(org_a):
        a, b = PractitionerFactory(display_name="Dr A"), PractitionerFactory(display_name="Dr B")
        p = [PatientFactory(date_of_birth=date(1980, 1, 1), family_name=f"Quenbyfield{i}") for i in range(4)]
        visits = []
        for i in range(8):
            visits.append(_visit(p[i % 4], a, 1 + i, 15, "completed"))
        visits.append(_visit(p[0], a, 10, 15, "no_show", booked_days_before=30, reason="forgot"))
        visits.append(_visit(p[1], a, 11, 15, "no_show", booked_days_before=30))
        visits.append(_visit(p[2], a, 12, 15, "cancelled", changed_hours_before=3, reason="illness"))
        visits.append(_visit(p[3], a, 13, 15, "cancelled", changed_hours_before=72, reason="conflict"))
        visits.append(_visit(p[0], b, 2, 14, "completed"))
        visits.append(_visit(p[1], b, 3, 14, "completed"))
        visits.append(_visit(p[2], b, 4, 14, "no_show"))
        visits.append(_visit(p[3], b, 20, 14, "booked"))
        return {"org": org_a, "a": a, "b": b, "patients": p, "visits": visits}


def _filters(**kwargs: Any) -> Filters:
    return Filters(Period(date(2026, 6, 1), date(2026, 6, 30)), None, kwargs.get("practitioner"), None)


def test_refresh_classifies_each_visit(clinic: dict[str, Any]) -> None:
    with organization_context(clinic["org"]):
        refresh_run(full=True, now=NOW)
        outcomes = dict(AppointmentFact.objects.values_list("appointment_id", "outcome"))
        v = clinic["visits"]
        assert [outcomes[x.pk] for x in v[8:12]] == ["no_show", "no_show", "late_cancel", "cancelled"]
        assert outcomes[v[15].pk] == "upcoming"
        fact = AppointmentFact.objects.get(appointment=v[8])
        # 15:00 UTC on Wednesday 10 June 2026 is 10:00 in Chicago; booked 30 days before.
        assert (fact.weekday, fact.hour, fact.lead_days, fact.age_band) == (2, 10, 30, "40-64")
        assert fact.status_reason == "forgot"


def test_outcome_rates_by_provider_are_counted_from_the_facts(clinic: dict[str, Any]) -> None:
    with organization_context(clinic["org"]):
        refresh_run(full=True, now=NOW)
        table = adherence.outcome_table(_filters(), "provider")
        rows = {row["label"]: row for row in table.display_rows()}
        # Dr A: 8 / 2 / 1 / 1 = 12 due. Counts below 11 are hidden: all of A's except none can show...
        assert table.values[(str(clinic["a"].pk), "attended")] == 8
        assert table.values[(str(clinic["a"].pk), "__total__")] == 12
        assert table.values[(str(clinic["b"].pk), "__total__")] == 3  # the upcoming one is not due
        assert table.values[("__total__", "__total__")] == 15
        assert table.values[("__total__", "no_show")] == 3
        # On the page: B's 3 is below 11; the grand total 15 shows, so A's 12 would give B's 3 back
        # (15 - 12): A's total is withheld too ("hidden", not "<11": it is not small).
        assert rows["Dr B"]["total"] == "<11"
        assert rows["Dr A"]["total"] == "hidden"
        assert rows["Dr A"]["cells"] == ["<11", "<11", "<11", "<11"]
        # Rates: only where numerator and denominator both show; the grand total 15 shows, its
        # no-show count 3 does not, so the overall no-show rate is hidden too.
        assert rows["All visits"]["total"] == 15
        assert rows["All visits"]["rates"][0] is None


def test_rates_and_reasons_for_a_large_enough_clinic(org_a: Any) -> None:
    """40 visits for one provider: 22 attended, 12 no-shows, 6 late cancels -> 30 % no-show."""
    with organization_context(org_a):
        doc = PractitionerFactory(display_name="Dr C")
        patient = PatientFactory(date_of_birth=date(1950, 5, 5))
        statuses = ["completed"] * 22 + ["no_show"] * 12 + ["cancelled"] * 6
        for i, status in enumerate(statuses):
            starts = datetime(2026, 5, 1, 13, 0, tzinfo=UTC) + timedelta(hours=i * 25)
            appt = AppointmentFactory(
                patient=patient,
                practitioner=doc,
                starts_at=starts,
                status=status,
                status_reason="transport" if status == "no_show" else "",
            )
            Appointment.objects.filter(pk=appt.pk).update(
                status_changed_at=starts - timedelta(hours=1) if status == "cancelled" else None
            )
        refresh_run(full=True, now=NOW)
        filters = Filters(Period(date(2026, 5, 1), date(2026, 6, 16)), None, None, None)
        row = adherence.outcome_table(filters, "provider").display_rows()[0]
        # The 6 late cancels are hidden; alone in a row whose total (40) shows, 40 - 22 - 12 - 0 would
        # give them back, so the smallest other non-zero cell (the 12 no-shows) is hidden with them.
        assert row["cells"] == [22, "hidden", "<11", 0]
        assert row["total"] == 40
        assert row["rates"][2] == (22 / 40, *row["rates"][2][1:])  # show rate 55 %, both counts shown
        low, high = row["rates"][2][1:]
        assert 0.39 < low < 0.55 < high < 0.70  # Wilson 95 % for 22 of 40: 39.8 %–69.3 %
        reasons = adherence.reason_table(filters)
        assert reasons.values[("transport", "no_show")] == 12
        assert reasons.values[("none", "late_cancel")] == 6
        assert reasons.cell("none", "late_cancel") == "<11"


def test_reminder_exposure_from_the_outbox_and_confirmation(clinic: dict[str, Any]) -> None:
    with organization_context(clinic["org"]):
        rule = Rule.objects.create(name="Reminders", kind="appointment_reminder", template_key="appointment_reminder")
        first, second = clinic["visits"][0], clinic["visits"][1]
        for visit, status in ((first, "delivered"), (second, "failed")):
            OutboundMessage.objects.create(
                patient=visit.patient,
                rule=rule,
                template_key="appointment_reminder",
                subject_type="appointment",
                subject_id=visit.pk,
                channel="sms",
                slot=reminder_slot(24, visit.starts_at),
                status=status,
                due_at=visit.starts_at - timedelta(hours=24),
                next_attempt_at=visit.starts_at - timedelta(hours=24),
                sent_at=visit.starts_at - timedelta(hours=24),
            )
        third = clinic["visits"][2]
        Appointment.objects.filter(pk=third.pk).update(
            confirmed_at=third.starts_at - timedelta(hours=20), confirmed_via="sms_reply"
        )
        refresh_run(full=True, now=NOW)
        facts = {f.appointment_id: f for f in AppointmentFact.objects.all()}
        assert (facts[first.pk].exposure, facts[first.pk].reminded_24h, facts[first.pk].sms_delivered) == (
            Exposure.DELIVERED,
            True,
            True,
        )
        assert facts[second.pk].exposure == Exposure.NONE  # failed: never reached the patient
        assert facts[third.pk].exposure == Exposure.CONFIRMED


def test_incremental_refresh_picks_up_a_status_change(clinic: dict[str, Any]) -> None:
    with organization_context(clinic["org"]):
        later = NOW + timedelta(hours=1)  # after the fixture's rows were written (the clock ticks from NOW)
        refresh_run(full=True, now=later)
        visit = clinic["visits"][0]
        Appointment.objects.filter(pk=visit.pk).update(status="no_show", updated_at=later + timedelta(minutes=5))
        run = refresh_run(now=later + timedelta(minutes=10))
        assert run.full is False
        assert run.rows["appointments"] < len(clinic["visits"])
        assert AppointmentFact.objects.get(appointment=visit).outcome == Outcome.NO_SHOW


def test_analyst_sees_the_page_with_suppressed_cells_and_the_same_csv(
    clinic: dict[str, Any], analyst_user: Any, client_for: Any
) -> None:
    with organization_context(clinic["org"]):
        refresh_run(full=True, now=NOW)
    client = client_for(analyst_user)
    url = reverse("analytics:adherence")
    response = client.get(url, {"start": "2026-06-01", "end": "2026-06-16"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "&lt;11" in page and "Dr A" in page
    for patient in clinic["patients"]:
        assert patient.family_name not in page
    exported = client.get(url, {"start": "2026-06-01", "end": "2026-06-16", "export": "provider"})
    assert exported["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    by_label = {row[0]: row for row in rows[1:]}
    assert by_label["Dr A"][1:6] == ["<11", "<11", "<11", "<11", "hidden"]
    assert by_label["Dr B"][5] == "<11"


def test_filters_by_provider_and_bad_dates_re_render(
    clinic: dict[str, Any], analyst_user: Any, client_for: Any
) -> None:
    with organization_context(clinic["org"]):
        refresh_run(full=True, now=NOW)
    client = client_for(analyst_user)
    url = reverse("analytics:adherence")
    page = client.get(
        url, {"practitioner": clinic["b"].pk, "start": "2026-06-01", "end": "2026-06-16"}
    ).content.decode()
    assert "Dr B" in page
    bad = client.get(url, {"start": "2026-06-30", "end": "2026-06-01"})
    assert bad.status_code == 200
    assert "The start must be on or before the end." in bad.content.decode()
    assert client.get(url, {"export": "nope"}).status_code == 404


def test_roles_without_aggregates_get_403(
    clinic: dict[str, Any], frontdesk_user: Any, compliance_user: Any, client_for: Any
) -> None:
    for user in (frontdesk_user, compliance_user):
        assert client_for(user).get(reverse("analytics:adherence")).status_code == 403


def test_seed_demo_history_follows_its_no_show_model() -> None:
    """The demo's visits are drawn from analytics/demo.py's model: confirmed visits are missed far
    less often than visits with no reminder, and the facts are built at the end of the seed."""
    import io

    from django.core.management import call_command

    from healthcrm.models import Organization

    call_command("seed_demo", "--patients", "120", stdout=io.StringIO())
    with organization_context(Organization.objects.get(slug="northside")):
        due = AppointmentFact.objects.filter(outcome__in=["attended", "no_show", "late_cancel", "cancelled"])
        assert due.count() > 500  # 18 months of history (120 patients, 5 visits a year)

        def no_show_rate(**kw: Any) -> float:
            group = due.filter(**kw)
            return group.filter(outcome="no_show").count() / group.count()

        assert no_show_rate(exposure="confirmed") < no_show_rate(exposure="none") / 2
        assert due.exclude(status_reason="").filter(outcome="no_show").exists()
