"""Population health: which chronic conditions the clinic's patients live with, and who is at risk.

    CONDITIONS                      # the chronic-condition catalogue (SNOMED CT codes, ICD-10-CM prefixes)
    risk_points(...) / risk_tier()  # the risk tier rules, in one place
    build_patient_risk              # the refresh builder: one PatientRisk row per patient
    prevalence_table(condition, by) # prevalence through suppression.CountTable

Prevalence = active patients with an active (active, recurrence, relapse) condition of the group,
over active patients, the same "active condition" the outreach campaigns use. The facts are as of
the last refresh (every 15 minutes, rebuilt nightly: analytics.tasks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from analytics.models import AgeBand, AppointmentFact, Outcome, PatientFact, PatientRisk
from analytics.refresh import CHUNK, builder, chunks, upsert_facts
from analytics.suppression import Column, CountTable, RateColumn

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ACTIVE_STATUSES = ("active", "recurrence", "relapse")


@dataclass(frozen=True)
class ChronicCondition:
    key: str
    label: str
    snomed: frozenset[str]
    icd10_prefixes: tuple[str, ...] = ()

    def matches(self, system: str, code: str) -> bool:
        if system == ICD10CM:
            return code.upper().startswith(self.icd10_prefixes) if self.icd10_prefixes else False
        return code in self.snomed


def _catalogue(*items: ChronicCondition) -> dict[str, ChronicCondition]:
    return {item.key: item for item in items}


# The codes the demo data (patients/demo.py PROBLEMS) and the FHIR imports (integrations/fhir/
# synthetic.py, Synthea-style bundles) produce, plus the common siblings an EHR sends for the same
# disease. FHIR conditions coded in ICD-10-CM match by category prefix (E11 = type 2 diabetes).
CONDITIONS: dict[str, ChronicCondition] = _catalogue(
    ChronicCondition(
        "hypertension",
        "Hypertension",
        frozenset({"38341003", "59621000", "1201005"}),  # hypertensive disorder, essential, benign essential
        ("I10", "I11", "I12", "I13", "I15"),
    ),
    ChronicCondition(
        "type2_diabetes",
        "Type 2 diabetes",
        frozenset({"44054006", "313436004", "368581000119106"}),  # T2DM; with complications; with neuropathy
        ("E11",),
    ),
    ChronicCondition("asthma", "Asthma", frozenset({"195967001", "233678006"}), ("J45",)),  # asthma; childhood
    ChronicCondition(
        "copd",
        "COPD",
        frozenset({"13645005", "185086009", "87433001"}),  # COPD; chronic obstructive bronchitis; emphysema
        ("J44", "J43"),
    ),
    ChronicCondition(
        "heart_failure",
        "Heart failure",
        frozenset({"84114007", "42343007", "88805009"}),  # heart failure; congestive; chronic congestive
        ("I50",),
    ),
    ChronicCondition(
        "ckd",
        "Chronic kidney disease",
        # CKD; stages 1 to 5 (Synthea codes them by stage)
        frozenset({"709044004", "431855005", "431856006", "433144002", "431857002", "433146000"}),
        ("N18",),
    ),
    ChronicCondition(
        "depression",
        "Depression",
        frozenset({"35489007", "370143000", "36923009"}),  # depressive disorder; major depressive; single episode
        ("F32", "F33"),
    ),
    ChronicCondition(
        "hyperlipidemia",
        "Hyperlipidemia",
        frozenset({"55822004", "13644009", "267432004"}),  # hyperlipidemia; hypercholesterolemia; pure
        ("E78",),
    ),
    ChronicCondition("obesity", "Obesity", frozenset({"414916001", "162864005", "238136002"}), ("E66",)),
)


def conditions_of(rows: Iterable[tuple[str, str]]) -> list[str]:
    """The catalogue keys matched by (code system, code) pairs, in catalogue order."""
    found = {item.key for system, code in rows for item in CONDITIONS.values() if item.matches(system, code)}
    return [key for key in CONDITIONS if key in found]


def _chronic_condition_q() -> Q:
    snomed = sorted({code for item in CONDITIONS.values() for code in item.snomed})
    q = Q(code__in=snomed) & ~Q(code_system=ICD10CM)
    prefixes = sorted({p for item in CONDITIONS.values() for p in item.icd10_prefixes})
    for prefix in prefixes:
        q |= Q(code_system=ICD10CM, code__istartswith=prefix)
    return q


# -- The risk tier -------------------------------------------------------------------------------

SYSTOLIC = "8480-6"
BLOOD_PRESSURE = "85354-9"
HBA1C = "4548-4"
SYSTOLIC_UNCONTROLLED = Decimal("140")  # mm[Hg], last reading at or above
HBA1C_UNCONTROLLED = Decimal("9")  # %, last result above
WINDOW = timedelta(days=365)
ACUTE_TYPES = ("post_discharge",)


class Tier:
    LOW, MODERATE, ELEVATED, HIGH = 1, 2, 3, 4
    LABELS = {1: "1 — Low", 2: "2 — Moderate", 3: "3 — Elevated", 4: "4 — High"}


def risk_points(*, conditions: int, bp_uncontrolled: bool, a1c_uncontrolled: bool, no_shows: int, acute: int) -> int:
    """Points for one patient. The tier rules, all of them:

    - chronic conditions of the catalogue, active: 1 point each, at most 3;
    - uncontrolled measures: 2 points if the last systolic blood pressure (LOINC 8480-6, alone or
      as the component of a 85354-9 panel) is >= 140 mm[Hg]; 2 more if the last HbA1c (4548-4) is > 9 %;
    - no-shows in the last 12 months (AppointmentFact outcome no_show): 1 point for one, 2 for more;
    - acute encounters in the last 12 months: 2 points each, at most 4. The data offers post-discharge
      follow-up visits (appointment type post_discharge, not cancelled, started in the 12 months
      before now or booked within 30 days ahead: each stands for one hospital discharge). FHIR
      Encounter rows live in integrations, which analytics may not import (sibling layers).

    Highest possible: 3 + 4 + 2 + 4 = 13.
    """
    points = min(conditions, 3)
    points += 2 * bp_uncontrolled + 2 * a1c_uncontrolled
    points += min(no_shows, 2)
    points += 2 * min(acute, 2)
    return points


def risk_tier(points: int) -> int:
    """Tier cut-offs: 0–1 points low (1), 2–3 moderate (2), 4–5 elevated (3), 6 or more high (4)."""
    if points >= 6:
        return Tier.HIGH
    if points >= 4:
        return Tier.ELEVATED
    if points >= 2:
        return Tier.MODERATE
    return Tier.LOW


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except ArithmeticError:
        return None


def _of(queryset: QuerySet[Any], patient_ids: list[int] | None) -> QuerySet[Any]:
    """These patients' rows, or everyone's (None: a full rebuild reads each table once, in one scan)."""
    return queryset if patient_ids is None else queryset.filter(patient_id__in=patient_ids)


def _last_systolic(patient_ids: list[int] | None) -> dict[int, Decimal]:
    from patients.models import Observation

    rows = (
        _of(Observation.objects.filter(code__in=(BLOOD_PRESSURE, SYSTOLIC)), patient_ids)
        .order_by("patient_id", "-effective_at", "-id")
        .distinct("patient_id")
        .values_list("patient_id", "code", "value_quantity", "components")
    )
    found: dict[int, Decimal] = {}
    for patient_id, code, value, components in rows:
        if code == BLOOD_PRESSURE:
            part = next((c for c in components or [] if isinstance(c, dict) and c.get("code") == SYSTOLIC), None)
            value = part.get("value") if part else None
        number = _decimal(value)
        if number is not None:
            found[patient_id] = number
    return found


def _last_hba1c(patient_ids: list[int] | None) -> dict[int, Decimal]:
    from patients.models import Observation

    rows = (
        _of(Observation.objects.filter(code=HBA1C, value_quantity__isnull=False), patient_ids)
        .order_by("patient_id", "-effective_at", "-id")
        .distinct("patient_id")
        .values_list("patient_id", "value_quantity")
    )
    return dict(rows)


def _chronic_conditions(patient_ids: list[int] | None) -> dict[int, list[str]]:
    from patients.models import Condition

    pairs: dict[int, list[tuple[str, str]]] = {}
    rows = _of(Condition.objects.filter(_chronic_condition_q(), clinical_status__in=ACTIVE_STATUSES), patient_ids)
    for patient_id, system, code in rows.values_list("patient_id", "code_system", "code"):
        pairs.setdefault(patient_id, []).append((system, code))
    return {pk: conditions_of(found) for pk, found in pairs.items()}


def _appointment_counts(patient_ids: list[int] | None, now: datetime) -> tuple[dict[int, int], dict[int, int]]:
    facts = _of(AppointmentFact.objects.all(), patient_ids)
    no_shows = facts.filter(outcome=Outcome.NO_SHOW, starts_at__gte=now - WINDOW, starts_at__lte=now)
    acute = facts.filter(
        appointment_type__in=ACUTE_TYPES,
        starts_at__gte=now - WINDOW,
        starts_at__lt=now + timedelta(days=30),
    ).exclude(outcome__in=(Outcome.CANCELLED, Outcome.LATE_CANCEL))
    count = Count("id")
    return (
        dict(no_shows.values("patient_id").annotate(n=count).values_list("patient_id", "n")),
        dict(acute.values("patient_id").annotate(n=count).values_list("patient_id", "n")),
    )


def changed_patient_ids(since: datetime, now: datetime, *also: QuerySet[Any]) -> QuerySet[Any]:
    """Patients whose conditions, observations, record or appointments (their facts refreshed by
    this run) changed since the last run, and those with a changed row in each of `also` (querysets
    of models with patient_id and updated_at). Time alone is left to the nightly full rebuild."""
    from patients.models import Condition, Observation, Patient

    changed = (
        Q(pk__in=Condition.objects.filter(updated_at__gte=since).values("patient_id"))
        | Q(pk__in=Observation.objects.filter(updated_at__gte=since).values("patient_id"))
        | Q(pk__in=AppointmentFact.objects.filter(refreshed_at__gte=now).values("patient_id"))
        | Q(updated_at__gte=since)
    )
    for rows in also:
        changed |= Q(pk__in=rows.filter(updated_at__gte=since).values("patient_id"))
    return Patient.objects.filter(changed)


RISK_COLUMNS = (
    "patient",
    "conditions",
    "condition_count",
    "bp_uncontrolled",
    "a1c_uncontrolled",
    "no_shows_12m",
    "acute_12m",
    "points",
    "tier",
    "refreshed_at",
)


@builder("risk")
def build_patient_risk(since: datetime | None, now: datetime) -> int:
    """One PatientRisk per patient: chronic conditions, uncontrolled measures, no-shows, acute visits, tier.

    Runs after the appointments builder (it counts AppointmentFact rows). Incremental runs recompute
    the patients whose conditions, observations, record or appointments changed; the nightly full
    rebuild recomputes everyone (the 12-month windows move with time, and a deleted condition or
    observation leaves no updated row behind to find)."""
    from patients.models import Patient

    ids = Patient.objects.all() if since is None else changed_patient_ids(since, now)
    written = 0
    if since is None:  # everyone: each input read once for the whole organization
        conditions, systolic, hba1c = _chronic_conditions(None), _last_systolic(None), _last_hba1c(None)
        no_shows, acute = _appointment_counts(None, now)
    for batch in chunks(ids.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=CHUNK)):
        if since is not None:
            conditions, systolic, hba1c = _chronic_conditions(batch), _last_systolic(batch), _last_hba1c(batch)
            no_shows, acute = _appointment_counts(batch, now)
        rows = []
        for pk in batch:
            keys = conditions.get(pk, [])
            bp_high = pk in systolic and systolic[pk] >= SYSTOLIC_UNCONTROLLED
            a1c_high = pk in hba1c and hba1c[pk] > HBA1C_UNCONTROLLED
            points = risk_points(
                conditions=len(keys),
                bp_uncontrolled=bp_high,
                a1c_uncontrolled=a1c_high,
                no_shows=no_shows.get(pk, 0),
                acute=acute.get(pk, 0),
            )
            rows.append(
                (
                    pk,
                    keys,
                    len(keys),
                    bp_high,
                    a1c_high,
                    no_shows.get(pk, 0),
                    acute.get(pk, 0),
                    points,
                    risk_tier(points),
                    now,
                )
            )
        written += upsert_facts(PatientRisk, RISK_COLUMNS, rows, "patient")
    return written


# -- Prevalence and the tier distribution (aggregates, through CountTable) ----------------------

DIMENSIONS = {"age_band": "Age band", "sex": "Sex", "language": "Language"}
ANY = "any"
WITH, WITHOUT = "with", "without"
SEX_LABELS = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}


def condition_choices() -> list[tuple[str, str]]:
    return [(ANY, "Any chronic condition"), *[(c.key, c.label) for c in CONDITIONS.values()]]


def _with_condition(condition: str) -> QuerySet[PatientRisk]:
    risks = PatientRisk.objects.all()
    if condition == ANY:
        return risks.filter(condition_count__gt=0)
    return risks.filter(conditions__contains=[condition])


def _dimension_rows(dimension: str, present: Iterable[str]) -> list[tuple[str, str]]:
    present = set(present)
    if dimension == "age_band":
        return [(value, str(label)) for value, label in AgeBand.choices]
    if dimension == "sex":
        ordered = [v for v in SEX_LABELS if v in present] + sorted(present - set(SEX_LABELS))
        return [(v, SEX_LABELS.get(v, v.capitalize())) for v in ordered]
    return [(v, v or "Not recorded") for v in sorted(present)]


PREVALENCE_COLUMNS = [Column(WITH, "With the condition"), Column(WITHOUT, "Without")]
PREVALENCE_RATES = [RateColumn("prevalence", "Prevalence", numerator=WITH)]


def condition_counts() -> tuple[int, dict[str, int]]:
    """Active patients, and per catalogue condition how many of them have it (one query each)."""
    active_ids = PatientFact.objects.filter(is_active=True).values("patient_id")
    active = PatientFact.objects.filter(is_active=True).count()
    risks = PatientRisk.objects.filter(patient_id__in=active_ids)
    return active, {key: risks.filter(conditions__contains=[key]).count() for key in CONDITIONS}


def prevalence_table(condition: str = ANY, dimension: str = "age_band") -> CountTable:
    """Active patients with / without `condition` (a CONDITIONS key or ANY) by `dimension`, with the
    prevalence rate and its Wilson interval; counts 1–10 suppressed."""
    if condition != ANY and condition not in CONDITIONS:
        raise ValueError("unknown condition")
    if dimension not in DIMENSIONS:
        raise ValueError("unknown dimension")
    active = PatientFact.objects.filter(is_active=True)
    totals = dict(active.values(dimension).annotate(n=Count("id")).values_list(dimension, "n"))
    with_ = dict(
        active.filter(patient_id__in=_with_condition(condition).values("patient_id"))
        .values(dimension)
        .annotate(n=Count("id"))
        .values_list(dimension, "n")
    )
    counts: dict[tuple[str, str], int] = {}
    for value, total in totals.items():
        counts[(value, WITH)] = with_.get(value, 0)
        counts[(value, WITHOUT)] = total - with_.get(value, 0)
    label = "Any chronic condition" if condition == ANY else CONDITIONS[condition].label
    return CountTable(
        title=f"{label}: prevalence by {DIMENSIONS[dimension].lower()}",
        row_header=DIMENSIONS[dimension],
        columns=PREVALENCE_COLUMNS,
        rows=_dimension_rows(dimension, totals),
        counts=counts,
        rates=PREVALENCE_RATES,
        total_label="All active patients",
    )


def tier_table() -> CountTable:
    """Active patients by number of chronic conditions (rows) and risk tier (columns)."""
    active_ids = PatientFact.objects.filter(is_active=True).values("patient_id")
    rows = (
        PatientRisk.objects.filter(patient_id__in=active_ids)
        .values("condition_count", "tier")
        .annotate(n=Count("id"))
        .values_list("condition_count", "tier", "n")
    )
    counts: dict[tuple[str, str], int] = {}
    for conditions, tier, n in rows:
        key = (str(min(conditions, 3)), str(tier))
        counts[key] = counts.get(key, 0) + n
    return CountTable(
        title="Risk tier by number of chronic conditions",
        row_header="Chronic conditions",
        columns=[Column(str(tier), label) for tier, label in Tier.LABELS.items()],
        rows=[("0", "None"), ("1", "One"), ("2", "Two"), ("3", "Three or more")],
        counts=counts,
        rates=[RateColumn("high", "High tier", numerator=str(Tier.HIGH))],
        total_label="All active patients",
    )


def refreshed_at() -> datetime | None:
    """When the risk facts were last written (None before the first refresh)."""
    latest = PatientRisk.objects.order_by("-refreshed_at").values_list("refreshed_at", flat=True).first()
    return timezone.localtime(latest) if latest else None
