"""Education and wellness campaigns: a cohort, on a date, to patients who opted in — once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from engagement.models import OutboundMessage, Rule
from engagement.services import consent_set, rule_materialize, rule_save
from healthcrm.tenancy import organization_context
from patients.models import Condition
from tests.engagement.conftest import configure
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)


def _campaign(**params: object) -> Rule:
    rule = Rule(name="Diabetes education", kind="campaign", template_key="appointment_reminder", params=params)
    rule.full_clean()
    rule.save()
    return rule


def _patient(*, born: date, language: str = "es", opted_in: bool = True, diabetic: bool = True):  # type: ignore[no-untyped-def]
    patient = PatientFactory(preferred_channel="sms", preferred_language=language, date_of_birth=born)
    if diabetic:
        Condition.objects.create(patient=patient, code="44054006", display="Type 2 diabetes")
    if opted_in:
        consent_set(patient=patient, channel="sms", status="opted_in", source="staff")
        consent_set(patient=patient, kind="marketing", status="opted_in", source="staff")  # campaigns need it
    return patient


def test_campaign_reaches_the_opted_in_cohort_once_on_its_date(org_a) -> None:
    configure(org_a)
    with organization_context(org_a):
        target = _patient(born=date(1966, 5, 1))
        not_opted_in = _patient(born=date(1966, 5, 1), opted_in=False)
        too_young = _patient(born=date(2000, 5, 1))
        other_language = _patient(born=date(1966, 5, 1), language="en")
        not_diabetic = _patient(born=date(1966, 5, 1), diabetic=False)
        rule = _campaign(send_on="2026-11-03", condition_code="44054006", languages=["es"], age_min=40, age_max=70)

        assert rule_materialize(rule=rule, now=NOW) == 0  # before its date
        rule_materialize(rule=rule, now=NOW + timedelta(days=1))
        rule_materialize(rule=rule, now=NOW + timedelta(days=2))  # again: nothing new
        messages = list(OutboundMessage.objects.filter(rule=rule))
    assert [m.patient_id for m in messages] == [target.pk]
    assert (messages[0].slot, messages[0].subject_type) == ("campaign:2026-11-03", "campaign")
    assert {not_opted_in.pk, too_young.pk, other_language.pk, not_diabetic.pk}.isdisjoint(
        m.patient_id for m in messages
    )


def test_campaign_with_a_malformed_date_is_refused(org_a) -> None:
    with organization_context(org_a), pytest.raises(ValidationError, match="send_on must be a date"):
        rule_save(name="Bad", kind="campaign", template_key="appointment_reminder", params={"send_on": "soon"})


def test_daily_adherence_reminder_at_the_patients_time_for_opted_in_patients(org_a) -> None:
    from datetime import time
    from zoneinfo import ZoneInfo

    from patients.models import Medication

    configure(org_a)
    chicago = ZoneInfo("America/Chicago")
    with organization_context(org_a):
        wants = PatientFactory(preferred_channel="sms", contact_window_start=time(7, 30), contact_window_end=time(20))
        consent_set(patient=wants, channel="sms", status="opted_in", source="staff")
        silent = PatientFactory(preferred_channel="sms")  # not opted in
        no_medication = PatientFactory(preferred_channel="sms")
        consent_set(patient=no_medication, channel="sms", status="opted_in", source="staff")
        for patient in (wants, silent):
            Medication.objects.create(patient=patient, name="Metformin 500 mg")
        rule = Rule(name="Take your medicine", kind="adherence", template_key="appointment_reminder")
        rule.full_clean()
        rule.save()
        now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # 06:00 in Chicago
        rule_materialize(rule=rule, now=now)
        rule_materialize(rule=rule, now=now + timedelta(minutes=5))
        messages = list(OutboundMessage.objects.filter(rule=rule).order_by("due_at"))
    assert [(m.patient_id, m.slot) for m in messages] == [(wants.pk, "2026-11-02"), (wants.pk, "2026-11-03")]
    assert messages[0].due_at.astimezone(chicago).time() == time(7, 30)
    assert all(m.is_urgent and m.subject_type == "adherence" for m in messages)
