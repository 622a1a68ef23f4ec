"""Merging a duplicate patient record into the surviving one.

Every row that points at the duplicate moves to the survivor, whichever app owns it: the relations
are found through Django's model meta (foreign keys and one-to-ones to Patient, and generic foreign
keys such as FHIR resource links and object permissions), so patients/ imports nothing from the
apps above it and a model added later moves too. A row whose unique constraint the survivor
already fills (a consent for the same channel, the same person on both care teams) stays on the
duplicate, and the merge record lists its id: the survivor's row is kept.

Apps change the default for one model through `register_merge_policy` (rows derived from the
record itself, or the merge history, stay where they are; a hook runs after rows moved; a check
names what blocks a merge). `tests/patients/test_merge.py` builds one row of every model with a
foreign key to Patient and fails for a model it does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.apps import apps
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from patients.models import ACTIVE_STATUSES, Appointment, CareTeamMember, Patient, PatientMerge, PatientNamePrefix

MOVE = "move"
KEEP = "keep"


@dataclass(frozen=True)
class MergePolicy:
    """How a merge treats one model's rows of the duplicate: `MOVE` (the default) or `KEEP`.

    `after_move(ids, survivor)` runs after the rows `ids` moved; `blockers(survivor, duplicate)`
    returns reasons (no PHI) why the merge cannot go ahead as it stands."""

    action: str = MOVE
    after_move: Callable[[list[Any], Patient], None] | None = None
    blockers: Callable[[Patient, Patient], list[str]] | None = None


_POLICIES: dict[str, MergePolicy] = {}


def register_merge_policy(
    label: str,
    *,
    action: str = MOVE,
    after_move: Callable[[list[Any], Patient], None] | None = None,
    blockers: Callable[[Patient, Patient], list[str]] | None = None,
) -> None:
    """Declare how a merge treats the rows of model `label` ("app_label.modelname")."""
    if action not in (MOVE, KEEP):
        raise ValueError(f"unknown merge action {action!r}")
    _POLICIES[label.lower()] = MergePolicy(action=action, after_move=after_move, blockers=blockers)


def merge_policy(model: type[models.Model]) -> MergePolicy:
    return _POLICIES.get(model._meta.label_lower, MergePolicy())


@dataclass(frozen=True)
class Relation:
    """One way rows point at a patient: a foreign key (`fields` = its name) or a generic foreign key
    (`fields` = its content type and object id columns)."""

    model: type[models.Model]
    fields: tuple[str, ...]
    generic: bool = False

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def verbose_name(self) -> str:
        return str(self.model._meta.verbose_name_plural)

    def rows(self, patient: Patient) -> models.QuerySet[Any]:
        manager = self.model._default_manager
        if self.generic:
            content_type = ContentType.objects.get_for_model(Patient)
            ct_field, fk_field = self.fields
            return manager.filter(**{ct_field: content_type, fk_field: patient.pk})
        return manager.filter(**{self.fields[0]: patient})

    def repoint(self, survivor: Patient) -> dict[str, Any]:
        return {self.fields[1]: survivor.pk} if self.generic else {self.fields[0]: survivor}


def patient_relations() -> list[Relation]:
    """Every relation of every installed model to Patient (foreign keys, one-to-ones and generic
    foreign keys), in a stable order."""
    found: list[Relation] = []
    for model in apps.get_models():
        for f in model._meta.get_fields(include_hidden=True):
            if isinstance(f, models.ForeignKey) and f.related_model is Patient:
                found.append(Relation(model, (f.name,)))
            elif isinstance(f, GenericForeignKey):
                found.append(Relation(model, (f.ct_field, f.fk_field), generic=True))
    return sorted(found, key=lambda r: (r.label, r.fields))


def _unique_keys(relation: Relation) -> list[tuple[tuple[str, ...], Q | None, bool]]:
    """The unique keys of the model that include the patient columns: (the other fields, the
    constraint's condition, whether NULLs are equal)."""
    meta = relation.model._meta
    # The id column decides (a generic key's content type may be left out of the key: guardian's).
    pointing, skipped = relation.fields[-1], {*relation.fields, "organization"}
    keys: list[tuple[tuple[str, ...], Q | None, bool]] = []
    for constraint in meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and pointing in (constraint.fields or ()):
            others = tuple(name for name in constraint.fields if name not in skipped)
            keys.append((others, constraint.condition, constraint.nulls_distinct is False))
    for together in meta.unique_together:
        if pointing in together:
            keys.append((tuple(name for name in together if name not in skipped), None, False))
    if not relation.generic and getattr(meta.get_field(relation.fields[0]), "unique", False):
        keys.append(((), None, False))
    return keys


def _attnames(model: type[models.Model], names: Iterable[str]) -> list[str]:
    return [model._meta.get_field(name).attname for name in names]  # type: ignore[union-attr]


def _conflicts(relation: Relation, survivor: Patient, duplicate: Patient) -> set[Any]:
    """Ids of the duplicate's rows that would break a unique key the survivor's rows already hold."""
    clashing: set[Any] = set()
    for others, condition, nulls_equal in _unique_keys(relation):
        theirs = relation.rows(survivor)
        ours = relation.rows(duplicate)
        if condition is not None:
            theirs, ours = theirs.filter(condition), ours.filter(condition)
        columns = _attnames(relation.model, others)
        # A key of the patient alone (a one-to-one): any row of the survivor holds it.
        taken = {tuple(row) for row in theirs.values_list(*columns)} if columns else {()} if theirs.exists() else set()
        for pk, *values in ours.values_list("pk", *columns):
            if not nulls_equal and any(value is None for value in values):
                continue  # NULLs are distinct: never a clash
            if tuple(values) in taken:
                clashing.add(pk)
    return clashing


@dataclass
class MergeKind:
    """What a merge does with one kind of row: counts for the confirmation screen, ids for the record."""

    relation: Relation
    move: list[Any] = field(default_factory=list)
    keep: list[Any] = field(default_factory=list)
    survivor_count: int = 0

    @property
    def total(self) -> int:
        return len(self.move) + len(self.keep)


@dataclass
class MergePlan:
    survivor: Patient
    duplicate: Patient
    kinds: list[MergeKind]
    blockers: list[str]

    @property
    def moving(self) -> list[MergeKind]:
        return [kind for kind in self.kinds if kind.move or kind.keep]


def _refusals(survivor: Patient, duplicate: Patient) -> list[str]:
    reasons = []
    if survivor.pk == duplicate.pk:
        reasons.append("A record cannot be merged into itself.")
    if survivor.organization_id != duplicate.organization_id:
        reasons.append("Records of different organizations cannot be merged.")
    if not duplicate.is_active or duplicate.merged_into_id:
        reasons.append("The duplicate record has already been merged or deactivated.")
    if not survivor.is_active or survivor.merged_into_id:
        reasons.append("The surviving record is not active.")
    return reasons


def patient_merge_plan(*, survivor: Patient, duplicate: Patient) -> MergePlan:
    """What merging `duplicate` into `survivor` would do, per kind of row, and what blocks it.

    Reads ids and counts only (nothing decrypted)."""
    blockers = _refusals(survivor, duplicate)
    kinds: list[MergeKind] = []
    if not blockers:
        for relation in patient_relations():
            policy = merge_policy(relation.model)
            ids = list(relation.rows(duplicate).order_by("pk").values_list("pk", flat=True))
            kind = MergeKind(relation=relation, survivor_count=relation.rows(survivor).count())
            if policy.action == KEEP or not ids:
                kinds.append(kind)
                continue
            clashing = _conflicts(relation, survivor, duplicate)
            kind.move = [pk for pk in ids if pk not in clashing]
            kind.keep = [pk for pk in ids if pk in clashing]
            kinds.append(kind)
            if policy.blockers is not None:
                blockers.extend(policy.blockers(survivor, duplicate))
    return MergePlan(survivor=survivor, duplicate=duplicate, kinds=kinds, blockers=blockers)


def _audit_moved(relation: Relation, ids: list[Any], survivor: Patient, duplicate: Patient, actor: Any) -> None:
    """The UPDATE entries django-auditlog would have written row by row (`update()` writes none)."""
    if not ids or not auditlog.contains(relation.model):
        return
    content_type = ContentType.objects.get_for_model(relation.model)
    name = relation.fields[-1]
    entries = [
        LogEntry(
            content_type=content_type,
            object_pk=str(pk),
            object_id=pk if isinstance(pk, int) else None,
            object_repr=f"{relation.model._meta.object_name} #{pk}",
            action=LogEntry.Action.UPDATE,
            changes={name: [str(duplicate.pk), str(survivor.pk)]},
            actor=actor,
            additional_data={
                "organization_id": survivor.organization_id,
                "merge": {"duplicate": duplicate.pk, "survivor": survivor.pk},
            },
        )
        for pk in ids
    ]
    LogEntry.objects.bulk_create(entries, batch_size=1000)


@transaction.atomic
def patient_merge(*, survivor: Patient, duplicate: Patient, actor: Any = None) -> PatientMerge:
    """Merge `duplicate` into `survivor`, atomically: every row pointing at the duplicate moves (rows
    whose unique key the survivor already fills stay, listed on the record), the duplicate becomes
    inactive and `merged_into` the survivor, and the audit (auditlog entries per moved row, the
    duplicate's update, a PatientMerge row naming both ids) is written in the same transaction.

    Raises ValidationError, nothing changed, when the two cannot be merged (one record, two
    organizations, already merged, overlapping visits)."""
    actor = actor if getattr(actor, "is_authenticated", False) else None
    # Lock both records (in id order: two merges of the same pair cannot deadlock), then re-read.
    rows = Patient.objects.select_for_update().filter(pk__in=[survivor.pk, duplicate.pk]).order_by("pk")
    locked = {p.pk: p for p in rows}
    if survivor.pk not in locked or duplicate.pk not in locked:
        raise ValidationError("Both records must belong to this organization.")
    survivor, duplicate = locked[survivor.pk], locked[duplicate.pk]
    plan = patient_merge_plan(survivor=survivor, duplicate=duplicate)
    if plan.blockers:
        raise ValidationError(plan.blockers)
    now = timezone.now()
    moved: dict[str, int] = {}
    kept: dict[str, list[Any]] = {}
    for kind in plan.kinds:
        relation = kind.relation
        if kind.move:
            changes = relation.repoint(survivor)
            if any(f.name == "updated_at" for f in relation.model._meta.concrete_fields):
                changes["updated_at"] = now  # incremental refreshes (analytics) see the rows changed
            relation.model._default_manager.filter(pk__in=kind.move).update(**changes)
            _audit_moved(relation, kind.move, survivor, duplicate, actor)
            policy = merge_policy(relation.model)
            if policy.after_move is not None:
                policy.after_move(kind.move, survivor)
            moved[relation.label] = moved.get(relation.label, 0) + len(kind.move)
        if kind.keep:
            kept.setdefault(relation.label, []).extend(kind.keep)
    duplicate.is_active = False
    duplicate.merged_into = survivor
    # Only these columns: the record's own values are not re-validated (nor decrypted) here.
    duplicate.save(update_fields=["is_active", "merged_into", "updated_at"])
    return PatientMerge.objects.create(
        survivor=survivor,
        duplicate=duplicate,
        actor=actor,
        actor_label=actor.get_username() if actor is not None else "",
        moved=moved,
        kept=kept,
    )


# -- Policies of patients' own models --------------------------------------------------------------


def _team_permissions_follow(ids: list[Any], survivor: Patient) -> None:
    """Care team members who moved get the object permissions on the survivor the team gives."""
    from guardian.shortcuts import assign_perm

    from patients.care.services import TEAM_PERMISSIONS

    for member in CareTeamMember.objects.filter(pk__in=ids, active=True).select_related("user"):
        for perm in TEAM_PERMISSIONS:
            assign_perm(perm, member.user, survivor)


def _overlapping_visits(survivor: Patient, duplicate: Patient) -> list[str]:
    """Both records booked at overlapping times: the patient cannot have two visits at once."""
    mine = Appointment.objects.filter(patient=survivor, status__in=ACTIVE_STATUSES)
    clashes = []
    for visit in Appointment.objects.filter(patient=duplicate, status__in=ACTIVE_STATUSES).order_by("starts_at"):
        other = mine.filter(starts_at__lt=visit.ends_at, ends_at__gt=visit.starts_at).first()
        if other is not None:
            clashes.append(
                f"Appointment #{visit.pk} overlaps appointment #{other.pk} of the surviving record: cancel one first."
            )
    return clashes


# The name-search rows are the duplicate's own names (kept in step by a trigger); the merge history
# names both records as they were.
register_merge_policy(PatientNamePrefix._meta.label, action=KEEP)
register_merge_policy(PatientMerge._meta.label, action=KEEP)
# A break-glass event records which record was opened, and why: it stays with that record.
register_merge_policy("patients.breakglassevent", action=KEEP)
register_merge_policy(CareTeamMember._meta.label, after_move=_team_permissions_follow)
register_merge_policy(Appointment._meta.label, blockers=_overlapping_visits)
