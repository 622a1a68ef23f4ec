"""Saved cohorts: the definition is validated, selects the right patients, and outreach campaigns
reach exactly the cohort (of their own organization)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.cohorts import (
    cohort_patient_ids,
    cohort_patient_ids_by_id,
    cohort_save,
    cohort_size_display,
    cohort_sizes,
)
from analytics.forms import CohortForm
from analytics.models import Cohort
from analytics.refresh import refresh_run
from engagement.models import OutboundMessage, Rule
from engagement.services import consent_set, rule_materialize, rule_save
from healthcrm.tenancy import organization_context
from patients.models import Condition, Observation
from tests.engagement.conftest import configure
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
MIDDLE, YOUNG = date(1976, 3, 1), date(1996, 3, 1)  # 50 and 30 on NOW: bands 40-64, 18-39


def _patient(born: date, *codes: str, sex: str = "female", language: str = "en", **extra: Any) -> Any:
    patient = PatientFactory(date_of_birth=born, sex=sex, preferred_language=language, preferred_channel="sms", **extra)
    for code in codes:
        Condition.objects.create(patient=patient, code=code, display="Problem")
    return patient


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "Enter a valid JSON"),
        ('{"conditions": ["diabetes"]}', "Unknown conditions: diabetes"),
        ('{"conditions": "asthma"}', "must be a list"),
        ('{"age_band": ["40-64"]}', "Unknown key: age_band"),
        ('{"age_bands": ["40-60"]}', "Unknown age bands: 40-60"),
        ('{"risk_tiers": [5]}', "tiers 1 to 4"),
        ('{"risk_tiers": ["4"]}', "tiers 1 to 4"),
        ('{"uncontrolled": "yes"}', "true, false or absent"),
        ('{"languages": ["<script>"]}', "language codes"),
        ('["asthma"]', "must be a JSON object"),
    ],
)
def test_a_bad_definition_is_a_form_error(raw: str, message: str) -> None:
    form = CohortForm(data={"name": "Diabetics", "definition": raw})
    assert not form.is_valid()
    assert message in " ".join(str(e) for e in form.errors["definition"])


def test_a_good_definition_is_normalized() -> None:
    form = CohortForm(
        data={
            "name": " Diabetics ",
            "definition": '{"conditions": ["type2_diabetes", "ckd"], "sex": [], "risk_tiers": [4, 3]}',
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data == {
        "name": "Diabetics",
        "definition": {"conditions": ["type2_diabetes", "ckd"], "risk_tiers": [3, 4]},
    }


def test_cohort_names_are_unique_per_organization(org_a: Any, org_b: Any) -> None:
    with organization_context(org_a):
        cohort_save(name="Diabetics", definition={})
        with pytest.raises(ValidationError, match="already exists"):
            cohort_save(name="Diabetics", definition={})
    with organization_context(org_b):
        assert cohort_save(name="Diabetics", definition={}).pk


def test_cohort_selection_over_the_facts(org_a: Any) -> None:
    with organization_context(org_a):
        diabetic_es = _patient(MIDDLE, "44054006", language="es")
        diabetic_uncontrolled = _patient(MIDDLE, "44054006")
        Observation.objects.create(
            patient=diabetic_uncontrolled,
            code="4548-4",
            display="HbA1c",
            category="laboratory",
            unit="%",
            value_quantity=Decimal("10.1"),
            effective_at=NOW - timedelta(days=10),
        )
        ckd_man = _patient(MIDDLE, "431855005", sex="male")  # CKD stage 1
        young_diabetic = _patient(YOUNG, "44054006")
        asthmatic = _patient(MIDDLE, "195967001")
        _patient(MIDDLE, "44054006", is_active=False)  # inactive: never selected
        refresh_run(full=True, now=NOW)

        def ids(**definition: Any) -> list[int]:
            return cohort_patient_ids(cohort_save(name=repr(definition), definition=definition))

        # Diabetes or CKD, 40-64: the three middle-aged ones (the young diabetic and the asthmatic are not).
        assert ids(conditions=["type2_diabetes", "ckd"], age_bands=["40-64"]) == sorted(
            [diabetic_es.pk, diabetic_uncontrolled.pk, ckd_man.pk]
        )
        # ... and women: the CKD patient is a man.
        assert ids(conditions=["type2_diabetes", "ckd"], age_bands=["40-64"], sex=["female"]) == sorted(
            [diabetic_es.pk, diabetic_uncontrolled.pk]
        )
        # Spanish speakers: one.
        assert ids(languages=["es"]) == [diabetic_es.pk]
        # Uncontrolled: the HbA1c of 10.1 (> 9); "not uncontrolled" is everyone else active (4).
        assert ids(uncontrolled=True) == [diabetic_uncontrolled.pk]
        assert ids(uncontrolled=False) == sorted([diabetic_es.pk, ckd_man.pk, young_diabetic.pk, asthmatic.pk])
        # Tier 2: diabetes (1) + HbA1c > 9 (2) = 3 points; every other patient has 1 point (tier 1).
        assert ids(risk_tiers=[2, 3, 4]) == [diabetic_uncontrolled.pk]
        # No filter: the 5 active patients.
        assert len(ids()) == 5
        # The list page's sizes, all in one query, agree with each cohort's own selection.
        saved = list(Cohort.objects.all())
        with CaptureQueriesContext(connection) as queries:
            sizes = cohort_sizes(saved)
        assert len(queries) == 1
        assert sizes == {cohort.pk: len(cohort_patient_ids(cohort)) for cohort in saved}


def test_small_cohort_sizes_are_suppressed_unless_exact() -> None:
    assert [cohort_size_display(n, exact=False) for n in (0, 1, 10, 11)] == [0, "<11", "<11", 11]
    assert cohort_size_display(3, exact=True) == 3


def test_campaign_with_a_cohort_reaches_only_its_opted_in_patients(org_a: Any) -> None:
    configure(org_a)
    with organization_context(org_a):
        in_cohort = _patient(MIDDLE, "195967001")
        in_cohort_not_opted_in = _patient(MIDDLE, "195967001")
        outside = _patient(MIDDLE)  # opted in, no asthma
        for patient in (in_cohort, outside):
            consent_set(patient=patient, channel="sms", status="opted_in", source="staff")
            consent_set(patient=patient, kind="marketing", status="opted_in", source="staff")  # campaigns need it
        refresh_run(full=True, now=NOW)
        cohort = cohort_save(name="Asthma", definition={"conditions": ["asthma"]})
        assert list(cohort_patient_ids_by_id(cohort.pk) or []) == sorted([in_cohort.pk, in_cohort_not_opted_in.pk])
        rule = rule_save(
            name="Asthma education",
            kind="campaign",
            template_key="appointment_reminder",
            params={"send_on": "2026-11-02", "cohort_id": cohort.pk},
        )
        rule_materialize(rule=rule, now=NOW)
        rule_materialize(rule=rule, now=NOW + timedelta(hours=1))  # again: nothing new
        messages = list(OutboundMessage.objects.filter(rule=rule))
    # Two in the cohort, one of them opted in: one message, once.
    assert [m.patient_id for m in messages] == [in_cohort.pk]
    assert outside.pk not in {m.patient_id for m in messages}


def test_a_campaign_cannot_use_another_organizations_cohort(org_a: Any, org_b: Any) -> None:
    configure(org_a)
    with organization_context(org_b):
        theirs = cohort_save(name="Theirs", definition={})
    with organization_context(org_a):
        patient = _patient(MIDDLE)
        consent_set(patient=patient, channel="sms", status="opted_in", source="staff")
        refresh_run(full=True, now=NOW)
        assert cohort_patient_ids_by_id(theirs.pk) is None  # not found under A (tenant manager + RLS)
        with pytest.raises(ValidationError, match="saved cohort of this organization"):
            rule_save(name="X", kind="campaign", template_key="appointment_reminder", params={"cohort_id": theirs.pk})
        with pytest.raises(ValidationError, match="saved cohort of this organization"):
            rule_save(name="Y", kind="campaign", template_key="appointment_reminder", params={"cohort_id": "abc"})
        # A rule row that names it anyway (saved before, or by hand) sends nothing rather than everyone.
        rule = Rule(name="Z", kind="campaign", template_key="appointment_reminder", params={"cohort_id": theirs.pk})
        rule.full_clean()
        rule.save()
        assert rule_materialize(rule=rule, now=NOW) == 0
        assert not OutboundMessage.objects.filter(rule=rule).exists()


def test_without_a_resolver_a_cohort_campaign_is_refused(org_a: Any, settings: Any) -> None:
    settings.ENGAGEMENT_COHORT_RESOLVER = ""
    with organization_context(org_a):
        cohort = cohort_save(name="All", definition={})
        with pytest.raises(ValidationError, match="saved cohort of this organization"):
            rule_save(name="X", kind="campaign", template_key="appointment_reminder", params={"cohort_id": cohort.pk})


def test_a_cohort_narrows_the_other_campaign_filters(org_a: Any) -> None:
    configure(org_a)
    with organization_context(org_a):
        spanish = _patient(MIDDLE, "195967001", language="es")
        english = _patient(MIDDLE, "195967001", language="en")
        for patient in (spanish, english):
            consent_set(patient=patient, channel="sms", status="opted_in", source="staff")
            consent_set(patient=patient, kind="marketing", status="opted_in", source="staff")  # campaigns need it
        refresh_run(full=True, now=NOW)
        cohort = cohort_save(name="Asthma", definition={"conditions": ["asthma"]})
        rule = rule_save(
            name="Asthma, in Spanish",
            kind="campaign",
            template_key="appointment_reminder",
            params={"cohort_id": cohort.pk, "languages": ["es"]},
        )
        rule_materialize(rule=rule, now=NOW)
        # Both have asthma; only one prefers Spanish.
        assert list(OutboundMessage.objects.filter(rule=rule).values_list("patient_id", flat=True)) == [spanish.pk]
