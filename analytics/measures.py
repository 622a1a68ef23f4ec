"""Clinical quality measures, modelled on the published CMS eCQMs, and their refresh builder.

Each measure names its CMS id and version (2024 performance period) and yields, per patient and
per period, the four eCQM populations: initial population (IP), denominator, denominator exclusion
(or exception) and numerator. `build_measure_results` writes them to `MeasureResult`, one row per
patient in the IP, for rolling 12-month periods ending on each month end (the clinic's time zone):
a full refresh recomputes the last 12 periods (the current, still open one included), an
incremental one the periods still open at the last run (the current month's; at a month change
also the one that just closed). Every period is recomputed for every candidate patient: ages,
"the most recent reading" and attribution all move with time, so a change-tracking shortcut would
be wrong more often than it saved work.

Rate = numerator / (denominator − exclusions). CMS122 is an inverse measure (its numerator is poor
control: a lower rate is better).

What we hold and what the published measures need differ; every simplification, so the figures
are read for what they are (the docs repeat them, docs/architecture.md "Quality measures"):

- Value sets are reduced to the codes this CRM holds or imports (SNOMED CT, ICD-10-CM and LOINC
  codes listed below, CVX for vaccines); a code outside them is not seen.
- Qualifying encounters: any attended appointment (completed or checked in) except a lab visit,
  in person or telehealth. The published value sets list office, preventive, home and virtual
  visit codes; we have appointment types instead.
- Diagnoses have a current clinical status and an (encrypted) onset date, no abatement date: a
  diagnosis counts when it is active now (active, recurrence, relapse) and its onset, when known,
  is on or before the date the measure asks for. A problem resolved since is not seen in past
  periods; an unknown onset counts as "before".
- No procedure, encounter-diagnosis, hospice, palliative-care, frailty, advanced-illness,
  long-term-care or medication-exclusion data: those exclusions cannot be applied, so rates of
  patients who should have been excluded for them count as not met (the rate is conservative).
- No procedure model: screenings (mammography, colonoscopy, FIT, ...) count when an Observation
  with one of the LOINC codes below is on the record (as engagement/recalls.py does).
- Ages are exact (birthday arithmetic, `analytics.refresh.age_on`) at the date each measure names,
  from the decrypted date of birth; sex is the recorded (decrypted) administrative sex. Both are
  decrypted in the worker and never stored: the fact table keeps flags only.
- Times are the clinic's local dates: an observation at 23:30 on the period's last day counts,
  one at 00:10 the next day belongs to the next period.
- Care-team membership has no history: attribution uses today's team for every period.
"""

from __future__ import annotations

import inspect
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from analytics.models import MeasureCount, MeasureResult
from analytics.refresh import age_on, builder, chunks
from engagement.recalls import HBA1C, MAMMOGRAPHY_LOINC
from healthcrm.tenancy import require_current_organization

# -- Codes (the value sets reduced to what we hold) -----------------------------------------------

ACTIVE_CONDITION = frozenset({"active", "recurrence", "relapse"})
# Essential hypertension (VSAC 2.16.840.1.113883.3.464.1003.104.12.1011): SNOMED essential / benign /
# malignant essential hypertension, ICD-10 I10; plus SNOMED 38341003 "hypertensive disorder", the
# code our demo data, care-plan templates and most FHIR sources use for it.
HYPERTENSION = frozenset({"38341003", "59621000", "1201005", "10725009", "78975002", "I10"})
# Diabetes (VSAC ...103.12.1001): type 1, type 2, unspecified; ICD-10 E10.*, E11.*, E13.*.
DIABETES = frozenset({"44054006", "46635009", "73211009"})
DIABETES_ICD_PREFIXES = ("E10", "E11", "E13")
# CMS165 exclusions we can see: end-stage renal disease, CKD stage 5, dialysis, kidney transplant.
ESRD = frozenset({"46177005", "433146000", "N18.5", "N18.6", "Z99.2", "Z94.0"})
PREGNANCY = frozenset({"77386006", "Z33.1"})
# CMS125 exclusion: history of bilateral mastectomy (ICD-10 Z90.13 only; the SNOMED and procedure
# codes of the value set need a procedure model).
BILATERAL_MASTECTOMY = frozenset({"Z90.13"})
# CMS130 exclusion: malignant neoplasm of colon (SNOMED 363406005; ICD-10 C18.*, C19, C20).
COLORECTAL_CANCER = frozenset({"363406005"})
COLORECTAL_CANCER_ICD_PREFIXES = ("C18", "C19", "C20")
# CMS2 exclusion: depression or bipolar disorder (SNOMED 35489007 depressive disorder, 13746004
# bipolar disorder; ICD-10 F32.*, F33.* major depressive disorder, F31.* bipolar disorder).
DEPRESSION_OR_BIPOLAR = frozenset({"35489007", "13746004"})
DEPRESSION_OR_BIPOLAR_ICD_PREFIXES = ("F32", "F33", "F31")

# Blood pressure: the panel (components) or the two readings as separate observations.
BP_PANELS = frozenset({"85354-9", "55284-4"})
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
# Glycemic status assessment (CMS122v12): HbA1c (4548-4, 17856-6) and glucose management indicator.
GLYCEMIC = frozenset({HBA1C, "17856-6", "97506-0"})
MAMMOGRAPHY = frozenset(MAMMOGRAPHY_LOINC)
# CMS130: each screening and how many years before the period's start it may lie ("MP or N years prior").
FOBT = frozenset(
    {
        "2335-8",
        "12503-9",
        "12504-7",
        "14563-1",
        "14564-9",
        "14565-6",
        "27396-1",
        "27401-9",
        "27925-7",
        "27926-5",
        "29771-3",
        "56490-6",
        "56491-4",
        "57905-2",
        "58453-2",
        "80372-6",
    }
)
FIT_DNA = frozenset({"77353-1", "77354-9"})
COLONOSCOPY = frozenset({"18746-8"})
SIGMOIDOSCOPY = frozenset({"18753-4"})
CT_COLONOGRAPHY = frozenset({"60515-4", "72531-7", "79069-1", "79071-7", "79101-2", "82688-3"})
COLORECTAL_SCREENINGS: tuple[tuple[frozenset[str], int], ...] = (
    (FOBT, 0),
    (FIT_DNA, 2),
    (SIGMOIDOSCOPY, 4),
    (CT_COLONOGRAPHY, 4),
    (COLONOSCOPY, 9),
)
# Influenza vaccines (CVX), the injectable and live ones of the value set.
FLU_CVX = frozenset(
    {"88", "111", "135", "140", "141", "144", "149", "150", "153", "155", "158", "161", "166", "168", "171"}
    | {"185", "186", "197", "205"}
)
# CMS2 screening: the PHQ-9 total score (what a completed PHQ-9 questionnaire writes to the record).
DEPRESSION_SCREENING = frozenset({"44261-6"})
NOT_VISITS = frozenset({"lab"})  # appointment types that are not a qualifying encounter
ATTENDED = ("completed", "checked_in")

SCREENING_CODES = MAMMOGRAPHY | FOBT | FIT_DNA | COLONOSCOPY | SIGMOIDOSCOPY | CT_COLONOGRAPHY
OBSERVATION_CODES = BP_PANELS | {SYSTOLIC, DIASTOLIC} | GLYCEMIC | DEPRESSION_SCREENING | SCREENING_CODES
LOOKBACK_YEARS = 10  # the longest window: colonoscopy, the period and 9 years before it


# -- Dates ------------------------------------------------------------------------------------


@lru_cache(maxsize=8192)  # pure, and asked millions of times by a full rebuild (12 periods × 6 measures × patients)
def month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


@lru_cache(maxsize=8192)
def add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier when negative), clamped to the month's last day."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month0 + 1, min(day.day, month_end(date(year, month0 + 1, 1)).day))


def years_before(day: date, years: int) -> date:
    return add_months(day, -12 * years)


@dataclass(frozen=True)
class Period:
    """A 12-month measurement period: `end` is a month's last day, `start` the day after the end a year before."""

    end: date

    @cached_property
    def start(self) -> date:
        return add_months(self.end.replace(day=1), -11)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


def period_ends(today: date, count: int = 12) -> list[date]:
    """The last `count` month ends, newest first; the first is this month's (the period still open)."""
    ends = [month_end(today)]
    while len(ends) < count:
        ends.append(ends[-1].replace(day=1) - timedelta(days=1))
    return ends


# -- What a measure reads about a patient ---------------------------------------------------


@dataclass
class PatientData:
    """One patient's rows a measure reads (decrypted in the worker, never stored)."""

    pk: int
    birth: date | None = None
    sex: str = "unknown"
    conditions: list[tuple[str, str, date | None]] = field(default_factory=list)  # code, status, onset
    bp_days: dict[date, tuple[Decimal | None, Decimal | None]] = field(default_factory=dict)  # lowest per day
    glycemic: list[tuple[datetime, date, Decimal | None]] = field(default_factory=list)  # at, local date, value
    screenings: dict[str, list[date]] = field(default_factory=dict)  # LOINC -> local dates
    flu: list[tuple[date, str]] = field(default_factory=list)  # occurrence date, status
    visits: list[tuple[date, datetime, int]] = field(default_factory=list)  # local date, start, practitioner
    team_practitioner: int | None = None
    _cache: dict[str, list[date]] = field(default_factory=dict, repr=False)

    def age_at(self, day: date) -> int | None:
        return age_on(self.birth, day)

    def has_condition(
        self,
        codes: frozenset[str],
        prefixes: Sequence[str] = (),
        *,
        onset_by: date,
        active_only: bool = True,
    ) -> bool:
        for code, status, onset in self.conditions:
            if code not in codes and not (prefixes and code.startswith(tuple(prefixes))):
                continue
            if active_only and status not in ACTIVE_CONDITION:
                continue
            if onset is None or onset <= onset_by:
                return True
        return False

    def visits_in(self, start: date, end: date) -> list[tuple[date, datetime, int]]:
        return [v for v in self.visits if start <= v[0] <= end]

    def has_visit(self, start: date, end: date) -> bool:
        days = self._sorted("visit_days", lambda: [v[0] for v in self.visits])
        index = bisect_left(days, start)
        return index < len(days) and days[index] <= end

    def screened(self, codes: frozenset[str], start: date, end: date) -> bool:
        for code in codes:
            days = self._sorted(f"screened:{code}", self.screenings.get(code, ()))
            index = bisect_left(days, start)
            if index < len(days) and days[index] <= end:
                return True
        return False

    def last_bp_day(self, start: date, end: date) -> date | None:
        """The latest day in [start, end] with both a systolic and a diastolic reading."""
        days = self._sorted(
            "bp_days", lambda: [d for d, (s, di) in self.bp_days.items() if s is not None and di is not None]
        )
        index = bisect_right(days, end)
        return days[index - 1] if index and days[index - 1] >= start else None

    def _sorted(self, key: str, values: Iterable[date] | Callable[[], Iterable[date]]) -> list[date]:
        """A sorted copy of some dates, made once per patient (each is read for 12 periods × 6 measures)."""
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = sorted(values() if callable(values) else values)
        return found


@dataclass(frozen=True)
class Populations:
    in_ip: bool
    in_denominator: bool = False
    excluded: bool = False
    in_numerator: bool = False


NOT_IN_IP = Populations(in_ip=False)


def _populations(denominator: bool, excluded: bool, numerator: bool) -> Populations:
    """IP = denominator for these measures; an excluded patient is never in the numerator."""
    return Populations(
        in_ip=True,
        in_denominator=denominator,
        excluded=denominator and excluded,
        in_numerator=denominator and not excluded and numerator,
    )


@dataclass(frozen=True)
class Measure:
    id: str  # CMS id with version, as stored in MeasureResult.measure
    title: str
    description: str
    evaluate: Callable[[PatientData, Period], Populations]
    inverse: bool = False  # the numerator is the bad outcome (a lower rate is better)
    numerator_label: str = "Met"
    not_met_label: str = "Not met"

    @property
    def slug(self) -> str:
        return self.id.lower()

    @property
    def notes(self) -> str:
        """How it is counted here: the evaluating function's docstring (definition and simplifications)."""
        return inspect.getdoc(self.evaluate) or ""


# -- CMS165v12 Controlling High Blood Pressure --------------------------------------------------


def controlling_blood_pressure(patient: PatientData, period: Period) -> Populations:
    """CMS165v12. IP: age 18–85 at the period's end, essential hypertension that starts before and
    overlaps the first six months of the period, a visit in the period. Denominator = IP.
    Exclusions we can see: ESRD / CKD 5 / dialysis / kidney transplant before the period's end,
    pregnancy during the period (not hospice, palliative care, frailty, long-term care).
    Numerator: the most recent day in the period with a blood pressure has its lowest systolic < 140
    and lowest diastolic < 90 (CMS's rule for several readings on one day); no reading = not met.
    A reading is a BP panel's components or separate systolic/diastolic observations; a day needs both.
    (Not applied: readings taken in an emergency department or on the day of a procedure.)
    """
    age = patient.age_at(period.end)
    six_months = add_months(period.start, 6) - timedelta(days=1)  # the last day of the first six months
    if age is None or not 18 <= age <= 85 or not patient.has_visit(period.start, period.end):
        return NOT_IN_IP
    if not patient.has_condition(HYPERTENSION, onset_by=six_months):
        return NOT_IN_IP
    excluded = patient.has_condition(ESRD, onset_by=period.end) or patient.has_condition(PREGNANCY, onset_by=period.end)
    last = patient.last_bp_day(period.start, period.end)
    controlled = False
    if last is not None:
        systolic, diastolic = patient.bp_days[last]
        controlled = systolic is not None and diastolic is not None and systolic < 140 and diastolic < 90
    return _populations(True, excluded, controlled)


# -- CMS122v12 Diabetes: Glycemic Status Assessment Greater Than 9 % (inverse) ----------------------


def glycemic_status_poor(patient: PatientData, period: Period) -> Populations:
    """CMS122v12 (inverse). IP: age 18–75 at the period's end, diabetes overlapping the period (onset
    by its end), a visit in the period. Denominator = IP. Exclusions: none we can see (hospice,
    palliative care, frailty with advanced illness, long-term care are not held).
    Numerator (the bad outcome): the most recent glycemic status assessment in the period (HbA1c or
    GMI) is > 9 %, or has no result, or there is none in the period.
    """
    age = patient.age_at(period.end)
    if age is None or not 18 <= age <= 75 or not patient.has_visit(period.start, period.end):
        return NOT_IN_IP
    if not patient.has_condition(DIABETES, DIABETES_ICD_PREFIXES, onset_by=period.end):
        return NOT_IN_IP
    local = [(at, value) for at, day, value in patient.glycemic if period.start <= day <= period.end]
    if not local:
        return _populations(True, False, True)  # missing counts as poor control
    _, value = max(local, key=lambda item: item[0])
    return _populations(True, False, value is None or value > Decimal("9"))


# -- CMS125v12 Breast Cancer Screening --------------------------------------------------------------


def breast_cancer_screening(patient: PatientData, period: Period) -> Populations:
    """CMS125v12. IP: women 52–74 at the period's end with a visit in the period. Denominator = IP.
    Exclusions we can see: history of bilateral mastectomy (ICD-10 Z90.13) by the period's end.
    Numerator: a mammogram (an Observation with a mammography LOINC code) in the 27 months ending on
    the period's end (CMS: 1 October two years before the period through its end).
    """
    age = patient.age_at(period.end)
    if patient.sex != "female" or age is None or not 52 <= age <= 74:
        return NOT_IN_IP
    if not patient.has_visit(period.start, period.end):
        return NOT_IN_IP
    excluded = patient.has_condition(BILATERAL_MASTECTOMY, onset_by=period.end, active_only=False)
    window_start = add_months(period.end + timedelta(days=1), -27)
    return _populations(True, excluded, patient.screened(MAMMOGRAPHY, window_start, period.end))


# -- CMS130v12 Colorectal Cancer Screening ----------------------------------------------------------


def colorectal_cancer_screening(patient: PatientData, period: Period) -> Populations:
    """CMS130v12. IP: age 46–75 at the period's end (the published IP; its description says 45–75,
    counting the year a 45-year-old turns 46) with a visit in the period. Denominator = IP.
    Exclusions we can see: colorectal cancer diagnosed by the period's end (any status: history
    counts; total colectomy is a procedure we do not hold).
    Numerator: FOBT/FIT in the period; FIT-DNA in the period or 2 years before; flexible
    sigmoidoscopy or CT colonography in the period or 4 years before; colonoscopy in the period or
    9 years before (as Observations with those LOINC codes).
    """
    age = patient.age_at(period.end)
    if age is None or not 46 <= age <= 75 or not patient.has_visit(period.start, period.end):
        return NOT_IN_IP
    excluded = patient.has_condition(
        COLORECTAL_CANCER, COLORECTAL_CANCER_ICD_PREFIXES, onset_by=period.end, active_only=False
    )
    screened = any(
        patient.screened(codes, years_before(period.start, years), period.end) for codes, years in COLORECTAL_SCREENINGS
    )
    return _populations(True, excluded, screened)


# -- CMS147v13 Preventive Care and Screening: Influenza Immunization ------------------------------


@lru_cache(maxsize=256)
def flu_season(period: Period) -> tuple[date, date]:
    """The influenza season a period assesses: 1 October – 31 March, the one whose 31 March falls in
    the period (every 12-month period holds exactly one). CMS147 assesses the season ending in March
    of the measurement year; rolling periods generalise that."""
    year = period.end.year if period.end.month >= 3 else period.end.year - 1
    return date(year - 1, 10, 1), date(year, 3, 31)


def influenza_immunization(patient: PatientData, period: Period) -> Populations:
    """CMS147v13. IP: age 6 months or more at the period's start, a visit in the period.
    Denominator: IP with a visit during the season (1 October – 31 March, see `flu_season`).
    Numerator: an influenza vaccine (CVX) given from 1 August before the season to its 31 March.
    Exceptions (counted with the exclusions): an immunization recorded as not done in that window
    (the record carries the reason: patient declined, medical or system reason), when not vaccinated.
    Not held: "reported previous receipt" other than a completed Immunization row, vaccine allergy.
    """
    if patient.birth is None or not patient.has_visit(period.start, period.end):
        return NOT_IN_IP
    if add_months(period.start, -6) < patient.birth:
        return NOT_IN_IP
    season_start, season_end = flu_season(period)
    if not patient.has_visit(season_start, season_end):
        return Populations(in_ip=True)
    window_start = date(season_start.year, 8, 1)
    given = any(window_start <= day <= season_end and status == "completed" for day, status in patient.flu)
    not_done = any(window_start <= day <= season_end and status == "not-done" for day, status in patient.flu)
    return _populations(True, not_done and not given, given)


# -- CMS2v13 Preventive Care and Screening: Screening for Depression ------------------------------


def depression_screening(patient: PatientData, period: Period) -> Populations:
    """CMS2v13, screening only. IP: age 12 or more at the period's start, a visit in the period.
    Denominator = IP. Exclusions: an active depression or bipolar diagnosis (SNOMED 35489007,
    13746004; ICD-10 F32.*, F33.*, F31.*) with onset before the period's start.
    Numerator: a PHQ-9 total score (an Observation with LOINC 44261-6, which a completed PHQ-9
    writes) in the period. Not applied: the follow-up plan a positive screen asks for, screening
    tools other than the PHQ-9, the medical and patient reasons for not screening.
    """
    age = patient.age_at(period.start)
    if age is None or age < 12 or not patient.has_visit(period.start, period.end):
        return NOT_IN_IP
    excluded = patient.has_condition(
        DEPRESSION_OR_BIPOLAR, DEPRESSION_OR_BIPOLAR_ICD_PREFIXES, onset_by=period.start - timedelta(days=1)
    )
    return _populations(True, excluded, patient.screened(DEPRESSION_SCREENING, period.start, period.end))


MEASURES: dict[str, Measure] = {
    m.id: m
    for m in (
        Measure(
            "CMS165v12",
            "Controlling High Blood Pressure",
            "Adults 18–85 with hypertension whose most recent blood pressure was below 140/90.",
            controlling_blood_pressure,
            numerator_label="Below 140/90",
            not_met_label="140/90 or above, or none",
        ),
        Measure(
            "CMS122v12",
            "Diabetes: Glycemic Status Assessment Greater Than 9 %",
            "Adults 18–75 with diabetes whose most recent HbA1c was above 9 % or missing (lower is better).",
            glycemic_status_poor,
            inverse=True,
            numerator_label="Above 9 % or missing",
            not_met_label="9 % or below",
        ),
        Measure(
            "CMS125v12",
            "Breast Cancer Screening",
            "Women 52–74 with a mammogram in the last 27 months.",
            breast_cancer_screening,
            numerator_label="Screened",
            not_met_label="Not screened",
        ),
        Measure(
            "CMS130v12",
            "Colorectal Cancer Screening",
            "Adults 46–75 with an up-to-date colorectal cancer screening.",
            colorectal_cancer_screening,
            numerator_label="Screened",
            not_met_label="Not screened",
        ),
        Measure(
            "CMS147v13",
            "Preventive Care and Screening: Influenza Immunization",
            "Patients 6 months and older seen in flu season who had a flu vaccine that season.",
            influenza_immunization,
            numerator_label="Vaccinated",
            not_met_label="Not vaccinated",
        ),
        Measure(
            "CMS2v13",
            "Preventive Care and Screening: Screening for Depression",
            "Patients 12 and older seen in the period who had a PHQ-9 depression screening in it.",
            depression_screening,
            numerator_label="Screened",
            not_met_label="Not screened",
        ),
    )
}


def attributed_practitioner(patient: PatientData, period: Period) -> int | None:
    """The care team's provider (as a practitioner), else the practitioner of the last visit in the period."""
    if patient.team_practitioner is not None:
        return patient.team_practitioner
    visits = patient.visits_in(period.start, period.end)
    return max(visits, key=lambda v: v[1])[2] if visits else None


# -- Loading -----------------------------------------------------------------------------------


def _bp_value(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _lowest(current: Decimal | None, new: Decimal | None) -> Decimal | None:
    if new is None:
        return current
    return new if current is None or new < current else current


def load_patients(patient_ids: Iterable[int], since: date, now: datetime) -> dict[int, PatientData]:
    """Everything the measures read about these patients, from `since` (local date) to `now`."""
    from patients.models import (
        Appointment,
        CareTeamMember,
        Condition,
        Immunization,
        Observation,
        Patient,
        Practitioner,
    )

    ids = list(patient_ids)
    zone = timezone.get_current_timezone()
    data = {
        pk: PatientData(pk=pk, birth=dob, sex=sex or "unknown")
        for pk, dob, sex in Patient.objects.filter(pk__in=ids).values_list("pk", "date_of_birth", "sex")
    }
    condition_codes = (
        HYPERTENSION | DIABETES | ESRD | PREGNANCY | BILATERAL_MASTECTOMY | COLORECTAL_CANCER | DEPRESSION_OR_BIPOLAR
    )
    condition_prefixes = DIABETES_ICD_PREFIXES + COLORECTAL_CANCER_ICD_PREFIXES + DEPRESSION_OR_BIPOLAR_ICD_PREFIXES
    conditions = Condition.objects.filter(patient_id__in=ids)
    for patient_id, code, status, onset in conditions.values_list(
        "patient_id", "code", "clinical_status", "onset_date"
    ):
        if code in condition_codes or code.startswith(condition_prefixes):
            data[patient_id].conditions.append((code, status, onset))
    # Readings are needed from the earliest period's start, screenings from up to 10 years before it.
    readings_from = datetime.combine(since, datetime.min.time(), zone)
    screenings_from = datetime.combine(years_before(since, LOOKBACK_YEARS), datetime.min.time(), zone)
    observations = (
        Observation.objects.filter(patient_id__in=ids, effective_at__lte=now)
        .filter(
            Q(code__in=sorted(OBSERVATION_CODES - SCREENING_CODES), effective_at__gte=readings_from)
            | Q(code__in=sorted(SCREENING_CODES), effective_at__gte=screenings_from)
        )
        .values_list("patient_id", "code", "effective_at", "value_quantity", "components")
    )
    for patient_id, code, at, value, components in observations.iterator(chunk_size=5000):
        patient = data[patient_id]
        day = timezone.localtime(at, zone).date()
        if code in BP_PANELS or code in (SYSTOLIC, DIASTOLIC):
            systolic, diastolic = patient.bp_days.get(day, (None, None))
            if code == SYSTOLIC:
                systolic = _lowest(systolic, value)
            elif code == DIASTOLIC:
                diastolic = _lowest(diastolic, value)
            else:
                for item in components or []:
                    if isinstance(item, dict) and item.get("code") == SYSTOLIC:
                        systolic = _lowest(systolic, _bp_value(item.get("value")))
                    elif isinstance(item, dict) and item.get("code") == DIASTOLIC:
                        diastolic = _lowest(diastolic, _bp_value(item.get("value")))
            patient.bp_days[day] = (systolic, diastolic)
        elif code in GLYCEMIC:
            patient.glycemic.append((at, day, value))
        else:
            patient.screenings.setdefault(code, []).append(day)
    for patient_id, day, status in Immunization.objects.filter(
        patient_id__in=ids, vaccine_code__in=sorted(FLU_CVX), occurrence_date__gte=years_before(since, 1)
    ).values_list("patient_id", "occurrence_date", "status"):
        data[patient_id].flu.append((day, status))
    visits = Appointment.objects.filter(
        patient_id__in=ids,
        status__in=ATTENDED,
        starts_at__gte=datetime.combine(years_before(since, 1), datetime.min.time(), zone),
        starts_at__lte=now,
    ).exclude(appointment_type__in=NOT_VISITS)
    for patient_id, starts_at, practitioner_id in visits.values_list("patient_id", "starts_at", "practitioner_id"):
        data[patient_id].visits.append((timezone.localtime(starts_at, zone).date(), starts_at, practitioner_id))
    by_user = dict(Practitioner.objects.filter(user__isnull=False).values_list("user_id", "pk"))
    providers = CareTeamMember.objects.filter(patient_id__in=ids, active=True, team_role="provider").order_by("pk")
    for patient_id, user_id in providers.values_list("patient_id", "user_id"):
        if data[patient_id].team_practitioner is None and user_id in by_user:
            data[patient_id].team_practitioner = by_user[user_id]
    return data


# -- The builder ---------------------------------------------------------------------------------


def periods_to_refresh(since: datetime | None, now: datetime) -> list[Period]:
    """Full: the last 12 periods. Incremental: those still open at the last run (end on or after its date)."""
    today = timezone.localdate(now)
    ends = period_ends(today, 12)
    if since is not None:
        last_run = timezone.localdate(since)
        ends = [end for end in ends if end >= last_run]
    return [Period(end) for end in ends]


@builder("measures")
def build_measure_results(since: datetime | None, now: datetime) -> int:
    """Recompute MeasureResult for the periods `periods_to_refresh` names, in one transaction (a page
    never sees a half-built period). Candidates: patients with an attended visit since the earliest
    period's start (every measure's IP needs one); in an incremental run, only those whose records,
    conditions, observations, immunizations, care team or appointments changed since the last run.
    The counts of those periods are then summed again from every patient's results."""
    from analytics.population import changed_patient_ids
    from patients.models import Appointment, CareTeamMember, Immunization

    organization = require_current_organization()
    periods = periods_to_refresh(since, now)
    earliest = min(p.start for p in periods)
    written = 0
    with timezone.override(organization.zone), transaction.atomic():
        zone = timezone.get_current_timezone()
        ends = [p.end for p in periods]
        results = MeasureResult.objects.filter(period_end__in=ends)
        candidates = (
            Appointment.objects.filter(
                status__in=ATTENDED, starts_at__gte=datetime.combine(earliest, datetime.min.time(), zone)
            )
            .exclude(appointment_type__in=NOT_VISITS)
            .order_by("patient_id")
            .values_list("patient_id", flat=True)
            .distinct()
        )
        if since is not None:  # only the patients whose inputs changed (time alone: the nightly rebuild)
            changed = changed_patient_ids(since, now, Immunization.objects.all(), CareTeamMember.objects.all())
            results = results.filter(patient_id__in=changed.values("pk"))
            candidates = candidates.filter(patient_id__in=changed.values("pk"))
        results.delete()
        MeasureCount.objects.filter(period_end__in=ends).delete()
        for batch in chunks(candidates.iterator(chunk_size=5000), 2000):
            patients = load_patients(batch, earliest, now)
            rows: list[tuple[Any, ...]] = []
            for patient in patients.values():
                for period in periods:
                    practitioner: int | None | bool = False  # computed once per patient and period
                    for measure in MEASURES.values():
                        result = measure.evaluate(patient, period)
                        if not result.in_ip:
                            continue
                        if practitioner is False:
                            practitioner = attributed_practitioner(patient, period)
                        rows.append(
                            (
                                patient.pk,
                                measure.id,
                                period.end,
                                result.in_denominator,
                                result.excluded,
                                result.in_numerator,
                                practitioner,
                            )
                        )
            for part in chunks(rows, 5000):
                _insert(organization.pk, part, now)
            written += len(rows)
        with connection.cursor() as cursor:
            cursor.execute(_COUNT_SQL, [now, now, now, organization.pk, ends])
    return written


_INSERT_SQL = """
INSERT INTO analytics_measureresult
       (organization_id, patient_id, measure, period_end, in_ip, in_denominator, excluded, in_numerator,
        practitioner_id, refreshed_at, created_at, updated_at)
SELECT %s, v.patient_id, v.measure, v.period_end, TRUE, v.in_denominator, v.excluded, v.in_numerator,
       v.practitioner_id, %s, %s, %s
  FROM unnest(%s::bigint[], %s::text[], %s::date[], %s::boolean[], %s::boolean[], %s::boolean[], %s::bigint[])
       AS v(patient_id, measure, period_end, in_denominator, excluded, in_numerator, practitioner_id)
"""


# The pages' counts: one row per measure, period and practitioner (RLS applies to the SELECT too).
_COUNT_SQL = """
INSERT INTO analytics_measurecount
       (organization_id, measure, period_end, practitioner_id, denominator, excluded, numerator,
        refreshed_at, created_at, updated_at)
SELECT organization_id, measure, period_end, practitioner_id,
       count(*) FILTER (WHERE in_denominator), count(*) FILTER (WHERE excluded),
       count(*) FILTER (WHERE in_numerator), %s, %s, %s
  FROM analytics_measureresult
 WHERE organization_id = %s AND period_end = ANY(%s::date[])
 GROUP BY organization_id, measure, period_end, practitioner_id
"""


def _insert(organization_id: int, rows: list[tuple[Any, ...]], now: datetime) -> None:
    """One INSERT ... SELECT FROM unnest(arrays) per batch: bulk_create's per-field preparation was
    three quarters of the refresh's time. Row-level security checks each row as for any INSERT
    (COPY is not allowed on RLS tables); the model's check constraints hold in the database."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, [organization_id, now, now, now, *columns])
