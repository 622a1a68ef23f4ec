"""Writes of erasure, legal holds and retention (issue 13 item 5; policy in patients/erasure/policy.py).

What an erasure does to the patient's own record (the policy, docs/compliance.md):
- erased: given, family and preferred names (the record reads "Erased Patient"), gender identity,
  pronouns, every phone and email, the address, the emergency contact; the birth date keeps its
  year only (1 January); external identifiers (`PatientIdentifier`) are deleted;
- kept for the clinical retention period: the MRN (the organization's own key to re-link the
  retained clinical record to its other records, e.g. for a claim), sex and the clinical rows'
  `keep` fields (conditions, medications, allergies, results, immunizations, care plans,
  encounters, procedures);
- free text everywhere (notes' bodies, messages, appointment reasons, task details, the break-glass
  notes) and documents (their bytes are deleted, the row soft-deleted) are erased;
- blind indexes are recomputed from the erased values on save, so the old name, phone, email or
  birth date finds nothing; the record becomes inactive (out of search lists and outreach);
- the audit log is never rewritten: its rows hold ids and redacted changes only (no PHI in clear).

The retention job pseudonymises everything left (the MRN and the clinical fields too) when the
clinical period has passed since the patient's last activity, and deletes messages past theirs.
A legal hold blocks both. Each step writes its audit rows in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from auditlog.models import LogEntry
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from healthcrm.models import Organization
from patients.erasure.policy import (
    MESSAGES,
    encrypted_fields,
    erasure_policy,
    patient_holdings,
    register_erasure_policy,
    retention_periods,
)
from patients.merge import KEEP, register_merge_policy
from patients.models import (
    ErasureKind,
    ErasureRequest,
    ErasureStatus,
    LegalHold,
    Patient,
    PatientDocument,
    PatientDocumentContent,
)

PSEUDONYM_GIVEN = "Erased"
PSEUDONYM_FAMILY = "Patient"
# Patient fields an erasure request keeps (the retention key and what reading results needs).
PATIENT_KEPT = frozenset({"mrn", "sex"})
# How many records one retention run pseudonymises, and message rows it deletes (the next run
# goes on: the beat runs daily).
RETENTION_PATIENT_BATCH = 200
RETENTION_MESSAGE_BATCH = 5000


def _label(user: Any) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return (user.get_full_name() or user.get_username())[:150]


def _user(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def _audit(obj: models.Model, event: str, actor: Any, **data: Any) -> None:
    """One explicit change-log entry naming what happened (ids and counts only)."""
    LogEntry.objects.log_create(
        obj,
        force_log=True,
        action=LogEntry.Action.UPDATE,
        changes={"event": [None, event]},
        additional_data={"organization_id": obj.organization_id, "event": event, **data},  # type: ignore[attr-defined]
        actor=_user(actor),
    )


# -- Legal holds ---------------------------------------------------------------------------------


def patient_on_hold(patient: Patient) -> bool:
    return LegalHold.objects.filter(patient=patient, released_at__isnull=True).exists()


@transaction.atomic
def legal_hold_place(*, patient: Patient, reason: str, actor: Any) -> LegalHold:
    """Freeze the patient's records: no erasure, no retention, until released."""
    hold = LegalHold(
        organization_id=patient.organization_id,
        patient=patient,
        reason=reason.strip(),
        placed_at=timezone.now(),
        placed_by=_user(actor),
        placed_by_label=_label(actor),
    )
    hold.full_clean()
    hold.save()
    return hold


@transaction.atomic
def legal_hold_release(*, hold: LegalHold, actor: Any) -> LegalHold:
    """Release an open hold (a released hold stays, as history)."""
    hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if hold.released_at is not None:
        raise ValidationError("This hold was already released.")
    hold.released_at = timezone.now()
    hold.released_by = _user(actor)
    hold.released_by_label = _label(actor)
    hold.save()
    return hold


# -- Erasure requests ------------------------------------------------------------------------------


@transaction.atomic
def erasure_request_create(*, patient: Patient, actor: Any, requested_at: dt.datetime | None = None) -> ErasureRequest:
    """Record a patient's request to be erased (waiting for the compliance officer's decision)."""
    request = ErasureRequest(
        organization_id=patient.organization_id,
        patient=patient,
        kind=ErasureKind.REQUEST,
        requested_at=requested_at or timezone.now(),
        requested_by=_user(actor),
        requested_by_label=_label(actor),
    )
    request.full_clean()
    request.save()
    return request


def _decide(request: ErasureRequest, status: str, actor: Any, note: str) -> None:
    request.status = status
    request.decided_at = timezone.now()
    request.decided_by = _user(actor)
    request.decided_by_label = _label(actor)
    setattr(request, "decision_note", note.strip())  # noqa: B010 - an encrypted field (stubs type the field)


@transaction.atomic
def erasure_request_decline(*, request: ErasureRequest, actor: Any, note: str) -> ErasureRequest:
    """Decline a pending request (the note says why: the law requires keeping, identity unproven)."""
    request = ErasureRequest.objects.select_for_update().get(pk=request.pk)
    if request.status != ErasureStatus.PENDING:
        raise ValidationError("This request was already decided.")
    if not note.strip():
        raise ValidationError({"decision_note": "Say why the request is declined."})
    _decide(request, ErasureStatus.DECLINED, actor, note)
    request.full_clean()
    request.save()
    return request


@transaction.atomic
def erasure_request_execute(*, request: ErasureRequest, actor: Any, note: str = "") -> ErasureRequest:
    """Carry out a pending request: pseudonymise what the law allows to erase, keep what it
    requires (module docstring). Refused (ValidationError, nothing changed) while a legal hold is
    open on the patient."""
    request = ErasureRequest.objects.select_for_update().get(pk=request.pk)
    if request.status != ErasureStatus.PENDING:
        raise ValidationError("This request was already decided.")
    patient = Patient.objects.select_for_update().get(pk=request.patient_id)
    if patient_on_hold(patient):
        raise ValidationError("A legal hold is open on this patient: release it before erasing.")
    outcome = _pseudonymise(patient, keep_clinical=True)
    _decide(request, ErasureStatus.COMPLETED, actor, note)
    request.outcome = outcome
    request.full_clean()
    request.save()
    _audit(patient, "patient.erased", actor, erasure_request=request.pk)
    return request


# -- The pseudonymisation itself -------------------------------------------------------------------


def _blank(f: models.Field, value: Any) -> Any:
    """The pseudonym of one encrypted value: empty text, a date reduced to 1 January of its year
    (None where the column allows it)."""
    if isinstance(f, models.DateField):
        if value is None or f.null:
            return None
        return dt.date(value.year, 1, 1)
    return ""


def _pseudonymise_patient(patient: Patient, *, keep_clinical: bool) -> None:
    kept = PATIENT_KEPT if keep_clinical else frozenset()
    for f in encrypted_fields(Patient):
        if f.name in kept:
            continue
        setattr(patient, f.name, _blank(f, getattr(patient, f.name)))
    pseudonyms = {"given_name": PSEUDONYM_GIVEN, "family_name": PSEUDONYM_FAMILY}
    if not keep_clinical:
        # The MRN goes too; a per-record pseudonym keeps it unique in the organization.
        pseudonyms["mrn"] = f"ERASED-{patient.pk}"
    for name, value in pseudonyms.items():
        setattr(patient, name, value)
    patient.is_active = False
    patient.contact_window_start = patient.contact_window_end = None
    # No full_clean: the pseudonyms need not pass the intake rules; save recomputes every blind index.
    patient.save()


def _pseudonymise(patient: Patient, *, keep_clinical: bool) -> dict[str, dict[str, int]]:
    outcome: dict[str, Counter[str]] = {}
    for holding in patient_holdings():
        policy = erasure_policy(holding.model)
        rows = list(holding.rows(patient.pk).order_by("pk"))
        if not rows:
            continue
        counts = outcome.setdefault(holding.label, Counter())
        ids = [row.pk for row in rows]
        if policy.delete:
            if policy.after_erase is not None:
                policy.after_erase(ids)
            for row in rows:
                row.delete()  # one by one: django-auditlog writes each DELETE entry
            counts["deleted"] += len(rows)
            continue
        kept = policy.keep if keep_clinical else frozenset()
        fields = [f for f in encrypted_fields(holding.model) if f.name not in kept]
        if fields:
            for row in rows:
                for f in fields:
                    setattr(row, f.name, _blank(f, getattr(row, f.name)))
                row.save()  # blind indexes recomputed; auditlog's entry is redacted
            counts["erased"] += len(rows)
        if policy.after_erase is not None:
            policy.after_erase(ids)
    _pseudonymise_patient(patient, keep_clinical=keep_clinical)
    return {label: dict(counts) for label, counts in outcome.items() if counts}


# -- Retention ------------------------------------------------------------------------------------


@dataclass
class RetentionReport:
    patients_pseudonymised: list[int] = field(default_factory=list)
    messages_deleted: dict[str, int] = field(default_factory=dict)
    held_skipped: int = 0


def _held_patient_ids() -> set[int]:
    return set(LegalHold.objects.filter(released_at__isnull=True).values_list("patient_id", flat=True))


def _purged_patient_ids() -> models.QuerySet[Any]:
    return ErasureRequest.objects.filter(kind=ErasureKind.RETENTION, status=ErasureStatus.COMPLETED).values(
        "patient_id"
    )


def _active_since(patient_ids: list[int], since: dt.datetime) -> set[int]:
    """The patients among `patient_ids` with any row created or changed since `since`."""
    active: set[int] = set()
    for holding in patient_holdings():
        if not erasure_policy(holding.model).activity:
            continue
        names = {f.name for f in holding.model._meta.concrete_fields}
        changed = Q()
        for name in ("created_at", "updated_at"):
            if name in names:
                changed |= Q(**{f"{name}__gte": since})
        if not changed:
            continue
        active |= set(
            holding.model._default_manager.filter(changed, **{f"{holding.path}__in": patient_ids}).values_list(
                holding.path, flat=True
            )
        )
    return active


@transaction.atomic
def retention_run(*, organization: Organization, now: dt.datetime | None = None) -> RetentionReport:
    """Apply the organization's retention periods (inside its context): delete message rows older
    than the messages period, and pseudonymise entirely (MRN and clinical fields included) the
    records whose last activity (any row of theirs created or changed) is older than the clinical
    period. Patients under a legal hold are skipped. Audited: every row's own entry, a retention
    `ErasureRequest` per record, and one entry on the organization with the counts."""
    now = now or timezone.now()
    periods = retention_periods(organization)
    held = _held_patient_ids()
    report = RetentionReport()
    for holding in patient_holdings():
        policy = erasure_policy(holding.model)
        if policy.retention != MESSAGES:
            continue
        due = holding.model._default_manager.filter(**{f"{policy.date_field}__lt": now - periods.messages})
        skipped = due.filter(**{f"{holding.path}__in": held})
        report.held_skipped += skipped.count()
        rows = list(due.exclude(**{f"{holding.path}__in": held}).order_by("pk")[:RETENTION_MESSAGE_BATCH])
        if policy.after_erase is not None and rows:
            policy.after_erase([row.pk for row in rows])
        for row in rows:
            row.delete()
        if rows:
            report.messages_deleted[holding.label] = len(rows)

    cutoff = now - periods.clinical
    candidates = list(
        Patient.objects.filter(created_at__lt=cutoff, updated_at__lt=cutoff, merged_into__isnull=True)
        .exclude(pk__in=_purged_patient_ids())
        .order_by("pk")
        .values_list("pk", flat=True)[: RETENTION_PATIENT_BATCH * 2]
    )
    report.held_skipped += len(held.intersection(candidates))
    candidates = [pk for pk in candidates if pk not in held]
    active = _active_since(candidates, cutoff) if candidates else set()
    for pk in [pk for pk in candidates if pk not in active][:RETENTION_PATIENT_BATCH]:
        patient = Patient.objects.select_for_update().get(pk=pk)
        outcome = _pseudonymise(patient, keep_clinical=False)
        record = ErasureRequest(
            organization_id=organization.pk,
            patient=patient,
            kind=ErasureKind.RETENTION,
            status=ErasureStatus.COMPLETED,
            requested_at=now,
            decided_at=now,
            outcome=outcome,
        )
        record.full_clean()
        record.save()
        _audit(patient, "patient.retention_expired", None, erasure_request=record.pk)
        report.patients_pseudonymised.append(pk)
    if report.patients_pseudonymised or report.messages_deleted:
        LogEntry.objects.log_create(
            organization,
            force_log=True,
            action=LogEntry.Action.UPDATE,
            changes={"event": [None, "retention.run"]},
            additional_data={
                "organization_id": organization.pk,
                "event": "retention.run",
                "patients_pseudonymised": len(report.patients_pseudonymised),
                "messages_deleted": report.messages_deleted,
            },
        )
    return report


# -- Policies of patients' own models --------------------------------------------------------------


def _documents_erased(ids: list[Any]) -> None:
    """A document's bytes go; its row stays, soft-deleted, its title and file name emptied."""
    PatientDocumentContent.objects.filter(document_id__in=ids).delete()
    PatientDocument.objects.filter(pk__in=ids, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), deleted_by_label="erasure"
    )


register_erasure_policy("patients.erasurerequest", skip=True)
# A merge leaves the duplicate's requests on it (they name the record they were made for); its
# holds move with the records they freeze (the default).
register_merge_policy("patients.erasurerequest", action=KEEP)
register_erasure_policy("patients.legalhold", skip=True)
register_erasure_policy("patients.patientdocument", after_erase=_documents_erased)
register_erasure_policy("patients.patientdocumentcontent", delete=True)
# Identifiers in other systems: nothing the retention rule needs (the MRN is kept on the record).
register_erasure_policy("patients.patientidentifier", delete=True)
register_erasure_policy("patients.condition", keep=("display", "onset_date"))
register_erasure_policy("patients.medication", keep=("name", "dose_text", "schedule_text"))
register_erasure_policy("patients.allergy", keep=("substance_display", "reaction"))
register_erasure_policy("patients.observation", keep=("value_text",))
register_erasure_policy("patients.immunization", keep=("lot_number",))
register_erasure_policy("patients.careplan", keep=("title",))
register_erasure_policy("patients.goal", keep=("description",))
register_erasure_policy("patients.intervention", keep=("description",))
