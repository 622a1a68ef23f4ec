"""Quality measures on small hand-built clinics: each measure's populations and rate (counted by hand
in each test), period boundaries, attribution, the inverse measure, suppression and treatment
effectiveness. Time is frozen at NOW (16 June 2026, noon in Chicago, organization A's zone): the
current period is 1 July 2025 – 30 June 2026, the one before 1 June 2025 – 31 May 2026.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
import time_machine

from analytics.effectiveness import build_treatment_changes, change_since
from analytics.measure_selectors import (
    measure_clinic_table,
    measure_counts,
    measure_gap_patient_ids,
    measure_get,
    measure_provider_table,
    measure_trend_table,
    treatment_effectiveness,
)
from analytics.measures import MEASURES, Period, build_measure_results, flu_season, period_ends, periods_to_refresh
from analytics.models import MeasureResult
from analytics.stats import wilson
from analytics.suppression import HIDDEN, TOTAL, determined
from healthcrm.tenancy import organization_context
from patients.models import CarePlan, CareTeamMember, Condition, Goal, Immunization, Observation, Practitioner
from patients.services import blood_pressure_components
from tests.clocks import CHICAGO
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 16, 12, 0, tzinfo=CHICAGO)
CURRENT = date(2026, 6, 30)
PREVIOUS = date(2026, 5, 31)
_slots = count()


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def clinic(org_a: Any) -> Any:
    with organization_context(org_a):
        yield org_a


@pytest.fixture
def doctor(clinic: Any) -> Any:
    return PractitionerFactory(display_name="Dr. Main")


# -- Hand-built rows ------------------------------------------------------------------------


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=CHICAGO)


def born(age: int, on: date = CURRENT) -> date:
    """A birth date making the patient exactly `age` on `on` (their birthday)."""
    return on.replace(year=on.year - age)


def patient(age: int = 60, sex: str = "female", **kwargs: Any) -> Any:
    return PatientFactory(date_of_birth=kwargs.pop("dob", born(age)), sex=sex, **kwargs)


def visit(p: Any, day: date, practitioner: Any, *, status: str = "completed", kind: str = "follow_up") -> Any:
    # A distinct minute per visit: the practitioner cannot be double-booked.
    start = at(day, 8) + timedelta(minutes=30 * (next(_slots) % 16))
    return AppointmentFactory(
        patient=p,
        practitioner=practitioner,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        status=status,
        appointment_type=kind,
    )


def condition(p: Any, code: str, *, onset: date | None = date(2015, 1, 1), status: str = "active") -> Any:
    return Condition.objects.create(patient=p, code=code, display="Problem", onset_date=onset, clinical_status=status)


def bp(p: Any, when: datetime, systolic: int, diastolic: int) -> Any:
    return Observation.objects.create(
        patient=p,
        code="85354-9",
        display="Blood pressure panel",
        category="vital-signs",
        effective_at=when,
        unit="mm[Hg]",
        components=blood_pressure_components(Decimal(systolic), Decimal(diastolic)),
    )


def quantity(p: Any, code: str, when: datetime, value: str | None = "1", unit: str = "") -> Any:
    return Observation.objects.create(
        patient=p,
        code=code,
        display="Measurement",
        category="laboratory",
        effective_at=when,
        unit=unit,
        value_quantity=Decimal(value) if value is not None else None,
        value_text="" if value is not None else "see report",
    )


def flu(p: Any, day: date, status: str = "completed") -> Any:
    return Immunization.objects.create(
        patient=p, vaccine_code="141", display="Influenza", occurrence_date=day, status=status
    )


def populations(measure: str, period_end: date = CURRENT) -> dict[str, int]:
    counts = measure_counts(MEASURES[measure], period_end)
    return {
        "ip": counts.ip,
        "denominator": counts.denominator,
        "excluded": counts.excluded,
        "numerator": counts.numerator,
    }


def rate(measure: str, period_end: date = CURRENT) -> float | None:
    return measure_counts(MEASURES[measure], period_end).rate.value


def build() -> int:
    return build_measure_results(None, NOW)


# -- Periods -----------------------------------------------------------------------------------


def test_periods_are_rolling_twelve_months_ending_each_month_end() -> None:
    ends = period_ends(date(2026, 6, 16))
    # Newest first: this month's (still open) and the 11 before it.
    assert ends[0] == CURRENT and ends[1] == PREVIOUS and ends[-1] == date(2025, 7, 31) and len(ends) == 12
    assert Period(CURRENT).start == date(2025, 7, 1)
    assert Period(date(2026, 2, 28)).start == date(2025, 3, 1)
    # Every 12-month period holds exactly one 31 March: the flu season it assesses ends there.
    assert flu_season(Period(CURRENT)) == (date(2025, 10, 1), date(2026, 3, 31))
    assert flu_season(Period(date(2026, 2, 28))) == (date(2024, 10, 1), date(2025, 3, 31))


def test_incremental_refresh_recomputes_only_the_periods_still_open() -> None:
    # Last run on 10 June: only the June period was open.
    assert [p.end for p in periods_to_refresh(at(date(2026, 6, 10)), NOW)] == [CURRENT]
    # Last run on 30 May: May's period closed since, so it is recomputed with June's.
    assert [p.end for p in periods_to_refresh(at(date(2026, 5, 30)), NOW)] == [CURRENT, PREVIOUS]
    assert len(periods_to_refresh(None, NOW)) == 12


# -- CMS165v12 Controlling High Blood Pressure ------------------------------------------------------


def test_cms165_controlling_high_blood_pressure(clinic: Any, doctor: Any) -> None:
    seen = date(2026, 3, 10)

    def hypertensive(age: int = 60, *, onset: date = date(2015, 1, 1), **kw: Any) -> Any:
        p = patient(age, **kw)
        condition(p, "38341003", onset=onset)
        return p

    # p1: latest reading 130/80 (an older one was 150/95): controlled -> numerator.
    p1 = hypertensive()
    visit(p1, seen, doctor)
    bp(p1, at(date(2026, 5, 1)), 150, 95)
    bp(p1, at(date(2026, 6, 10)), 130, 80)
    # p2: two readings on the latest day, 150/85 and 135/95: CMS takes the lowest of each, 135/85 -> numerator.
    p2 = hypertensive()
    visit(p2, seen, doctor)
    bp(p2, at(date(2026, 6, 10), 9), 150, 85)
    bp(p2, at(date(2026, 6, 10), 15), 135, 95)
    # p3: latest 145/88 -> not met.
    p3 = hypertensive()
    visit(p3, seen, doctor)
    bp(p3, at(date(2026, 6, 1)), 145, 88)
    # p4: no reading in the period -> not met.
    p4 = hypertensive()
    visit(p4, seen, doctor)
    # p5: exactly 85 on the period's last day (the oldest age in), readings as separate systolic and
    # diastolic observations (I10 coded) -> numerator.
    p5 = patient(85)
    condition(p5, "I10")
    visit(p5, seen, doctor)
    quantity(p5, "8480-6", at(date(2026, 4, 2)), "128")
    quantity(p5, "8462-4", at(date(2026, 4, 2)), "76")
    # p6: end-stage renal disease -> excluded (never in the numerator, though controlled).
    p6 = hypertensive()
    condition(p6, "46177005")
    visit(p6, seen, doctor)
    bp(p6, at(date(2026, 6, 1)), 120, 70)
    # Not in the IP: p7 diagnosed after the first six months (1 Feb 2026); p8 aged 17; p9 aged 86;
    # p10 only a lab visit and a cancelled one; p11 hypertension resolved.
    p7 = hypertensive(onset=date(2026, 2, 1))
    visit(p7, seen, doctor)
    p8 = hypertensive(17)
    visit(p8, seen, doctor)
    p9 = hypertensive(86)
    visit(p9, seen, doctor)
    p10 = hypertensive()
    visit(p10, seen, doctor, kind="lab")
    visit(p10, date(2026, 4, 1), doctor, status="cancelled")
    p11 = patient()
    condition(p11, "38341003", status="resolved")
    visit(p11, seen, doctor)

    build()

    # IP = denominator: p1..p6 = 6; excluded: p6 = 1; numerator: p1, p2, p5 = 3.
    assert populations("CMS165v12") == {"ip": 6, "denominator": 6, "excluded": 1, "numerator": 3}
    # Rate = 3 / (6 - 1) = 60 %.
    assert rate("CMS165v12") == pytest.approx(0.6)
    # What an analyst sees of these counts: all under 11, so hidden, and no rate.
    row = next(r for r in measure_clinic_table(CURRENT).display_rows() if r["key"] == "CMS165v12")
    assert row["cells"][:2] == [HIDDEN, HIDDEN] and row["rates"] == [None]
    in_ip = set(MeasureResult.objects.filter(measure="CMS165v12", period_end=CURRENT).values_list("patient", flat=True))
    assert in_ip == {p1.pk, p2.pk, p3.pk, p4.pk, p5.pk, p6.pk}


def test_cms165_a_reading_on_the_periods_last_day_counts_and_the_next_day_does_not(clinic: Any, doctor: Any) -> None:
    p = patient()
    condition(p, "38341003")
    visit(p, date(2026, 3, 10), doctor)
    bp(p, at(PREVIOUS, 23, 30), 120, 70)  # 31 May, 23:30 in Chicago (already 1 June in UTC)
    bp(p, at(date(2026, 6, 1), 0, 10), 150, 95)  # 1 June, 00:10

    build()

    # Period to 31 May: the most recent reading is 31 May's 120/70 -> controlled.
    assert populations("CMS165v12", PREVIOUS) == {"ip": 1, "denominator": 1, "excluded": 0, "numerator": 1}
    # Period to 30 June: 1 June's 150/95 is the most recent -> not controlled.
    assert populations("CMS165v12", CURRENT) == {"ip": 1, "denominator": 1, "excluded": 0, "numerator": 0}


# -- CMS122v12 (inverse) -----------------------------------------------------------------------


def test_cms122_glycemic_status_above_nine_percent_is_an_inverse_measure(clinic: Any, doctor: Any) -> None:
    seen = date(2026, 2, 2)

    def diabetic(code: str = "44054006", age: int = 60, status: str = "active") -> Any:
        p = patient(age)
        condition(p, code, status=status)
        visit(p, seen, doctor)
        return p

    # d1: 10.2 % in January, 8.1 % in May: the most recent is 8.1 -> not in the numerator (good control).
    d1 = diabetic()
    quantity(d1, "4548-4", at(date(2026, 1, 5)), "10.2", "%")
    quantity(d1, "4548-4", at(date(2026, 5, 5)), "8.1", "%")
    # d2 (ICD-10 E11.9): 9.5 % -> numerator.
    d2 = diabetic("E11.9")
    quantity(d2, "4548-4", at(date(2026, 4, 1)), "9.5", "%")
    # d3: the only HbA1c is from May 2025, before the period -> missing -> numerator.
    d3 = diabetic()
    quantity(d3, "4548-4", at(date(2025, 5, 1)), "7.0", "%")
    # d4: exactly 9.0 % is not above 9 -> not in the numerator.
    d4 = diabetic()
    quantity(d4, "4548-4", at(date(2026, 3, 3)), "9.0", "%")
    # d5: a result without a number -> numerator (CMS: "no result").
    d5 = diabetic()
    quantity(d5, "4548-4", at(date(2026, 3, 3)), None)
    # Not in the IP: d6 aged 76; d7 diabetes resolved.
    diabetic(age=76)
    diabetic(status="resolved")

    build()

    # IP = denominator = d1..d5 = 5; no exclusions; numerator: d2, d3, d5 = 3.
    assert populations("CMS122v12") == {"ip": 5, "denominator": 5, "excluded": 0, "numerator": 3}
    assert rate("CMS122v12") == pytest.approx(3 / 5)
    measure = MEASURES["CMS122v12"]
    assert measure.inverse
    # Its gaps are its numerator (poor control or missing), not the rest.
    assert set(measure_gap_patient_ids(measure, CURRENT)) == {d2.pk, d3.pk, d5.pk}
    assert "lower is better" in measure_provider_table(measure, CURRENT).rates[0].label


# -- CMS125v12 Breast Cancer Screening -------------------------------------------------------------


def test_cms125_breast_cancer_screening(clinic: Any, doctor: Any) -> None:
    seen = date(2026, 1, 15)
    # The 27-month window for the period to 30 June 2026 starts on 1 April 2024.
    b1 = patient(60)
    visit(b1, seen, doctor)
    quantity(b1, "24606-6", at(date(2024, 4, 1)), None)  # first day of the window -> numerator
    b2 = patient(60)
    visit(b2, seen, doctor)
    quantity(b2, "24606-6", at(date(2024, 3, 31)), None)  # the day before -> not met
    b3 = patient(52)  # 52 on the period's last day: in; no mammogram -> not met
    visit(b3, seen, doctor)
    b4 = patient(70)  # bilateral mastectomy -> excluded
    condition(b4, "Z90.13", status="inactive")
    visit(b4, seen, doctor)
    b5 = patient(74)
    visit(b5, seen, doctor)
    quantity(b5, "24606-6", at(date(2026, 1, 10)), None)  # -> numerator
    # Not in the IP: 51 on the last day (52 the day after), a man, no visit in the period.
    visit(patient(dob=date(1974, 7, 1)), seen, doctor)
    visit(patient(60, sex="male"), seen, doctor)
    visit(patient(60), date(2025, 6, 30), doctor)

    build()

    # IP: b1..b5 = 5; excluded: b4; numerator: b1, b5 = 2; rate 2 / (5 - 1) = 50 %.
    assert populations("CMS125v12") == {"ip": 5, "denominator": 5, "excluded": 1, "numerator": 2}
    assert rate("CMS125v12") == pytest.approx(0.5)
    assert set(measure_gap_patient_ids(MEASURES["CMS125v12"], CURRENT)) == {b2.pk, b3.pk}


# -- CMS130v12 Colorectal Cancer Screening --------------------------------------------------------


def test_cms130_colorectal_cancer_screening(clinic: Any, doctor: Any) -> None:
    seen = date(2026, 1, 15)
    # The period starts on 1 July 2025: colonoscopy counts from 1 July 2016, FIT-DNA from 1 July 2023,
    # FIT only within the period.
    c1 = patient(50)
    quantity(c1, "18746-8", at(date(2016, 7, 1)), None)  # colonoscopy, first day allowed -> numerator
    c2 = patient(50)
    quantity(c2, "18746-8", at(date(2016, 6, 30)), None)  # a day too early -> not met
    c3 = patient(50)
    quantity(c3, "29771-3", at(date(2025, 7, 1)), None)  # FIT on the period's first day -> numerator
    c4 = patient(50)
    quantity(c4, "29771-3", at(date(2025, 6, 30)), None)  # FIT the day before -> not met
    c5 = patient(60)
    quantity(c5, "77353-1", at(date(2023, 7, 1)), None)  # FIT-DNA two years before -> numerator
    c6 = patient(46)  # the youngest age in; nothing -> not met
    c7 = patient(70)
    condition(c7, "C18.9", status="resolved")  # colorectal cancer, even resolved -> excluded
    too_young = patient(45)
    for p in (c1, c2, c3, c4, c5, c6, c7, too_young):
        visit(p, seen, doctor)

    build()

    # IP: c1..c7 = 7; excluded c7; numerator c1, c3, c5 = 3; rate 3 / (7 - 1) = 50 %.
    assert populations("CMS130v12") == {"ip": 7, "denominator": 7, "excluded": 1, "numerator": 3}
    assert rate("CMS130v12") == pytest.approx(0.5)


# -- CMS147v13 Influenza Immunization -------------------------------------------------------------


def test_cms147_influenza_immunization(clinic: Any, doctor: Any) -> None:
    # Period to 30 June 2026: season 1 Oct 2025 – 31 Mar 2026, vaccines from 1 Aug 2025.
    f1 = patient(40)
    visit(f1, date(2025, 11, 10), doctor)
    flu(f1, date(2025, 9, 15))  # -> numerator
    f2 = patient(40)
    visit(f2, date(2026, 5, 10), doctor)  # seen, but not in the season: IP, not denominator
    f3 = patient(40)
    visit(f3, date(2026, 1, 20), doctor)  # no vaccine -> not met
    f4 = patient(40)
    visit(f4, date(2026, 2, 2), doctor)
    flu(f4, date(2026, 2, 2), status="not-done")  # declined (a recorded reason) -> exception
    f5 = patient(40)
    visit(f5, date(2025, 12, 1), doctor)
    flu(f5, date(2025, 7, 31))  # before 1 August -> not met
    f6 = patient(40)
    visit(f6, date(2026, 3, 31), doctor)  # the season's last day
    flu(f6, date(2025, 8, 1))  # -> numerator
    baby = patient(dob=date(2025, 2, 1))  # five months old when the period starts -> not in the IP
    visit(baby, date(2025, 12, 1), doctor)

    build()

    # IP: f1..f6 = 6; denominator: f1, f3, f4, f5, f6 = 5; excluded f4; numerator f1, f6 = 2.
    assert populations("CMS147v13") == {"ip": 6, "denominator": 5, "excluded": 1, "numerator": 2}
    # Rate = 2 / (5 - 1) = 50 %.
    assert rate("CMS147v13") == pytest.approx(0.5)


# -- CMS2v13 Screening for Depression ---------------------------------------------------------------


def test_cms2_depression_screening_with_a_phq9(clinic: Any, doctor: Any) -> None:
    seen = date(2026, 1, 15)
    start = date(2025, 7, 1)  # the period to 30 June 2026 starts on 1 July 2025

    def phq9(p: Any, when: datetime) -> Any:
        return quantity(p, "44261-6", when, "7", unit="{score}")

    d1 = patient(40)
    phq9(d1, at(date(2026, 3, 3)))  # -> numerator
    d2 = patient(dob=born(12, on=start))  # 12 on the period's first day: in; no PHQ-9 -> not met
    d3 = patient(40)
    phq9(d3, at(start, 0, 10))  # the period's first local day -> numerator
    d4 = patient(40)
    phq9(d4, at(date(2025, 6, 30), 23, 50))  # the day before -> not met
    d5 = patient(40)
    condition(d5, "F32.9", onset=date(2024, 2, 1))  # depression before the period -> excluded
    phq9(d5, at(date(2026, 2, 2)))  # screened anyway: an excluded patient is not in the numerator
    d6 = patient(30, sex="male")
    condition(d6, "13746004", onset=None)  # bipolar, onset unknown (counts as before) -> excluded
    d7 = patient(70)
    condition(d7, "35489007", onset=date(2025, 9, 1))  # diagnosed during the period: not excluded
    phq9(d7, at(date(2025, 9, 1)))  # -> numerator
    d8 = patient(50)
    condition(d8, "F33.1", onset=date(2020, 1, 1), status="resolved")  # not active -> not excluded, not met
    for p in (d1, d2, d3, d4, d5, d6, d7, d8):
        visit(p, seen, doctor)
    # Not in the IP: 11 on the period's first day (12 the day after); no visit; a lab visit only.
    young = patient(dob=date(2013, 7, 2))
    visit(young, seen, doctor)
    phq9(young, at(seen))
    phq9(patient(40), at(seen))
    lab_only = patient(40)
    visit(lab_only, seen, doctor, kind="lab")
    phq9(lab_only, at(seen))

    build()

    # IP: d1..d8 = 8; excluded d5, d6 = 2; numerator d1, d3, d7 = 3; rate 3 / (8 - 2) = 50 %.
    assert populations("CMS2v13") == {"ip": 8, "denominator": 8, "excluded": 2, "numerator": 3}
    assert rate("CMS2v13") == pytest.approx(0.5)
    assert set(measure_gap_patient_ids(MEASURES["CMS2v13"], CURRENT)) == {d2.pk, d4.pk, d8.pk}
    # The period before (1 June 2025 – 31 May 2026) holds d4's screening, and d5's diagnosis
    # still precedes it.
    assert populations("CMS2v13", PREVIOUS)["numerator"] == 4  # d1, d3, d4, d7


# -- Attribution ----------------------------------------------------------------------------


def test_attribution_care_team_provider_else_the_last_visit_in_the_period(
    clinic: Any, provider_user: Any, nurse_user: Any, coordinator_user: Any
) -> None:
    own = Practitioner.objects.create(display_name="Dr. Own", user=provider_user)
    early: Any = PractitionerFactory(display_name="Dr. Early")
    late: Any = PractitionerFactory(display_name="Dr. Late")
    # x: the care team's provider is provider_user (a practitioner) -> Dr. Own, though seen by others.
    x = patient(40)
    CareTeamMember.objects.create(patient=x, user=provider_user, team_role="provider")
    visit(x, date(2026, 1, 5), early)
    # y: no team provider (a nurse on the team only): last visit in the period decides.
    y = patient(40)
    CareTeamMember.objects.create(patient=y, user=nurse_user, team_role="nurse")
    visit(y, date(2026, 1, 5), early)
    visit(y, date(2026, 4, 1), late)
    # z: a team provider with no practitioner record -> falls back to the last visit.
    z = patient(40)
    CareTeamMember.objects.create(patient=z, user=coordinator_user, team_role="provider")
    visit(z, date(2026, 2, 5), early)

    build()

    def attributed(p: Any, end: date) -> int | None:
        return MeasureResult.objects.get(measure="CMS147v13", period_end=end, patient=p).practitioner_id

    assert attributed(x, CURRENT) == own.pk
    assert attributed(y, CURRENT) == late.pk
    # In the period to 31 March, y's 1 April visit is after the end: the January one decides.
    assert attributed(y, date(2026, 3, 31)) == early.pk
    assert attributed(z, CURRENT) == early.pk


# -- Tables: rates, Wilson intervals, suppression, trend ------------------------------------------


def _screened_women(practitioner: Any, met: int, not_met: int) -> None:
    for i in range(met + not_met):
        p = patient(60)
        visit(p, date(2026, 1, 5) + timedelta(days=i), practitioner)
        if i < met:
            quantity(p, "24606-6", at(date(2025, 9, 1)), None)


def test_provider_rate_with_wilson_interval_and_a_small_provider_suppressed(clinic: Any) -> None:
    big: Any = PractitionerFactory(display_name="Dr. Big")
    small: Any = PractitionerFactory(display_name="Dr. Small")
    _screened_women(big, met=12, not_met=11)  # 12 of 23
    _screened_women(small, met=2, not_met=1)  # 3 patients: every cell under 11

    build()
    measure = MEASURES["CMS125v12"]
    table = measure_provider_table(measure, CURRENT)

    rows = {r["label"]: r for r in table.display_rows()}
    assert rows["Dr. Small"]["cells"] == [HIDDEN, HIDDEN, 0]  # 2 and 1 hidden; zero exclusions shown
    assert rows["Dr. Small"]["rates"] == [None]
    # No hidden count can be worked out from the published ones and the totals.
    assert determined(table.values, table.lines(), table.hidden) == set()
    assert rows["Dr. Big"]["label"] == "Dr. Big" and table.values[(str(big.pk), "met")] == 12


def test_clinic_rate_is_numerator_over_denominator_minus_exclusions_with_wilson(clinic: Any, doctor: Any) -> None:
    # 12 screened, 11 not screened, 11 excluded (bilateral mastectomy): every cell 11 or more, nothing hidden.
    _screened_women(doctor, met=12, not_met=11)
    for i in range(11):
        p = patient(65)
        condition(p, "Z90.13")
        visit(p, date(2026, 3, 2) + timedelta(days=i), doctor)

    build()
    table = measure_clinic_table(CURRENT)
    row = next(r for r in table.display_rows() if r["key"] == "CMS125v12")

    assert row["cells"] == [12, 11, 11] and row["total"] == 34
    low, high = wilson(12, 23)  # type: ignore[misc]
    # 12 / (34 - 11) = 12 / 23, not 12 / 34.
    assert row["rates"][0] == pytest.approx((12 / 23, low, high))
    csv = list(table.csv_rows())
    assert csv[0][-3:] == ["Rate (%)", "Rate 95% CI low", "Rate 95% CI high"]
    assert [line for line in csv if line[0].startswith("CMS125v12")][0][-3] == f"{12 / 23 * 100:.1f}"


def test_trend_has_one_row_per_period_and_follows_the_data(clinic: Any, doctor: Any) -> None:
    # One hypertensive patient, controlled only from a reading on 3 April 2026: the periods to
    # March and before are not met (no reading), April onwards met.
    p = patient()
    condition(p, "38341003")
    visit(p, date(2025, 8, 5), doctor)
    bp(p, at(date(2026, 4, 3)), 120, 70)

    build()
    ends = period_ends(NOW.date())
    table = measure_trend_table(MEASURES["CMS165v12"], ends)

    assert [key for key, _ in table.rows] == [end.isoformat() for end in sorted(ends)]
    # The visit on 5 Aug 2025 is in the periods to 31 Aug 2025 ... 30 Jun 2026 (11 of 12; July 2025's
    # period ends before it); met in the three from April: 3 of 11 patient-periods.
    assert table.values[(TOTAL, TOTAL)] == 11
    assert table.values[(TOTAL, "met")] == 3
    assert table.values[(date(2025, 7, 31).isoformat(), TOTAL)] == 0


def test_incremental_build_rewrites_the_current_period_only(clinic: Any, doctor: Any) -> None:
    p = patient()
    condition(p, "38341003")
    visit(p, date(2026, 3, 10), doctor)
    build()
    assert MeasureResult.objects.filter(measure="CMS165v12").count() == 4  # periods to Mar, Apr, May, Jun
    bp(p, at(date(2026, 6, 15)), 120, 70)

    build_measure_results(at(date(2026, 6, 10)), NOW)

    # Only June's period was open at the last run: it sees the new reading, May's is untouched.
    assert populations("CMS165v12", CURRENT)["numerator"] == 1
    assert populations("CMS165v12", PREVIOUS) == {"ip": 1, "denominator": 1, "excluded": 0, "numerator": 0}


def test_an_incremental_build_recomputes_only_the_patients_whose_rows_changed(clinic: Any, doctor: Any) -> None:
    from patients.models import Appointment, Patient

    changed, untouched = patient(), patient()
    for p in (changed, untouched):
        condition(p, "38341003")
        visit(p, date(2026, 3, 10), doctor)
    build()
    last_run = at(date(2026, 6, 10))
    before = last_run - timedelta(days=1)
    # The untouched patient's rows are older than the last run; a reading arrives for the other.
    Patient.objects.filter(pk=untouched.pk).update(updated_at=before)
    Condition.objects.filter(patient=untouched).update(updated_at=before)
    Appointment.objects.filter(patient=untouched).update(updated_at=before)
    bp(changed, at(date(2026, 6, 15)), 120, 70)
    bp(untouched, at(date(2026, 6, 15)), 120, 70)
    Observation.objects.filter(patient=untouched).update(updated_at=before)  # as if it came before the run
    kept = MeasureResult.objects.get(patient=untouched, measure="CMS165v12", period_end=CURRENT).pk

    build_measure_results(last_run, NOW)

    # The changed patient is recomputed (now controlled); the untouched one keeps its row (and its
    # stale "not met": the nightly full rebuild is what re-reads it); the counts sum both.
    assert MeasureResult.objects.get(patient=changed, measure="CMS165v12", period_end=CURRENT).in_numerator
    untouched_row = MeasureResult.objects.get(patient=untouched, measure="CMS165v12", period_end=CURRENT)
    assert untouched_row.pk == kept and not untouched_row.in_numerator
    assert populations("CMS165v12", CURRENT) == {"ip": 2, "denominator": 2, "excluded": 0, "numerator": 1}
    build()
    assert populations("CMS165v12", CURRENT)["numerator"] == 2


def test_measure_results_keep_flags_only_and_refresh_run_includes_them(clinic: Any, doctor: Any) -> None:
    from analytics.refresh import refresh_run

    p = patient()
    condition(p, "38341003")
    visit(p, date(2026, 3, 10), doctor)

    run = refresh_run(full=True, now=NOW)

    assert run.rows["measures"] == MeasureResult.objects.count() > 0
    assert run.rows["treatment"] == 0  # no care plan: nobody to compare
    fields = {f.name for f in MeasureResult._meta.concrete_fields}
    assert not fields & {"date_of_birth", "sex", "age", "value", "age_band"}
    assert measure_get("cms165v12") is MEASURES["CMS165v12"] and measure_get("nope") is None


# -- Treatment effectiveness --------------------------------------------------------------------


def test_treatment_effectiveness_compares_plan_patients_with_same_condition_without_plan(clinic: Any) -> None:
    start = at(date(2026, 1, 15))

    def on_plan(baseline_at: datetime, baseline: int, latest: int) -> Any:
        p = patient()
        condition(p, "38341003")
        plan = CarePlan.objects.create(patient=p, title="Hypertension", status="active")
        CarePlan.objects.filter(pk=plan.pk).update(created_at=start)
        Goal.objects.create(care_plan=plan, description="BP", observation_code="85354-9", targets=[])
        bp(p, baseline_at, baseline, 85)
        bp(p, at(date(2026, 6, 1)), latest, 80)
        return p

    # Plan group: 6 patients 150 -> 135 (-15); 4 patients 150 -> 140 (-10) with the baseline on 1 January;
    # 1 patient with no reading before the start, the first 26 days after (150), latest 140 (-10).
    for _ in range(6):
        on_plan(at(date(2026, 1, 1)), 150, 135)
    for _ in range(4):
        on_plan(at(date(2026, 1, 1)), 150, 140)
    on_plan(at(date(2026, 2, 10)), 150, 140)
    # Not counted: the first reading 40 days after the start is no baseline.
    on_plan(at(date(2026, 2, 24)), 150, 140)
    # Mean change of the 11: (6 × -15 + 5 × -10) / 11 = -140 / 11.

    # Comparison: hypertension, no care plan; measured from the plan group's median start (15 January).
    for _ in range(10):
        p = patient()
        condition(p, "38341003")
        bp(p, at(date(2026, 1, 2)), 150, 85)
        bp(p, at(date(2026, 5, 20)), 148, 85)  # -2
    p = patient()
    condition(p, "38341003")
    bp(p, at(date(2026, 2, 1)), 150, 85)  # baseline within 30 days after the index
    bp(p, at(date(2026, 5, 20)), 140, 85)  # -10
    # Mean change of the 11: (10 × -2 - 10) / 11 = -30 / 11.
    # Diabetes with HbA1c: 3 patients on a plan (too few to show).
    for _ in range(3):
        d = patient()
        condition(d, "44054006")
        plan = CarePlan.objects.create(patient=d, title="Diabetes", status="active")
        CarePlan.objects.filter(pk=plan.pk).update(created_at=start)
        Goal.objects.create(care_plan=plan, description="A1c", observation_code="4548-4", targets=[])
        quantity(d, "4548-4", at(date(2026, 1, 2)), "9.0", "%")
        quantity(d, "4548-4", at(date(2026, 5, 2)), "8.0", "%")

    assert build_treatment_changes(None, NOW) == 11 + 11 + 3  # the patients counted in some group
    rows = {(r.condition.key, r.goal.key): r for r in treatment_effectiveness()}

    hypertension = rows[("hypertension", "systolic")]
    assert hypertension.plan.n == 11 and hypertension.plan.mean == pytest.approx(-140 / 11)
    assert hypertension.comparison.n == 11 and hypertension.comparison.mean == pytest.approx(-30 / 11)
    assert hypertension.difference == pytest.approx(-140 / 11 + 30 / 11)
    diabetes = rows[("diabetes", "hba1c")]
    assert diabetes.plan.n_display == HIDDEN and diabetes.plan.mean is None and diabetes.difference is None


def test_change_since_takes_the_baseline_on_or_before_the_start_else_within_30_days() -> None:
    start = at(date(2026, 1, 15))
    series = [(at(date(2026, 1, 1)), 150.0), (at(date(2026, 1, 10)), 148.0), (at(date(2026, 5, 1)), 140.0)]
    # The last value on or before the start (148 on 10 January), to the latest (140): -8.
    assert change_since(series, start) == -8.0
    # Nothing before: the first within 30 days after (150 on 14 February, 30 days), to 140: -10.
    assert change_since([(start + timedelta(days=30), 150.0), (at(date(2026, 5, 1)), 140.0)], start) == -10.0
    # 31 days after is no baseline; a baseline with nothing after it is no change.
    assert change_since([(start + timedelta(days=31), 150.0), (at(date(2026, 5, 1)), 140.0)], start) is None
    assert change_since([(at(date(2026, 1, 1)), 150.0)], start) is None
    assert change_since([], start) is None
