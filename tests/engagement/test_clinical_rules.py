"""Clinical outreach rules: medication refills and preventive-care recalls, each sent once per slot."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from engagement.management.commands.seed_engagement import RULES, TEMPLATES, seed_organization
from engagement.models import MessageTemplate, OutboundMessage, Rule
from engagement.recalls import RECALLS, age_on
from engagement.services import rule_materialize
from engagement.templating import lint, variables_in
from healthcrm.tenancy import organization_context
from patients.models import Condition, Immunization, Medication, Observation
from tests.engagement.conftest import configure
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 10, 15, 15, 0, tzinfo=UTC)


def _rule(kind: str, template_key: str, **params: object) -> Rule:
    rule = Rule(name=f"{kind} {template_key}", kind=kind, template_key=template_key, params=params)
    rule.full_clean()
    rule.save()
    return rule


def _messages(rule: Rule) -> list[OutboundMessage]:
    return list(OutboundMessage.objects.filter(rule=rule).order_by("pk"))


# -- Medication refills ----------------------------------------------------------------------------


def test_refill_rule_queues_one_message_per_medication_due_within_the_offset(org_a) -> None:
    configure(org_a)
    with organization_context(org_a):
        today = NOW.astimezone(org_a.zone).date()
        patient = PatientFactory(preferred_channel="sms")
        due = Medication.objects.create(patient=patient, name="Metformin 500 mg", refill_due=today + timedelta(days=3))
        due_today = Medication.objects.create(patient=patient, name="Lisinopril", refill_due=today)
        Medication.objects.create(patient=patient, name="Later", refill_due=today + timedelta(days=20))
        Medication.objects.create(patient=patient, name="Past", refill_due=today - timedelta(days=1))
        Medication.objects.create(
            patient=patient, name="Stopped", refill_due=today + timedelta(days=2), status="stopped"
        )
        Medication.objects.create(patient=patient, name="No date")
        rule = _rule("medication_refill", "medication_refill", days_before=7)

        rule_materialize(rule=rule, now=NOW)
        messages = _messages(rule)
        assert {(m.subject_type, m.subject_id, m.slot) for m in messages} == {
            ("medication", due.pk, due.refill_due.isoformat()),
            ("medication", due_today.pk, today.isoformat()),
        }
        assert all(m.channel == "sms" and m.patient_id == patient.pk for m in messages)

        # Idempotent: the beat runs again (and again later the same day).
        rule_materialize(rule=rule, now=NOW)
        rule_materialize(rule=rule, now=NOW + timedelta(hours=3))
        assert len(_messages(rule)) == 2

        # A new refill date is a new occurrence.
        due.refill_due = today + timedelta(days=5)
        due.save()
        rule_materialize(rule=rule, now=NOW)
        assert len(_messages(rule)) == 3


def test_refill_rule_skips_unreachable_and_other_organizations(org_a, org_b) -> None:
    configure(org_a)
    configure(org_b)
    with organization_context(org_b):
        other = PatientFactory()
        Medication.objects.create(patient=other, name="X", refill_due=NOW.date() + timedelta(days=1))
    with organization_context(org_a):
        silent = PatientFactory(preferred_channel="none")
        Medication.objects.create(patient=silent, name="Y", refill_due=NOW.date() + timedelta(days=1))
        rule = _rule("medication_refill", "medication_refill", days_before=7)
        assert rule_materialize(rule=rule, now=NOW) == 0
        assert _messages(rule) == []


def test_refill_templates_never_name_the_medication() -> None:
    for (key, _language, channel), (_subject, body) in TEMPLATES.items():
        if key == "medication_refill" or key.startswith("recall_"):
            assert channel == "sms"
            assert lint(body=body, channel="sms") == []
            assert set(variables_in(body)) <= {"first_name", "clinic_name", "clinic_phone"}


# -- Preventive-care recalls -----------------------------------------------------------------------


def test_hba1c_recall_for_diabetics_without_a_recent_result(org_a) -> None:
    configure(org_a)
    with organization_context(org_a):
        stale, recent, missing, healthy, resolved = (PatientFactory(preferred_channel="sms") for _ in range(5))
        for patient in (stale, recent, missing):
            Condition.objects.create(patient=patient, code="44054006", display="Type 2 diabetes")
        Condition.objects.create(patient=resolved, code="44054006", display="T2D", clinical_status="resolved")
        for patient, days in ((stale, 120), (recent, 30)):
            Observation.objects.create(
                patient=patient,
                code="4548-4",
                display="HbA1c",
                category="laboratory",
                value_quantity=7,
                unit="%",
                effective_at=NOW - timedelta(days=days),
            )
        rule = _rule("preventive_recall", "recall_hba1c", recall="hba1c")
        rule_materialize(rule=rule, now=NOW)
        rule_materialize(rule=rule, now=NOW + timedelta(days=1))
        messages = _messages(rule)
        assert {m.patient_id for m in messages} == {stale.pk, missing.pk}
        assert {m.slot for m in messages} == {"hba1c:2026-Q4"}
        assert all(m.subject_type == "recall" for m in messages)
        # The next quarter is a new period.
        rule_materialize(rule=rule, now=datetime(2027, 1, 10, 15, 0, tzinfo=UTC))
        assert {m.slot for m in _messages(rule)} == {"hba1c:2026-Q4", "hba1c:2027-Q1"}


def test_annual_wellness_recall_skips_patients_seen_this_year(org_a) -> None:
    configure(org_a)
    with organization_context(org_a):
        seen, due, booked_only = (PatientFactory(preferred_channel="sms") for _ in range(3))
        for patient, status in ((seen, "completed"), (booked_only, "booked")):
            AppointmentFactory(
                patient=patient, appointment_type="annual", status=status, starts_at=NOW - timedelta(days=100)
            )
        rule = _rule("preventive_recall", "recall_annual_wellness", recall="annual_wellness")
        rule_materialize(rule=rule, now=NOW)
        rule_materialize(rule=rule, now=NOW)
        ids = [m.patient_id for m in _messages(rule)]
        assert sorted(ids) == sorted([due.pk, booked_only.pk])
        assert {m.slot for m in _messages(rule)} == {"annual_wellness:2026"}


def test_flu_recall_only_in_autumn_and_not_after_a_shot(org_a) -> None:
    configure(org_a)
    with organization_context(org_a):
        vaccinated, last_year, due = (PatientFactory(preferred_channel="sms") for _ in range(3))
        Immunization.objects.create(
            patient=vaccinated, vaccine_code="158", display="Flu", occurrence_date=date(2026, 9, 20)
        )
        Immunization.objects.create(
            patient=last_year, vaccine_code="141", display="Flu", occurrence_date=date(2025, 10, 1)
        )
        rule = _rule("preventive_recall", "recall_flu_shot", recall="flu_shot")
        assert rule_materialize(rule=rule, now=datetime(2026, 7, 15, 15, 0, tzinfo=UTC)) == 0
        rule_materialize(rule=rule, now=NOW)
        rule_materialize(rule=rule, now=NOW + timedelta(days=30))
        messages = _messages(rule)
        assert sorted(m.patient_id for m in messages) == sorted([last_year.pk, due.pk])
        assert {m.slot for m in messages} == {"flu_shot:2026"}


def test_mammography_recall_for_women_50_to_74_without_a_recent_screening(org_a) -> None:
    configure(org_a)
    with organization_context(org_a):
        due = PatientFactory(sex="female", date_of_birth=date(1966, 1, 1), preferred_channel="sms")
        screened = PatientFactory(sex="female", date_of_birth=date(1960, 1, 1), preferred_channel="sms")
        PatientFactory(sex="female", date_of_birth=date(1986, 1, 1), preferred_channel="sms")  # too young
        PatientFactory(sex="female", date_of_birth=date(1940, 1, 1), preferred_channel="sms")  # too old
        PatientFactory(sex="male", date_of_birth=date(1960, 1, 1), preferred_channel="sms")
        Observation.objects.create(
            patient=screened,
            code="24606-6",
            display="MG Breast Screening",
            category="laboratory",
            value_text="BI-RADS 1",
            effective_at=NOW - timedelta(days=365),
        )
        rule = _rule("preventive_recall", "recall_mammography", recall="mammography")
        rule_materialize(rule=rule, now=NOW)
        rule_materialize(rule=rule, now=NOW + timedelta(days=60))  # 2027: same two-year period
        messages = _messages(rule)
        assert [m.patient_id for m in messages] == [due.pk]
        assert messages[0].slot == "mammography:2026-2027"


def test_age_on_birthday_edges() -> None:
    assert age_on(date(1976, 10, 15), date(2026, 10, 15)) == 50
    assert age_on(date(1976, 10, 16), date(2026, 10, 15)) == 49


def test_seed_adds_refill_and_recall_rules_and_templates(org_a) -> None:
    seed_organization(org_a)
    seed_organization(org_a)
    with organization_context(org_a):
        kinds = set(Rule.objects.values_list("kind", flat=True))
        assert {"medication_refill", "preventive_recall"} <= kinds
        recalls = {r.params["recall"] for r in Rule.objects.filter(kind="preventive_recall")}
        assert recalls == set(RECALLS)
        for key in ["medication_refill", *(r.template_key for r in RECALLS.values())]:
            assert set(MessageTemplate.objects.filter(key=key).values_list("language", flat=True)) == {"en", "es"}
    assert len({spec["name"] for spec in RULES}) == len(RULES)


# -- Lab results notices ---------------------------------------------------------------------------


def _lab(patient, *, category: str = "laboratory", days_ago: int = 0) -> Observation:
    from django.utils import timezone

    return Observation.objects.create(
        patient=patient,
        code="2339-0",
        display="Glucose",
        category=category,
        value_quantity=180,
        unit="mg/dL",
        effective_at=timezone.now() - timedelta(days=days_ago),
    )


def test_recording_a_lab_result_queues_one_notice_a_day_without_the_result(
    org_a, django_capture_on_commit_callbacks
) -> None:
    seed_organization(org_a)
    configure(org_a)
    with organization_context(org_a):
        patient = PatientFactory(preferred_channel="sms")
        quiet = PatientFactory(preferred_channel="sms")
    with django_capture_on_commit_callbacks(execute=True):
        with organization_context(org_a):
            _lab(patient)
            _lab(patient)  # a second result the same day: still one notice
            _lab(quiet, category="vital-signs")
            _lab(quiet, days_ago=60)  # history being back-entered or imported
    with organization_context(org_a):
        notices = list(OutboundMessage.objects.filter(rule__kind="lab_results"))
    assert [(n.patient_id, n.subject_type, n.subject_id, n.body) for n in notices] == [
        (patient.pk, "lab_results", None, "")
    ]


def test_a_rolled_back_lab_result_is_never_announced(org_a, django_capture_on_commit_callbacks) -> None:
    seed_organization(org_a)
    configure(org_a)
    with organization_context(org_a):
        patient = PatientFactory(preferred_channel="sms")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with organization_context(org_a):
            _lab(patient)
    assert len(callbacks) == 1  # would run only after a commit
    with organization_context(org_a):
        assert not OutboundMessage.objects.filter(rule__kind="lab_results").exists()
