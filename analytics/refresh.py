"""Build the analytics facts from the clinic's rows: full rebuilds and incremental refreshes.

    refresh_run(full=False)   # inside organization_context(org): what changed since the last run

Each builder is registered in BUILDERS (in order: later builders may read earlier facts) and gets
`since` (None for a full rebuild) and `now`; it upserts its rows and returns how many it wrote.
A full rebuild also recomputes what time alone changes (age bands, visits that became due).
Builders decrypt in the worker, keep bands and codes, and never log a value.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from analytics.models import AgeBand, AppointmentFact, Exposure, Outcome, PatientFact, Refresh
from engagement import recalls
from healthcrm.tenancy import require_current_organization

logger = logging.getLogger(__name__)
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


def upsert_facts(model: Any, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], unique_field: str) -> int:
    """Insert fact rows (tuples in `columns` order), or update the row with the same `unique_field`.

    One INSERT ... SELECT FROM jsonb_to_recordset(one JSON document) ... ON CONFLICT DO UPDATE per
    call: no model instances, no per-field preparation (bulk_create spent most of a rebuild there)
    and no per-value quoting (psycopg's array dumping was a quarter of it); PostgreSQL types each
    column from the field's own database type. COPY would be faster still but is refused on a table
    with row-level security; this INSERT is checked by the policy row by row like any other. The
    organization, created_at and updated_at are filled in here; values must already be what the
    column stores (no encrypted fields): numbers, text, booleans, dates, aware datetimes, lists."""
    if not rows:
        return 0
    meta = model._meta
    qn = connection.ops.quote_name
    fields = [meta.get_field(name) for name in columns]
    names = [qn(field.column) for field in fields]
    key = qn(meta.get_field(unique_field).column)
    aliases = [f"c{i}" for i in range(len(fields))]
    record = ", ".join(f"{alias} {_db_type(field)}" for alias, field in zip(aliases, fields, strict=True))
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in [*names, qn("updated_at")] if name != key)
    # Identifiers come from the model's own meta (quoted) and types from its fields; values are one parameter.
    sql = (
        f"INSERT INTO {qn(meta.db_table)} (organization_id, created_at, updated_at, {', '.join(names)}) "  # noqa: S608  # nosec B608
        f"SELECT %s, %s, %s, {', '.join(aliases)} FROM jsonb_to_recordset(%s::jsonb) AS v({record}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )
    organization = require_current_organization()
    stamp = timezone.now()
    document = json.dumps([dict(zip(aliases, row, strict=True)) for row in rows], default=_json_value)
    with connection.cursor() as cursor:
        cursor.execute(sql, [organization.pk, stamp, stamp, document])
    return len(rows)


def _db_type(field: Any) -> str:
    """The column's type for jsonb_to_recordset (a foreign key is its target's, `bigint`)."""
    return str((field.target_field if field.is_relation else field).db_type(connection))


def _json_value(value: Any) -> str:
    """Dates and aware datetimes as ISO 8601 (PostgreSQL reads them back exactly)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("fact datetimes must be aware")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"a fact value of type {type(value).__name__} cannot be written")


def age_on(birth: date | None, day: date) -> int | None:
    """Age in whole years on `day` (the recalls' arithmetic), None without a birth date."""
    return None if birth is None else recalls.age_on(birth, day)


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


Demographics = dict[int, tuple[date | None, str, str, bool]]
_run_demographics: ContextVar[Demographics | None] = ContextVar("analytics_run_demographics", default=None)


_run_days: ContextVar[set[date] | None] = ContextVar("analytics_run_days", default=None)


@contextmanager
def run_scope() -> Iterator[None]:
    """One refresh run: each patient's demographics are decrypted once for all its builders (a
    patient with 9 visits was decrypted 9 times, once per chunk that held one), kept in this
    worker's memory only, and dropped when the run ends; the days whose appointment facts changed
    are collected for the daily cube."""
    tokens = (_run_demographics.set({}), _run_days.set(set()))
    try:
        yield
    finally:
        _run_demographics.reset(tokens[0])
        _run_days.reset(tokens[1])


def touched_days() -> set[date] | None:
    """The local days whose appointment facts this run changed (old and new dates), or None
    outside a run."""
    return _run_days.get()


def _demographics(patient_ids: Iterable[int]) -> Demographics:
    """id -> (birth date, sex, language, active), decrypted here and never kept beyond the run."""
    from patients.models import Patient

    cache = _run_demographics.get()
    wanted = set(patient_ids)
    missing = wanted if cache is None else wanted - cache.keys()
    found: Demographics = {}
    if missing:
        rows = Patient.objects.filter(pk__in=list(missing)).values_list(
            "pk", "date_of_birth", "sex", "preferred_language", "is_active"
        )
        found = {pk: (dob, sex or "unknown", language or "", active) for pk, dob, sex, language, active in rows}
    if cache is None:
        return found
    cache.update(found)
    return {pk: cache[pk] for pk in wanted if pk in cache}


PATIENT_FACT_COLUMNS = ("patient", "age_band", "sex", "language", "is_active", "recall_eligible", "refreshed_at")


class _Person(NamedTuple):
    sex: str
    date_of_birth: date | None


def _recalls_matched(dob: date | None, sex: str, today: date) -> list[str]:
    """The recalls whose `patient_matches` (sex, age) this patient meets today: the care-gap builder
    reads them here instead of decrypting every candidate again on each run."""
    person = _Person(sex, dob)
    return [
        key
        for key, recall in recalls.RECALLS.items()
        if recall.reads_demographics and recall.patient_matches(person, today)
    ]


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
        rows = [
            (pk, age_band(dob, today), sex, language, active, _recalls_matched(dob, sex, today), now)
            for pk, (dob, sex, language, active) in _demographics(batch).items()
        ]
        written += upsert_facts(PatientFact, PATIENT_FACT_COLUMNS, rows, "patient")
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


def _reminders(appointment_starts: dict[int, datetime]) -> dict[int, dict[str, Any]]:
    """Per appointment: which channels and offsets had a reminder delivered before the visit, and
    from which rules ("rules": their ids).

    Delivered means a delivery receipt (SMS) or accepted by the mail server (email has no receipts).
    """
    from engagement.models import OutboundMessage
    from engagement.services import reminder_slot_matches

    found: dict[int, dict[str, Any]] = {}
    rows = OutboundMessage.objects.filter(subject_type="appointment", rule__kind="appointment_reminder").filter(
        Q(status="delivered") | Q(status="sent", channel="email")
    )
    ids = sorted(appointment_starts)
    if ids and ids[-1] - ids[0] < 4 * len(ids):  # dense ids (a full rebuild's chunk): a range, not 5,000 parameters
        rows = rows.filter(subject_id__gte=ids[0], subject_id__lte=ids[-1])
    else:
        rows = rows.filter(subject_id__in=ids)
    for subject_id, channel, slot, sent_at, rule_id in rows.values_list(
        "subject_id", "channel", "slot", "sent_at", "rule_id"
    ):
        starts_at = appointment_starts.get(subject_id)
        if starts_at is None:  # inside the range, not in this chunk
            continue
        match = _OFFSET.match(slot)
        # Only reminders for this start (a rescheduled visit's old ones do not count), sent before it.
        if match is None or not reminder_slot_matches(slot, starts_at):
            continue
        if sent_at is not None and sent_at >= starts_at:
            continue
        flags = found.setdefault(subject_id, {"rules": []})
        flags[f"{channel}_delivered"] = True
        offset = int(match.group(1))
        flags[f"reminded_{72 if offset >= 48 else 24 if offset >= 12 else 2}h"] = True
        if rule_id not in flags["rules"]:
            flags["rules"].append(rule_id)
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
        rows = []
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
        ) in batch:
            local = starts_at.astimezone(zone)
            day = local.date()
            flags = reminders.get(pk, _NO_FLAGS)
            patient_confirmed = confirmed_at is not None and via in ("sms_reply", "link") and confirmed_at < starts_at
            exposure = Exposure.CONFIRMED if patient_confirmed else Exposure.DELIVERED if flags else Exposure.NONE
            rows.append(
                (
                    pk,
                    patient_id,
                    practitioner_id,
                    location_id,
                    atype,
                    kind,
                    starts_at,
                    day,
                    local.weekday(),
                    local.hour,
                    max(0, (day - created_at.astimezone(zone).date()).days),
                    age_band(demographics.get(patient_id, _NO_DEMOGRAPHICS)[0], day),
                    outcome_of(status, starts_at, changed_at, now),
                    reason,
                    exposure,
                    flags.get("sms_delivered", False),
                    flags.get("email_delivered", False),
                    flags.get("reminded_72h", False),
                    flags.get("reminded_24h", False),
                    flags.get("reminded_2h", False),
                    sorted(flags.get("rules", ())),
                    now,
                )
            )
        days = _run_days.get()
        if days is not None and since is not None:  # a rescheduled visit leaves its old day too
            days.update(row[7] for row in rows)
            days.update(
                AppointmentFact.objects.filter(appointment_id__in=[row[0] for row in rows]).values_list(
                    "local_date", flat=True
                )
            )
        written += upsert_facts(AppointmentFact, APPOINTMENT_FACT_COLUMNS, rows, "appointment")
    return written


APPOINTMENT_FACT_COLUMNS = (
    "appointment",
    "patient",
    "practitioner",
    "location",
    "appointment_type",
    "kind",
    "starts_at",
    "local_date",
    "weekday",
    "hour",
    "lead_days",
    "age_band",
    "outcome",
    "status_reason",
    "exposure",
    "sms_delivered",
    "email_delivered",
    "reminded_72h",
    "reminded_24h",
    "reminded_2h",
    "reminder_rules",
    "refreshed_at",
)
_NO_FLAGS: dict[str, Any] = {}
_NO_DEMOGRAPHICS: tuple[None] = (None,)


def refresh_run(*, full: bool = False, now: datetime | None = None) -> Refresh:
    """Run every builder for the current organization; incremental from the last finished run."""
    import analytics.builders  # noqa: F401  (registers every module's builders)

    organization = require_current_organization()
    now = now or timezone.now()
    last = Refresh.objects.filter(finished_at__isnull=False).order_by("-started_at").first()
    since = None if full or last is None else last.started_at
    run = Refresh.objects.create(organization=organization, started_at=now, full=since is None)
    rows: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    with run_scope():
        for name, build in BUILDERS.items():
            started = time.perf_counter()
            rows[name] = build(since, now)
            seconds[name] = round(time.perf_counter() - started, 2)
    run.rows, run.seconds = rows, seconds
    run.finished_at = timezone.now()
    run.save(update_fields=["rows", "seconds", "finished_at", "updated_at"])
    logger.info(
        "analytics refresh %s: %s",
        "full" if run.full else "incremental",
        ", ".join(f"{name} {rows[name]} rows {seconds[name]} s" for name in rows),
    )
    return run


def last_refresh() -> Refresh | None:
    return Refresh.objects.filter(finished_at__isnull=False).order_by("-started_at").first()
