"""Care gaps (issue #10 item 5): the recall definitions as gaps, their closure, contact attempts.

Every expected number is counted by hand in the test from the small dataset it builds. The clock
is the test's own `NOW` (passed to the builder and services), never the wall clock's hour.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from analytics.gaps import build_care_gaps, gap_closure, worklist, worklist_rows
from analytics.models import CareGap
from analytics.suppression import determined
from engagement import recalls
from engagement.models import CallLog, OutboundMessage, Rule
from engagement.services import call_log_create, consent_set, recall_send, rule_materialize
from healthcrm.tenancy import organization_context
from patients.models import Condition, Immunization, Observation, Patient
from tests.engagement.conftest import configure
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 10, 15, 15, 0, tzinfo=UTC)  # 10:00 in Chicago (organization A): Q4, flu season
REGISTERED = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)


def _hba1c(patient: Any, at: datetime) -> Observation:
    return Observation.objects.create(
        patient=patient,
        code="4548-4",
        display="HbA1c",
        category="laboratory",
        value_quantity=7,
        unit="%",
        effective_at=at,
    )


def _dataset() -> dict[str, Any]:
    """Five patients (all registered 2026-01-05):
    stale   T2D, HbA1c 120 days ago; woman of 66, never screened      -> hba1c, annual, flu, mammography
    recent  T2D, HbA1c 30 days ago; man                               -> annual, flu
    never   T2D recorded 2026-03-02, no HbA1c; annual visit 100 d ago -> hba1c, flu
    healthy woman of 36, flu shot 2026-09-20                          -> annual
    gone    inactive                                                  -> nothing
    """
    people: dict[str, Any] = {
        "stale": PatientFactory(sex="female", date_of_birth=date(1960, 5, 1), preferred_channel="sms"),
        "recent": PatientFactory(sex="male", date_of_birth=date(1970, 1, 1), preferred_channel="sms"),
        "never": PatientFactory(sex="male", date_of_birth=date(1965, 1, 1), preferred_channel="sms"),
        "healthy": PatientFactory(sex="female", date_of_birth=date(1990, 1, 1), preferred_channel="sms"),
        "gone": PatientFactory(sex="female", date_of_birth=date(1960, 1, 1), is_active=False),
    }
    Patient.objects.filter(pk__in=[p.pk for p in people.values()]).update(created_at=REGISTERED)
    for name in ("stale", "recent", "never", "gone"):
        Condition.objects.create(patient=people[name], code="44054006", display="Type 2 diabetes")
    Condition.objects.filter(patient=people["never"]).update(created_at=datetime(2026, 3, 2, 17, 0, tzinfo=UTC))
    _hba1c(people["stale"], NOW - timedelta(days=120))  # 2026-06-17: stale since 2026-09-15
    _hba1c(people["recent"], NOW - timedelta(days=30))
    AppointmentFactory(
        patient=people["never"], appointment_type="annual", status="completed", starts_at=NOW - timedelta(days=100)
    )
    Immunization.objects.create(
        patient=people["healthy"], vaccine_code="158", display="Flu", occurrence_date=date(2026, 9, 20)
    )
    return people


def test_builder_opens_a_gap_for_each_due_patient_with_the_day_it_opened(org_a) -> None:
    with organization_context(org_a):
        p = _dataset()
        written = build_care_gaps(None, NOW)
        # Hand count (see _dataset): hba1c 2 + annual 3 + flu 3 + mammography 1 = 9 gaps.
        assert written == 9
        gaps = {(g.recall_key, g.patient_id): g for g in CareGap.objects.all()}
    assert {key: gap.opened_on for key, gap in gaps.items()} == {
        ("hba1c", p["stale"].pk): date(2026, 9, 15),  # 2026-06-17 + 90 days
        ("hba1c", p["never"].pk): date(2026, 3, 2),  # diagnosis recorded
        ("annual_wellness", p["stale"].pk): date(2026, 1, 5),  # registered
        ("annual_wellness", p["recent"].pk): date(2026, 1, 5),
        ("annual_wellness", p["healthy"].pk): date(2026, 1, 5),
        ("flu_shot", p["stale"].pk): date(2026, 9, 1),  # the season opened
        ("flu_shot", p["recent"].pk): date(2026, 9, 1),
        ("flu_shot", p["never"].pk): date(2026, 9, 1),
        ("mammography", p["stale"].pk): date(2026, 1, 5),  # registered (50 in 2010)
    }
    assert {g.period for g in gaps.values() if g.recall_key == "hba1c"} == {"2026-Q4"}
    assert all(g.closed_on is None and g.closed_by == "" for g in gaps.values())
    # A second run the same day writes nothing new.
    with organization_context(org_a):
        assert build_care_gaps(NOW, NOW + timedelta(hours=1)) == 0
        assert CareGap.objects.count() == 9


def test_the_sex_and_age_condition_comes_from_the_patient_facts_when_they_exist(org_a) -> None:
    """The patients builder records which recalls' sex and age condition each patient meets; the
    gap builder reads that instead of decrypting (a fact that says "not eligible" wins), and
    falls back to decrypting for a patient who has no fact yet."""
    from analytics.models import PatientFact
    from analytics.refresh import build_patient_facts

    with organization_context(org_a):
        p = _dataset()
        build_patient_facts(None, NOW)
        eligible = dict(PatientFact.objects.values_list("patient_id", "recall_eligible"))
        assert eligible[p["stale"].pk] == ["mammography"]  # a woman of 66
        assert eligible[p["healthy"].pk] == [] and eligible[p["recent"].pk] == []  # 36; a man
        # Facts win over the record: say the 66-year-old is not eligible, and the 36-year-old is.
        PatientFact.objects.filter(patient=p["stale"]).update(recall_eligible=[])
        PatientFact.objects.filter(patient=p["healthy"]).update(recall_eligible=["mammography"])
        build_care_gaps(None, NOW)
        screened = set(CareGap.objects.filter(recall_key="mammography").values_list("patient_id", flat=True))
        assert screened == {p["healthy"].pk}
        # A new patient with no fact yet: decrypted, found eligible.
        newcomer = PatientFactory(sex="female", date_of_birth=date(1961, 2, 2))
        build_care_gaps(NOW, NOW + timedelta(hours=1))
        screened = set(CareGap.objects.filter(recall_key="mammography").values_list("patient_id", flat=True))
        assert newcomer.pk in screened


def test_an_hba1c_result_closes_the_gap_on_its_date(org_a) -> None:
    with organization_context(org_a):
        p = _dataset()
        build_care_gaps(None, NOW)
        _hba1c(p["stale"], datetime(2026, 10, 20, 14, 0, tzinfo=UTC))
        # The next refresh, five days later: one gap closes (stale's hba1c), nothing opens.
        assert build_care_gaps(NOW, NOW + timedelta(days=10)) == 1
        gap = CareGap.objects.get(recall_key="hba1c", patient=p["stale"])
        assert (gap.closed_on, gap.closed_by) == (date(2026, 10, 20), "observation")
        assert CareGap.objects.get(recall_key="hba1c", patient=p["never"]).closed_on is None
        # The diagnosis resolved: never's gap closes as no longer eligible, not as care.
        Condition.objects.filter(patient=p["never"]).update(clinical_status="resolved")
        build_care_gaps(NOW, NOW + timedelta(days=11))
        gap = CareGap.objects.get(recall_key="hba1c", patient=p["never"])
        assert (gap.closed_on, gap.closed_by) == (date(2026, 10, 26), "ineligible")
        # January: the flu season ended; its three open gaps expire.
        build_care_gaps(NOW, datetime(2027, 1, 10, 15, 0, tzinfo=UTC))
        flu = CareGap.objects.filter(recall_key="flu_shot")
        assert sorted((g.closed_by, g.closed_on) for g in flu) == [("expired", date(2027, 1, 10))] * 3


def test_an_annual_visit_and_a_flu_shot_close_their_gaps(org_a) -> None:
    with organization_context(org_a):
        p = _dataset()
        build_care_gaps(None, NOW)
        AppointmentFactory(
            patient=p["recent"],
            appointment_type="annual",
            status="completed",
            starts_at=datetime(2026, 10, 16, 15, 0, tzinfo=UTC),
        )
        Immunization.objects.create(
            patient=p["recent"], vaccine_code="141", display="Flu", occurrence_date=date(2026, 10, 17)
        )
        assert build_care_gaps(NOW, NOW + timedelta(days=3)) == 2
        closed = {g.recall_key: (g.closed_by, g.closed_on) for g in CareGap.objects.filter(patient=p["recent"])}
    assert closed == {
        "annual_wellness": ("visit", date(2026, 10, 16)),
        "flu_shot": ("immunization", date(2026, 10, 17)),
    }


def _recall_rule() -> Rule:
    rule = Rule(name="HbA1c recall", kind="preventive_recall", template_key="recall_hba1c", params={"recall": "hba1c"})
    rule.full_clean()
    rule.save()
    return rule


def test_one_definition_drives_both_the_recall_rule_and_the_worklist(org_a, monkeypatch) -> None:
    configure(org_a)
    with organization_context(org_a):
        p = _dataset()
        rule = _recall_rule()
    # Changed definition: a result counts for 150 days, so stale's (120 days old) still does.
    longer = dataclasses.replace(recalls.RECALLS["hba1c"], window=lambda now: now - timedelta(days=150))
    monkeypatch.setitem(recalls.RECALLS, "hba1c", longer)
    with organization_context(org_a):
        rule_materialize(rule=rule, now=NOW)
        build_care_gaps(None, NOW)
        assert set(OutboundMessage.objects.filter(rule=rule).values_list("patient_id", flat=True)) == {p["never"].pk}
        assert {g.patient_id for g in worklist(recall_key="hba1c")} == {p["never"].pk}
    # The definition as shipped (90 days): stale is due again, for both readers.
    monkeypatch.undo()
    with organization_context(org_a):
        rule_materialize(rule=rule, now=NOW)
        build_care_gaps(NOW, NOW)
        due = {p["never"].pk, p["stale"].pk}
        assert set(OutboundMessage.objects.filter(rule=rule).values_list("patient_id", flat=True)) == due
        assert {g.patient_id for g in worklist(recall_key="hba1c")} == due


def test_log_call_stores_the_outcome_and_an_encrypted_note(org_a, coordinator_user) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
        call = call_log_create(
            patient=patient,
            recall_key="hba1c",
            outcome="voicemail",
            note="Daughter says she is in Oaxaca until May",
            actor=coordinator_user,
            at=NOW,
        )
        stored = CallLog.objects.get(pk=call.pk)
        assert (stored.outcome, stored.note, stored.called_by, stored.called_by_label) == (
            "voicemail",
            "Daughter says she is in Oaxaca until May",
            coordinator_user,
            "coord@north.example",
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT note, outcome FROM engagement_calllog WHERE id = %s", [call.pk])
            raw_note, raw_outcome = cursor.fetchone()
        assert "Oaxaca" not in raw_note and raw_outcome == "voicemail"
        # Bad values are refused, never stored.
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError):
            call_log_create(patient=patient, recall_key="hba1c", outcome="shouted", actor=coordinator_user)
        with pytest.raises(ValidationError):
            call_log_create(patient=patient, recall_key="colonoscopy", outcome="reached", actor=coordinator_user)
        assert CallLog.objects.count() == 1


def test_send_recall_enqueues_exactly_once_per_period_with_the_rules_slot(org_a, coordinator_user) -> None:
    configure(org_a)
    with organization_context(org_a):
        p = _dataset()
        first = recall_send(patient=p["stale"], recall_key="hba1c", actor=coordinator_user, now=NOW)
        assert first.outcome == "no_rule" and not OutboundMessage.objects.exists()
        rule = _recall_rule()
        first = recall_send(patient=p["stale"], recall_key="hba1c", actor=coordinator_user, now=NOW)
        second = recall_send(patient=p["stale"], recall_key="hba1c", actor=coordinator_user, now=NOW)
        assert (first.outcome, second.outcome) == ("queued", "already_sent")
        assert first.message is not None and second.message == first.message
        assert (first.message.rule, first.message.slot, first.message.sent_by) == (
            rule,
            "hba1c:2026-Q4",
            coordinator_user,
        )
        # The rule's own scan does not send it again; it sends never's (1 + 1 = 2 messages).
        rule_materialize(rule=rule, now=NOW + timedelta(minutes=5))
        sent = sorted(OutboundMessage.objects.values_list("patient_id", flat=True))
        assert sent == sorted([p["stale"].pk, p["never"].pk])
        # Consent is respected like any message: opted out of both channels, the patient gets none.
        for channel in ("sms", "email"):
            consent_set(patient=p["recent"], channel=channel, status="opted_out", source="staff")
        refused = recall_send(patient=p["recent"], recall_key="hba1c", actor=coordinator_user, now=NOW)
        assert refused.outcome == "unreachable" and refused.message is None
        # Quiet hours: asked for at 02:00 in Chicago (08:00 UTC, CST), it goes at 08:00 local (14:00 UTC).
        owl = PatientFactory(preferred_channel="sms")
        night = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
        late = recall_send(patient=owl, recall_key="hba1c", actor=coordinator_user, now=night)
        assert late.outcome == "queued" and late.message is not None
        assert late.message.next_attempt_at == datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
        # stale, never, owl: one message each.
        assert OutboundMessage.objects.count() == 3


def test_worklist_rows_show_the_gaps_messages_and_calls(org_a, coordinator_user) -> None:
    configure(org_a)
    with organization_context(org_a):
        p = _dataset()
        _recall_rule()
        build_care_gaps(None, NOW)
        recall_send(patient=p["stale"], recall_key="hba1c", actor=coordinator_user, now=NOW)
        call_log_create(patient=p["stale"], recall_key="hba1c", outcome="no_answer", actor=coordinator_user, at=NOW)
        # A call about another gap of the same patient is not this gap's attempt.
        call_log_create(patient=p["stale"], recall_key="flu_shot", outcome="declined", actor=coordinator_user, at=NOW)
        rows = {(r.gap.recall_key, r.gap.patient_id): r for r in worklist_rows(list(worklist()))}
        # 9 open gaps; stale's hba1c has 1 message + 1 call, stale's flu 1 call, the rest none.
        assert len(rows) == 9
        hba1c = rows[("hba1c", p["stale"].pk)]
        assert ([m.slot for m in hba1c.messages], [c.outcome for c in hba1c.calls]) == (
            ["hba1c:2026-Q4"],
            ["no_answer"],
        )
        assert [c.outcome for c in rows[("flu_shot", p["stale"].pk)].calls] == ["declined"]
        assert sum(r.attempts for r in rows.values()) == 3
        # Filters: some attempts = the two gaps above; none = the other 7.
        assert {(g.recall_key, g.patient_id) for g in worklist(attempts="some")} == {
            ("hba1c", p["stale"].pk),
            ("flu_shot", p["stale"].pk),
        }
        assert worklist(attempts="none").count() == 7
        assert worklist(recall_key="flu_shot", attempts="none").count() == 2


def _gaps(opened_on: date, count: int, *, closed_after: int | None = None, closed_by: str = "observation") -> None:
    patients = [PatientFactory.build() for _ in range(count)]
    Patient.objects.bulk_create(patients)
    CareGap.objects.bulk_create(
        CareGap(
            patient=patient,
            recall_key="hba1c",
            period="2026-Q3",
            opened_on=opened_on,
            closed_on=None if closed_after is None else opened_on + timedelta(days=closed_after),
            closed_by="" if closed_after is None else closed_by,
            refreshed_at=NOW,
        )
        for patient in patients
    )


def test_gap_closure_rate_by_month(org_a) -> None:
    with organization_context(org_a):
        # July: 12 closed within 90 days (day 90 counts), 3 after 91 days, 2 expired, 3 still open = 20.
        _gaps(date(2026, 7, 3), 11, closed_after=10)
        _gaps(date(2026, 7, 20), 1, closed_after=90, closed_by="visit")
        _gaps(date(2026, 7, 20), 3, closed_after=91)
        _gaps(date(2026, 7, 5), 2, closed_after=30, closed_by="expired")
        _gaps(date(2026, 7, 9), 3)
        # August: 11 closed in time, 14 not (open) = 25. September: 20 in time, 15 not = 35.
        _gaps(date(2026, 8, 31), 11, closed_after=5, closed_by="immunization")
        _gaps(date(2026, 8, 1), 14)
        _gaps(date(2026, 9, 10), 20, closed_after=1)
        _gaps(date(2026, 9, 11), 15)
        # October (outside the range asked for): not counted.
        _gaps(date(2026, 10, 1), 12, closed_after=1)
        result = gap_closure(start=date(2026, 7, 1), end=date(2026, 9, 30), within_days=90, today=date(2026, 10, 15))
    table = result.table
    assert table.values[("2026-07", "closed")] == 12 and table.values[("2026-07", "not_closed")] == 8
    assert table.values[("2026-08", "closed")] == 11 and table.values[("2026-08", "not_closed")] == 14
    assert table.values[("2026-09", "closed")] == 20 and table.values[("2026-09", "not_closed")] == 15
    # 12 + 11 + 20 = 43 closed of 20 + 25 + 35 = 80 opened.
    assert table.values[("__total__", "closed")] == 43 and table.values[("__total__", "__total__")] == 80
    rows = {r["key"]: r for r in table.display_rows()}
    # July's 8 is a small cell: hidden, with partners in its row (12) and column (August's 14), and
    # then August's 11; July's and August's rates are not shown. September's and the total are.
    assert table.hidden == {
        ("2026-07", "not_closed"),
        ("2026-07", "closed"),
        ("2026-08", "not_closed"),
        ("2026-08", "closed"),
    }
    assert rows["2026-07"]["rates"] == [None] and rows["2026-08"]["rates"] == [None]
    value, low, high = rows["2026-09"]["rates"][0]
    assert value == pytest.approx(20 / 35)
    assert low is not None and high is not None and low < value < high
    assert rows["__total__"]["rates"][0][0] == pytest.approx(43 / 80)
    # No hidden count can be solved back from what is published.
    assert determined(table.values, table.lines(), table.hidden) == set()
    # Gaps opened after 2026-07-17 have not had 90 days by 2026-10-15: July to September are maturing.
    assert result.maturing == ["2026-07", "2026-08", "2026-09"]
