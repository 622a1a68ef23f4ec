"""Build the analytics facts from the clinic's rows: full rebuilds and incremental refreshes.

    refresh_run(full=False)   # inside organization_context(org): what changed since the last run

Each builder is registered in BUILDERS (in order: later builders may read earlier facts) and gets
`since` (None for a full rebuild) and `now`; it upserts its rows and returns how many it wrote.
A full rebuild also recomputes what time alone changes (age bands, visits that became due).
Builders decrypt in the worker, keep bands and codes, and never log a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from analytics.models import AgeBand, AppointmentFact, Exposure, Outcome, PatientFact, Refresh
from healthcrm.tenancy import require_current_organization

Builder = Callable[[datetime | None, datetime], int]
BUILDERS: dict[str, Builder] = {}
CHUNK = 5000
T = TypeVar("T")


def builder(name: str) -> Callable[[Builder], Builder]:
    """Register a fact builder under `name` (runs in registration order)."""

    def register(fn: Builder) -> Builder:
        if name in BUILDERS:
            raise ValueError(f"analytics builder {name!r} registered twice")
        BUILDERS[name] = fn
        return fn

    return register


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def upsert_facts(model: Any, rows: list[Any], unique_field: str) -> int:
    """Insert fact rows, or update the existing row with the same `unique_field` (every column but
    the key, the organization and created_at). Returns how many rows were written."""
    keep = {"id", "organization", unique_field, "created_at"}
    model.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=[unique_field],
        update_fields=[f.name for f in model._meta.concrete_fields if f.name not in keep],
    )
    return len(rows)


def age_on(birth: date | None, day: date) -> int | None:
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def age_band(birth: date | None, day: date) -> str:
    age = age_on(birth, day)
    if age is None or age < 18:
        return AgeBand.CHILD if age is not None else AgeBand.YOUNG
    if age < 40:
        return AgeBand.YOUNG
    if age < 65:
        return AgeBand.MIDDLE
    if age < 75:
        return AgeBand.OLDER
    return AgeBand.ELDER


def _demographics(patient_ids: Iterable[int]) -> dict[int, tuple[date | None, str, str, bool]]:
    """id -> (birth date, sex, language, active), decrypted here and never kept beyond the band."""
    from patients.models import Patient

    rows = Patient.objects.filter(pk__in=list(patient_ids)).values_list(
        "pk", "date_of_birth", "sex", "preferred_language", "is_active"
    )
    return {pk: (dob, sex or "unknown", language or "", active) for pk, dob, sex, language, active in rows}


@builder("patients")
def build_patient_facts(since: datetime | None, now: datetime) -> int:
    from patients.models import Patient

    organization = require_current_organization()
    today = timezone.localtime(now, organization.zone).date()
    ids = Patient.objects.all()
    if since is not None:
        ids = ids.filter(updated_at__gte=since)
    written = 0
    for batch in chunks(ids.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=CHUNK)):
        facts = [
            PatientFact(
                organization=organization,
                patient_id=pk,
                age_band=age_band(dob, today),
                sex=sex,
                language=language,
                is_active=active,
                refreshed_at=now,
            )
            for pk, (dob, sex, language, active) in _demographics(batch).items()
        ]
        written += upsert_facts(PatientFact, facts, "patient")
    return written


# A rule's reminder ("24h@<start>") or the extra one for a visit at risk ("risk48h@<start>").
_OFFSET = re.compile(r"^(?:risk)?(\d+)h@")


def outcome_of(status: str, starts_at: datetime, status_changed_at: datetime | None, now: datetime) -> str:
    """The analytics outcome of an appointment (late cancel: within ANALYTICS_LATE_CANCEL_HOURS)."""
    if status in ("completed", "checked_in"):
        return Outcome.ATTENDED
    if status == "no_show":
        return Outcome.NO_SHOW
    if status == "cancelled":
        late = timedelta(hours=settings.ANALYTICS_LATE_CANCEL_HOURS)
        if status_changed_at is not None and status_changed_at >= starts_at - late:
            return Outcome.LATE_CANCEL
        return Outcome.CANCELLED
    return Outcome.UPCOMING if starts_at > now else Outcome.UNRECORDED


def _reminders(appointment_starts: dict[int, datetime]) -> dict[int, dict[str, bool]]:
    """Per appointment: which channels and offsets had a reminder delivered before the visit.

    Delivered means a delivery receipt (SMS) or accepted by the mail server (email has no receipts).
    """
    from engagement.models import OutboundMessage
    from engagement.services import reminder_slot_matches

    found: dict[int, dict[str, bool]] = {}
    rows = OutboundMessage.objects.filter(
        subject_type="appointment", subject_id__in=list(appointment_starts), rule__kind="appointment_reminder"
    ).filter(Q(status="delivered") | Q(status="sent", channel="email"))
    for subject_id, channel, slot, sent_at in rows.values_list("subject_id", "channel", "slot", "sent_at"):
        starts_at = appointment_starts[subject_id]
        match = _OFFSET.match(slot)
        # Only reminders for this start (a rescheduled visit's old ones do not count), sent before it.
        if match is None or not reminder_slot_matches(slot, starts_at):
            continue
        if sent_at is not None and sent_at >= starts_at:
            continue
        flags = found.setdefault(subject_id, {})
        flags[f"{channel}_delivered"] = True
        offset = int(match.group(1))
        flags[f"reminded_{72 if offset >= 48 else 24 if offset >= 12 else 2}h"] = True
    return found


@builder("appointments")
def build_appointment_facts(since: datetime | None, now: datetime) -> int:
    from engagement.models import OutboundMessage
    from patients.models import Appointment

    organization = require_current_organization()
    zone = organization.zone
    appointments = Appointment.objects.all()
    if since is not None:
        touched = OutboundMessage.objects.filter(subject_type="appointment", updated_at__gte=since).values("subject_id")
        # Visits that became due since are recounted too (upcoming -> unrecorded).
        appointments = appointments.filter(
            Q(updated_at__gte=since) | Q(pk__in=touched) | Q(starts_at__gte=since, starts_at__lte=now)
        )
    fields = (
        "pk",
        "patient_id",
        "practitioner_id",
        "location_id",
        "appointment_type",
        "kind",
        "starts_at",
        "status",
        "status_changed_at",
        "status_reason",
        "confirmed_at",
        "confirmed_via",
        "created_at",
    )
    written = 0
    for batch in chunks(appointments.order_by("pk").values_list(*fields).iterator(chunk_size=CHUNK)):
        demographics = _demographics({row[1] for row in batch})
        reminders = _reminders({row[0]: row[6] for row in batch})
        facts = []
        for (
            pk,
            patient_id,
            practitioner_id,
            location_id,
            atype,
            kind,
            starts_at,
            status,
            changed_at,
            reason,
            confirmed_at,
            via,
            created_at,
        ) in batch:  # noqa: E501
            local = timezone.localtime(starts_at, zone)
            flags = reminders.get(pk, {})
            patient_confirmed = confirmed_at is not None and via in ("sms_reply", "link") and confirmed_at < starts_at
            exposure = Exposure.CONFIRMED if patient_confirmed else Exposure.DELIVERED if flags else Exposure.NONE
            facts.append(
                AppointmentFact(
                    organization=organization,
                    appointment_id=pk,
                    patient_id=patient_id,
                    practitioner_id=practitioner_id,
                    location_id=location_id,
                    appointment_type=atype,
                    kind=kind,
                    starts_at=starts_at,
                    local_date=local.date(),
                    weekday=local.weekday(),
                    hour=local.hour,
                    lead_days=max(0, (local.date() - timezone.localtime(created_at, zone).date()).days),
                    age_band=age_band(demographics.get(patient_id, (None,))[0], local.date()),
                    outcome=outcome_of(status, starts_at, changed_at, now),
                    status_reason=reason,
                    exposure=exposure,
                    sms_delivered=flags.get("sms_delivered", False),
                    email_delivered=flags.get("email_delivered", False),
                    reminded_72h=flags.get("reminded_72h", False),
                    reminded_24h=flags.get("reminded_24h", False),
                    reminded_2h=flags.get("reminded_2h", False),
                    refreshed_at=now,
                )
            )
        written += upsert_facts(AppointmentFact, facts, "appointment")
    return written


def refresh_run(*, full: bool = False, now: datetime | None = None) -> Refresh:
    """Run every builder for the current organization; incremental from the last finished run."""
    import analytics.builders  # noqa: F401  (registers every module's builders)

    organization = require_current_organization()
    now = now or timezone.now()
    last = Refresh.objects.filter(finished_at__isnull=False).order_by("-started_at").first()
    since = None if full or last is None else last.started_at
    run = Refresh.objects.create(organization=organization, started_at=now, full=since is None)
    rows: dict[str, Any] = {}
    for name, build in BUILDERS.items():
        rows[name] = build(since, now)
    run.rows = rows
    run.finished_at = timezone.now()
    run.save(update_fields=["rows", "finished_at", "updated_at"])
    return run


def last_refresh() -> Refresh | None:
    return Refresh.objects.filter(finished_at__isnull=False).order_by("-started_at").first()
