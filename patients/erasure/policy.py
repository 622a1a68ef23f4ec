"""What erasure and retention do with each model's rows, found through model meta.

Every model that points at a patient (a foreign key, `patients.merge.patient_relations`) or at a
row that does (one hop: a goal through its care plan, a task's history through its task) is
walked, so a model added later, in any app, is erased too without being listed here. The default
is the safe one: every encrypted field of the row is pseudonymised (emptied, its blind indexes
recomputed from the empty value, so the old value finds nothing). An app changes that for one of
its models with `register_erasure_policy`:

- `keep`: encrypted fields the law requires the organization to keep for the clinical retention
  period (a condition's name, a medication's dose); an erasure request leaves them, the retention
  job pseudonymises them when the period ends;
- `delete`: rows removed outright (document bytes, identifiers of other systems);
- `retention`: `MESSAGES` for rows the retention job deletes on their own shorter period
  (messages sent and received, call notes), measured on `date_field`;
- `skip`: the compliance records themselves (the request, the hold);
- `activity=False`: rows derived by jobs (analytics), which say nothing of the patient's last
  activity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db import models

from healthcrm.models import Organization
from patients.merge import patient_relations
from patients.models import Patient

CLINICAL = "clinical"
MESSAGES = "messages"

# Defaults (Organization.settings["retention"] overrides, in whole years): US states keep adult
# medical records 7 to 10 years after the last encounter; messages and call notes far less.
DEFAULT_CLINICAL_YEARS = 10
DEFAULT_MESSAGES_YEARS = 2
MIN_YEARS, MAX_YEARS = 1, 100


@dataclass(frozen=True)
class ErasurePolicy:
    keep: frozenset[str] = frozenset()
    delete: bool = False
    retention: str = CLINICAL
    date_field: str = "created_at"
    skip: bool = False
    # Whether a row created or changed counts as the patient's activity for the retention period
    # (not for rows a job derives from the others: analytics facts are refreshed every day).
    activity: bool = True
    # Runs after the rows `ids` were erased (or before they are deleted): files, side tables.
    after_erase: Callable[[list[Any]], None] | None = None


_POLICIES: dict[str, ErasurePolicy] = {}


def register_erasure_policy(
    label: str,
    *,
    keep: tuple[str, ...] = (),
    delete: bool = False,
    retention: str = CLINICAL,
    date_field: str = "created_at",
    skip: bool = False,
    activity: bool = True,
    after_erase: Callable[[list[Any]], None] | None = None,
) -> None:
    """Declare how erasure and retention treat the rows of model `label` ("app_label.modelname")."""
    if retention not in (CLINICAL, MESSAGES):
        raise ValueError(f"unknown retention category {retention!r}")
    _POLICIES[label.lower()] = ErasurePolicy(
        keep=frozenset(keep),
        delete=delete,
        retention=retention,
        date_field=date_field,
        skip=skip,
        activity=activity,
        after_erase=after_erase,
    )


def erasure_policy(model: type[models.Model]) -> ErasurePolicy:
    return _POLICIES.get(model._meta.label_lower, ErasurePolicy())


@dataclass(frozen=True)
class Holding:
    """How rows of `model` belong to a patient: `path` is the ORM lookup to the patient's id."""

    model: type[models.Model]
    path: str

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    def rows(self, patient_id: int) -> models.QuerySet[Any]:
        return self.model._default_manager.filter(**{self.path: patient_id})


def patient_holdings() -> list[Holding]:
    """Every model holding a patient's rows: direct foreign keys to Patient (not the patient's own
    `merged_into`, nor generic keys: object permissions and FHIR links hold ids only), then one hop
    through one of those (children before their parents, so a deleted parent's children are gone
    first). Skipped models are left out."""
    direct: list[Holding] = []
    for relation in patient_relations():
        if relation.generic or relation.model is Patient:
            continue
        if not _is_tenant(relation.model):
            continue  # the name-search rows follow the patient's own save (a trigger)
        direct.append(Holding(relation.model, f"{relation.fields[0]}_id"))
    parents = {h.model: h for h in direct}
    hops: list[Holding] = []
    for model in apps.get_models():
        if model in parents or model is Patient or not _is_tenant(model):
            continue
        for f in model._meta.get_fields():
            target = f.related_model if isinstance(f, models.ForeignKey) else None
            if isinstance(target, type) and target in parents:
                parent = parents[target]
                hops.append(Holding(model, f"{f.name}__{parent.path}"))
                break
    found = [*hops, *direct]
    return [h for h in found if not erasure_policy(h.model).skip]


def _is_tenant(model: type[models.Model]) -> bool:
    return any(f.name == "organization" for f in model._meta.concrete_fields)


def encrypted_fields(model: type[models.Model]) -> Iterator[models.Field]:
    from healthcrm.crypto import is_encrypted

    for f in model._meta.concrete_fields:
        if is_encrypted(f):
            yield f


@dataclass(frozen=True)
class RetentionPeriods:
    clinical: timedelta
    messages: timedelta


def _years(raw: Any, default: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not MIN_YEARS <= raw <= MAX_YEARS:
        return default
    return raw


def retention_periods(organization: Organization) -> RetentionPeriods:
    """The organization's periods (`settings["retention"]`: `clinical_years`, `messages_years`;
    a missing or invalid value falls back to the default)."""
    stored = (organization.settings or {}).get("retention") or {}
    if not isinstance(stored, dict):
        stored = {}
    clinical = _years(stored.get("clinical_years"), DEFAULT_CLINICAL_YEARS)
    messages = _years(stored.get("messages_years"), DEFAULT_MESSAGES_YEARS)
    return RetentionPeriods(clinical=timedelta(days=365 * clinical), messages=timedelta(days=365 * messages))
