"""Population health: chronic-condition prevalence by band, risk tiers, small-cell suppression.

Every expected number is counted by hand from the patients built in the test (see the comments)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from analytics.models import PatientRisk
from analytics.population import (
    ICD10CM,
    WITH,
    WITHOUT,
    prevalence_table,
    risk_points,
    risk_tier,
    tier_table,
)
from analytics.refresh import refresh_run
from analytics.suppression import HIDDEN, TOTAL, determined
from healthcrm.tenancy import organization_context
from patients.models import Condition, Observation
from patients.services import blood_pressure_components
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
MIDDLE = date(1976, 3, 1)  # 50 on NOW: band 40-64
YOUNG = date(1996, 3, 1)  # 30: band 18-39
OLDER = date(1956, 3, 1)  # 70: band 65-74


def _patient(born: date, *codes: str, sex: str = "female", language: str = "en", **extra: Any) -> Any:
    patient = PatientFactory(date_of_birth=born, sex=sex, preferred_language=language, **extra)
    for code in codes:
        Condition.objects.create(patient=patient, code=code, display="Problem")
    return patient


HTN = "38341003"


def test_hypertension_prevalence_by_age_band_counts_active_patients_once(org_a: Any) -> None:
    with organization_context(org_a):
        # 40-64: 12 with hypertension, 12 without (24).
        for _ in range(10):
            _patient(MIDDLE, HTN)
        _patient(MIDDLE, HTN, HTN)  # two problem-list rows: one patient
        icd = _patient(MIDDLE)
        Condition.objects.create(patient=icd, code_system=ICD10CM, code="I10", display="Essential hypertension")
        for _ in range(10):
            _patient(MIDDLE)
        resolved = _patient(MIDDLE)
        Condition.objects.create(patient=resolved, code=HTN, display="Old", clinical_status="resolved")
        _patient(MIDDLE, "195967001")  # asthma only
        _patient(MIDDLE, HTN, is_active=False)  # inactive: in no count at all
        # 18-39: 11 with, 11 without (22).
        for _ in range(11):
            _patient(YOUNG, HTN)
        for _ in range(11):
            _patient(YOUNG)
        # 65-74: 2 with, 1 without (3).
        _patient(OLDER, HTN)
        _patient(OLDER, HTN)
        _patient(OLDER)
        refresh_run(full=True, now=NOW)
        table = prevalence_table("hypertension", "age_band")

    # The counts before suppression, by hand: with 11 / 12 / 2 = 25, without 11 / 12 / 1 = 24, 49 active.
    assert table.values[("18-39", WITH)] == 11 and table.values[("18-39", WITHOUT)] == 11
    assert table.values[("40-64", WITH)] == 12 and table.values[("40-64", WITHOUT)] == 12
    assert table.values[("65-74", WITH)] == 2 and table.values[("65-74", WITHOUT)] == 1
    assert table.values[("0-17", TOTAL)] == 0 and table.values[("75+", TOTAL)] == 0
    assert (table.values[(TOTAL, WITH)], table.values[(TOTAL, TOTAL)]) == (25, 49)

    rows = {row["key"]: row for row in table.display_rows()}
    # 40-64 is published: 12 of 24 = 50 %.
    assert rows["40-64"]["cells"] == [12, 12] and rows["40-64"]["total"] == 24
    assert rows["40-64"]["rates"][0][0] == pytest.approx(0.5)
    # 65-74 (2 and 1, total 3) is hidden, and so its rate; the published totals cannot give it back.
    assert rows["65-74"]["cells"] == [HIDDEN, HIDDEN] and rows["65-74"]["total"] == HIDDEN
    assert rows["65-74"]["rates"] == [None]
    assert determined(table.published(), table.lines(), table.hidden) == set()
    assert rows[TOTAL]["cells"] == [25, 24] and rows[TOTAL]["total"] == 49
    # The CSV writes the same cells.
    csv = {line[0]: line for line in table.csv_rows()}
    assert csv["65–74"][1:4] == [HIDDEN, HIDDEN, HIDDEN]
    assert csv["40–64"][1:5] == [12, 12, 24, "50.0"]


def test_prevalence_by_sex_and_language_and_any_condition(org_a: Any) -> None:
    with organization_context(org_a):
        _patient(MIDDLE, "44054006", sex="male", language="es")  # T2DM
        _patient(MIDDLE, "55822004", sex="female", language="es")  # hyperlipidemia
        _patient(YOUNG, sex="female", language="en")
        _patient(YOUNG, "271737000", sex="male", language="en")  # anemia: not in the catalogue
        refresh_run(full=True, now=NOW)
        by_sex = prevalence_table("type2_diabetes", "sex")
        by_language = prevalence_table("any", "language")

    # Type 2 diabetes: 1 of 2 men, 0 of 2 women.
    assert (by_sex.values[("male", WITH)], by_sex.values[("male", TOTAL)]) == (1, 2)
    assert (by_sex.values[("female", WITH)], by_sex.values[("female", TOTAL)]) == (0, 2)
    # Any chronic condition: both "es" patients (T2DM, hyperlipidemia), none of the two "en" ones.
    assert [key for key, _ in by_language.rows] == ["en", "es"]
    assert (by_language.values[("es", WITH)], by_language.values[("en", WITH)]) == (2, 0)
    # Every non-zero cell here is under 11: nothing but zeros is shown.
    assert by_language.cell("es", WITH) == HIDDEN and by_language.cell("en", WITH) == 0


def test_tier_rules() -> None:
    # Conditions cap at 3, uncontrolled measures 2 each, no-shows cap at 2, acute visits 2 each up to 4.
    assert risk_points(conditions=5, bp_uncontrolled=True, a1c_uncontrolled=True, no_shows=7, acute=3) == 13
    assert [risk_tier(p) for p in (0, 1, 2, 3, 4, 5, 6, 13)] == [1, 1, 2, 2, 3, 3, 4, 4]


def _bp(patient: Any, systolic: int, when: datetime) -> None:
    Observation.objects.create(
        patient=patient,
        code="85354-9",
        display="Blood pressure panel",
        category="vital-signs",
        unit="mm[Hg]",
        components=blood_pressure_components(Decimal(systolic), Decimal(80)),
        effective_at=when,
    )


def _lab(patient: Any, code: str, value: str, when: datetime, unit: str = "%") -> None:
    category = "laboratory" if code == "4548-4" else "vital-signs"
    Observation.objects.create(
        patient=patient,
        code=code,
        display=code,
        category=category,
        unit=unit,
        value_quantity=Decimal(value),
        effective_at=when,
    )


def _visit(patient: Any, days_ago: int, status: str, appointment_type: str = "follow_up") -> None:
    starts = NOW - timedelta(days=days_ago)
    AppointmentFactory(
        patient=patient,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=30),
        status=status,
        status_changed_at=starts,
        appointment_type=appointment_type,
    )


def test_risk_tier_of_built_patients(org_a: Any) -> None:
    with organization_context(org_a):
        # High: hypertension + T2DM (2), last systolic 150 (2; an older 120 does not count),
        # last HbA1c 9.5 (2) = 6 points -> tier 4.
        high = _patient(MIDDLE, HTN, "44054006")
        _bp(high, 120, NOW - timedelta(days=200))
        _bp(high, 150, NOW - timedelta(days=10))
        _lab(high, "4548-4", "9.5", NOW - timedelta(days=30))
        # Low: hypertension (1); a 150 last year but 130 last: controlled = 1 point -> tier 1.
        low = _patient(MIDDLE, HTN)
        _bp(low, 150, NOW - timedelta(days=300))
        _bp(low, 130, NOW - timedelta(days=5))
        # Elevated: no condition; two no-shows this year (2; a third 400 days ago is outside the 12
        # months), one attended post-discharge visit 60 days ago (2) = 4 points -> tier 3.
        elevated = _patient(YOUNG)
        _visit(elevated, 20, "no_show")
        _visit(elevated, 90, "no_show")
        _visit(elevated, 400, "no_show")
        _visit(elevated, 60, "completed", "post_discharge")
        # Moderate: asthma (1), a lone systolic reading of exactly 140 (>= 140: 2), HbA1c exactly 9
        # (not > 9: 0), a cancelled post-discharge visit (not counted) = 3 points -> tier 2.
        moderate = _patient(OLDER, "195967001")
        _lab(moderate, "8480-6", "140", NOW - timedelta(days=3), unit="mm[Hg]")
        _lab(moderate, "4548-4", "9.0", NOW - timedelta(days=3))
        _visit(moderate, 30, "cancelled", "post_discharge")
        run = refresh_run(full=True, now=NOW)
        risks = {r.patient_id: r for r in PatientRisk.objects.all()}
        tiers = tier_table()

    assert run.rows["risk"] == 4
    order = list(run.rows)
    assert order.index("appointments") < order.index("risk")  # risk reads the appointment facts
    h, lo, e, m = risks[high.pk], risks[low.pk], risks[elevated.pk], risks[moderate.pk]
    assert (h.conditions, h.bp_uncontrolled, h.a1c_uncontrolled, h.points, h.tier) == (
        ["hypertension", "type2_diabetes"],
        True,
        True,
        6,
        4,
    )
    assert (lo.conditions, lo.bp_uncontrolled, lo.points, lo.tier) == (["hypertension"], False, 1, 1)
    assert (e.condition_count, e.no_shows_12m, e.acute_12m, e.points, e.tier) == (0, 2, 1, 4, 3)
    assert (m.conditions, m.bp_uncontrolled, m.a1c_uncontrolled, m.acute_12m, m.points, m.tier) == (
        ["asthma"],
        True,
        False,
        0,
        3,
        2,
    )
    # Tier by number of conditions: none -> tier 3 (elevated); one -> tier 1 (low) and tier 2
    # (moderate); two -> tier 4 (high).
    assert tiers.values[("0", "3")] == 1
    assert (tiers.values[("1", "1")], tiers.values[("1", "2")]) == (1, 1)
    assert tiers.values[("2", "4")] == 1
    assert tiers.values[(TOTAL, TOTAL)] == 4


def test_incremental_refresh_recomputes_a_patient_whose_condition_changed(org_a: Any) -> None:
    with organization_context(org_a):
        # On the test's (ticking) wall clock: incremental runs compare rows' updated_at with it.
        patient = _patient(MIDDLE)
        refresh_run(full=True)
        assert PatientRisk.objects.get(patient=patient).conditions == []
        Condition.objects.create(patient=patient, code="13645005", display="COPD")
        refresh_run()
        risk = PatientRisk.objects.get(patient=patient)
    # One condition: 1 point, tier 1; the COPD is found at the next 15-minute refresh.
    assert (risk.conditions, risk.points, risk.tier) == (["copd"], 1, 1)
