"""Saved cohorts: a definition over the analytics facts, its validation, its patients.

    {"conditions": ["type2_diabetes", "ckd"],   # any of (population.CONDITIONS keys), active
     "age_bands": ["40-64", "65-74"],            # analytics.models.AgeBand values
     "sex": ["female"],                          # patients.models.Sex values
     "languages": ["es"],                        # preferred language codes
     "risk_tiers": [3, 4],                       # population.Tier (1 low ... 4 high)
     "uncontrolled": true}                       # a last systolic >= 140 or a last HbA1c > 9 (false: neither)

Every key is optional (absent or empty: no filter on it); the filters combine with AND, the values
of one filter with OR. Only active patients are ever selected. The selection reads PatientFact and
PatientRisk, so it is as of the last analytics refresh.

Outreach uses a cohort through `cohort_patient_ids_by_id`, named by the ENGAGEMENT_COHORT_RESOLVER
setting (engagement is below analytics and cannot import it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, QuerySet

from analytics.models import AgeBand, Cohort, PatientFact, PatientRisk
from analytics.population import CONDITIONS, Tier
from analytics.suppression import HIDDEN, SUPPRESS_BELOW

KEYS = ("conditions", "age_bands", "sex", "languages", "risk_tiers", "uncontrolled")
SEXES = ("female", "male", "other", "unknown")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def _string_list(definition: dict[str, Any], key: str, allowed: tuple[str, ...] | None) -> list[str]:
    value = definition.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f'"{key}" must be a list of strings.', code="bad_type")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValidationError(
                f"Unknown {key.replace('_', ' ')}: {', '.join(unknown)[:200]} (allowed: {', '.join(allowed)}).",
                code="unknown_value",
            )
    return sorted(set(value), key=value.index)


def cohort_definition_clean(definition: Any) -> dict[str, Any]:
    """The definition in normal form (empty filters dropped), or ValidationError saying what is wrong."""
    if not isinstance(definition, dict):
        raise ValidationError('The definition must be a JSON object, e.g. {"conditions": ["asthma"]}.', code="bad_type")
    unknown = sorted(set(definition) - set(KEYS))
    if unknown:
        raise ValidationError(
            f"Unknown key: {', '.join(str(k)[:40] for k in unknown)} (allowed: {', '.join(KEYS)}).",
            code="unknown_key",
        )
    clean: dict[str, Any] = {
        "conditions": _string_list(definition, "conditions", tuple(CONDITIONS)),
        "age_bands": _string_list(definition, "age_bands", tuple(AgeBand.values)),
        "sex": _string_list(definition, "sex", SEXES),
        "languages": _string_list(definition, "languages", None),
    }
    bad = [v for v in clean["languages"] if not _LANGUAGE.match(v)]
    if bad:
        raise ValidationError('"languages" are language codes such as "en" or "es".', code="bad_language")
    tiers = definition.get("risk_tiers", [])
    if not isinstance(tiers, list) or not all(type(t) is int and Tier.LOW <= t <= Tier.HIGH for t in tiers):
        raise ValidationError('"risk_tiers" must be a list of tiers 1 to 4.', code="bad_tier")
    clean["risk_tiers"] = sorted(set(tiers))
    uncontrolled = definition.get("uncontrolled")
    if uncontrolled is not None and not isinstance(uncontrolled, bool):
        raise ValidationError('"uncontrolled" is true, false or absent.', code="bad_type")
    clean["uncontrolled"] = uncontrolled
    return {k: v for k, v in clean.items() if v not in ([], None)}


@transaction.atomic
def cohort_save(*, cohort: Cohort | None = None, name: str, definition: Any, user: Any = None) -> Cohort:
    """Create or update a cohort of the current organization (the definition is validated first)."""
    cleaned = cohort_definition_clean(definition)
    if cohort is None:
        cohort = Cohort(created_by=user if getattr(user, "pk", None) else None)
    cohort.name, cohort.definition = name.strip(), cleaned
    cohort.full_clean(exclude=["organization"])
    cohort.validate_constraints()
    cohort.save()
    return cohort


def cohort_list() -> QuerySet[Cohort]:
    return Cohort.objects.select_related("created_by").order_by("name", "id")


def cohort_facts(definition: dict[str, Any]) -> QuerySet[PatientFact]:
    """The active patients' facts a definition selects."""
    return PatientFact.objects.filter(is_active=True).filter(cohort_q(definition))


def cohort_q(definition: dict[str, Any]) -> Q:
    """A definition as a condition on PatientFact (risk criteria through a PatientRisk subquery)."""
    condition = Q()
    if definition.get("age_bands"):
        condition &= Q(age_band__in=definition["age_bands"])
    if definition.get("sex"):
        condition &= Q(sex__in=definition["sex"])
    if definition.get("languages"):
        condition &= Q(language__in=definition["languages"])
    risks = PatientRisk.objects.all()
    narrowed = False
    if definition.get("conditions"):
        risks, narrowed = risks.filter(conditions__overlap=definition["conditions"]), True
    if definition.get("risk_tiers"):
        risks, narrowed = risks.filter(tier__in=definition["risk_tiers"]), True
    if definition.get("uncontrolled") is not None:
        either = Q(bp_uncontrolled=True) | Q(a1c_uncontrolled=True)
        risks, narrowed = (risks.filter(either) if definition["uncontrolled"] else risks.exclude(either)), True
    if narrowed:
        condition &= Q(patient_id__in=risks.values("patient_id"))
    return condition


def cohort_sizes(cohorts: Iterable[Cohort]) -> dict[int, int]:
    """Each cohort's size, all from one scan of the facts (one COUNT ... FILTER per cohort)."""
    counts = {f"c{cohort.pk}": Count("id", filter=cohort_q(cohort.definition)) for cohort in cohorts}
    if not counts:
        return {}
    found = PatientFact.objects.filter(is_active=True).aggregate(**counts)
    return {int(key[1:]): value for key, value in found.items()}


def cohort_patient_ids(cohort: Cohort) -> list[int]:
    """The ids of the cohort's patients (active, as of the last refresh), in id order."""
    return list(cohort_facts(cohort.definition).order_by("patient_id").values_list("patient_id", flat=True))


def cohort_size_display(size: int, *, exact: bool) -> int | str:
    """A size as shown: 1–10 become "<11" unless the user may see patient lists (`exact`)."""
    return HIDDEN if not exact and 0 < size < SUPPRESS_BELOW else size


def cohort_patient_ids_by_id(cohort_id: Any) -> QuerySet[Any] | None:
    """ENGAGEMENT_COHORT_RESOLVER: the patient ids of the current organization's cohort `cohort_id`
    (a lazy queryset, in id order, so a campaign filters by a subquery instead of a list of ids), or None
    when it has no such cohort (another organization's id is not found: tenant manager + RLS)."""
    if isinstance(cohort_id, bool):
        return None
    try:
        cohort = Cohort.objects.get(pk=int(cohort_id))
    except (Cohort.DoesNotExist, TypeError, ValueError, OverflowError):
        return None
    return cohort_facts(cohort.definition).order_by("patient_id").values_list("patient_id", flat=True)
