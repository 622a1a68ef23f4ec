"""Demo history that makes the analytics pages mean something (synthetic, seeded, repeatable).

Step "history" (after outreach): 18 months of past visits per practitioner (the calendar step lays out
the last 180 days; this adds the year before), then for every past visit, in date order, a booking
lead time, reminders (72 h and 24 h, delivered or failed), a confirmation by SMS reply for some, and
an outcome drawn from a known model:
    logit P(no-show) = -2.4 + 0.03 * min(lead days, 60) + 2.5 * the patient's prior no-show rate
                       + 0.35 Monday + 0.25 Friday + 0.35 at 08:00 + 0.3 at 16:00
                       - 1.4 if confirmed - 0.5 if a reminder was delivered
plus late cancels and cancellations with coded reasons. Blood pressure and HbA1c series every few
months for hypertensive and diabetic patients improve more on an active care plan.
Step "analytics" (last): a full refresh of the analytics facts, then the no-show model trained and
the coming visits scored, so the pages and the calendar show figures at once.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from healthcrm import demo
from healthcrm.demo import DemoTenant
from healthcrm.models import Location
from healthcrm.tenancy import require_current_organization

HISTORY_DAYS = 548  # 18 months
CALENDAR_DAYS_BACK = 180  # what patients/demo.py lays out already
SLOT_MINUTES = 30
WORKDAY = (8, 17)
BATCH = 2000
VISITS_PER_PATIENT_YEAR = 5.0  # chronic-care patients are seen about quarterly


def no_show_probability(
    *, lead: int, prior_rate: float, weekday: int, hour: int, confirmed: bool, delivered: bool
) -> float:
    logit = -2.4 + 0.03 * min(lead, 60) + 2.5 * prior_rate
    logit += {0: 0.35, 4: 0.25}.get(weekday, 0.0) + {8: 0.35, 16: 0.3}.get(hour, 0.0)
    logit -= 1.4 if confirmed else 0.0
    logit -= 0.5 if delivered else 0.0
    return 1 / (1 + math.exp(-logit))


@demo.register("history")
def seed_history(tenant: DemoTenant) -> list[str]:
    added = tenant.state.get("patients_added", 0)
    if not added:
        return []
    rng = random.Random(tenant.run.rng.random())
    with transaction.atomic():
        extra = _older_visits(added, rng)
        coming = _coming_visits(added, rng)
        visits, messages = _outcomes(rng)
        series = _measurement_series(rng)
    return [
        f"{extra} older visits",
        f"{coming} visits in the next two weeks",
        f"{visits} past visits given outcomes",
        f"{messages} past reminders",
        f"{series} BP/HbA1c readings",
    ]


@demo.register("analytics")
def seed_analytics(tenant: DemoTenant) -> list[str]:
    from analytics.refresh import refresh_run
    from analytics.risk import risk_score, risk_train

    run = refresh_run(full=True)
    # The no-show model is trained weekly by beat: train and score now, so the calendar has flags.
    model = risk_train()
    scored = risk_score()
    return [
        f"analytics facts: {', '.join(f'{n} {name}' for name, n in run.rows.items())}",
        f"no-show model {model.status}" + (f" (hold-out AUC {model.auc:.2f})" if model.auc else ""),
        f"{scored} upcoming visits scored",
    ]


def _older_visits(patients_added: int, rng: random.Random) -> int:
    from patients.models import Appointment, AppointmentKind, AppointmentType, Patient, Practitioner

    organization = require_current_organization()
    zone = organization.zone
    patient_ids = list(Patient.objects.order_by("-id").values_list("id", flat=True)[:patients_added])
    practitioners = list(Practitioner.objects.filter(is_active=True))
    locations = list(Location.objects.filter(is_active=True))
    if not practitioners or not patient_ids:
        return 0
    today = timezone.now().astimezone(zone).date()
    days = [today - timedelta(days=n) for n in range(CALENDAR_DAYS_BACK + 1, HISTORY_DAYS + 1)]
    days = [d for d in days if d.weekday() < 5]
    slots_per_day = (WORKDAY[1] - WORKDAY[0]) * 60 // SLOT_MINUTES
    wanted = VISITS_PER_PATIENT_YEAR * len(patient_ids) * len(days) / 261
    share = min(1.0, wanted / (len(days) * slots_per_day * len(practitioners)))
    types = list(AppointmentType.values)
    batch: list[Any] = []
    # A patient is in one visit at a time and a practitioner sees one patient at a time: the
    # visits other demo steps laid in these days (not aligned to this grid) count too.
    first = datetime.combine(days[-1], time(0), tzinfo=zone) if days else timezone.now()
    laid = Appointment.objects.filter(starts_at__gte=first).values_list(
        "patient_id", "practitioner_id", "starts_at", "ends_at"
    )
    patient_busy: dict[int, list[tuple[datetime, datetime]]] = {}
    practitioner_busy: dict[int, list[tuple[datetime, datetime]]] = {}
    for patient_id, practitioner_id, starts_at, ends_at in laid:
        patient_busy.setdefault(patient_id, []).append((starts_at, ends_at))
        practitioner_busy.setdefault(practitioner_id, []).append((starts_at, ends_at))

    def _free(intervals: list[tuple[datetime, datetime]], starts: datetime, ends: datetime) -> bool:
        return all(ends <= s or starts >= e for s, e in intervals)

    count = 0
    for practitioner in practitioners:
        location = rng.choice(locations) if locations else None
        for day in days:
            for slot in range(slots_per_day):
                if rng.random() >= share:
                    continue
                starts = datetime.combine(day, time(WORKDAY[0]), tzinfo=zone) + timedelta(minutes=slot * SLOT_MINUTES)
                telehealth = rng.random() < 0.15
                patient_id = rng.choice(patient_ids)
                ends = starts + timedelta(minutes=SLOT_MINUTES)
                mine = patient_busy.setdefault(patient_id, [])
                theirs = practitioner_busy.setdefault(practitioner.pk, [])
                if not (_free(mine, starts, ends) and _free(theirs, starts, ends)):
                    continue
                mine.append((starts, ends))
                theirs.append((starts, ends))
                batch.append(
                    Appointment(
                        patient_id=patient_id,
                        practitioner=practitioner,
                        location=None if telehealth else location,
                        kind=AppointmentKind.TELEHEALTH if telehealth else AppointmentKind.IN_PERSON,
                        appointment_type=rng.choice(types),
                        starts_at=starts,
                        ends_at=ends,
                        status="completed",
                    )
                )
                if len(batch) >= BATCH:
                    Appointment.objects.bulk_create(batch)
                    count += len(batch)
                    batch.clear()
    if batch:
        Appointment.objects.bulk_create(batch)
        count += len(batch)
    return count


COMING_DAYS = 14
COMING_SHARE = 0.45  # of each practitioner's free slots in the next two weeks


def _coming_visits(patients_added: int, rng: random.Random) -> int:
    """A fuller calendar for the next two weeks (the schedules a dashboard and risk flags are for):
    free slots only (no double booking), booked some days to weeks ahead, some already confirmed."""
    from patients.models import ACTIVE_STATUSES, Appointment, AppointmentType, Patient, Practitioner

    organization = require_current_organization()
    zone = organization.zone
    now = timezone.now()
    patient_ids = list(Patient.objects.order_by("-id").values_list("id", flat=True)[:patients_added])
    practitioners = list(Practitioner.objects.filter(is_active=True))
    locations = list(Location.objects.filter(is_active=True))
    if not practitioners or not patient_ids:
        return 0
    today = now.astimezone(zone).date()
    coming = Appointment.objects.filter(starts_at__gte=now, starts_at__lt=now + timedelta(days=COMING_DAYS + 1))
    taken = set(coming.values_list("practitioner_id", "starts_at"))
    # A patient is in one visit at a time (appointment_patient_no_overlap; the slots are aligned).
    busy = set(coming.filter(status__in=ACTIVE_STATUSES).values_list("patient_id", "starts_at"))
    slots_per_day = (WORKDAY[1] - WORKDAY[0]) * 60 // SLOT_MINUTES
    types = list(AppointmentType.values)
    batch: list[Any] = []
    for practitioner in practitioners:
        location = rng.choice(locations) if locations else None
        for n in range(COMING_DAYS + 1):
            day = today + timedelta(days=n)
            if day.weekday() >= 5:
                continue
            for slot in range(slots_per_day):
                starts = datetime.combine(day, time(WORKDAY[0]), tzinfo=zone) + timedelta(minutes=slot * SLOT_MINUTES)
                if starts <= now or (practitioner.pk, starts) in taken or rng.random() >= COMING_SHARE:
                    continue
                confirmed = n <= 3 and rng.random() < 0.45
                patient_id = rng.choice(patient_ids)
                if (patient_id, starts) in busy:
                    continue
                busy.add((patient_id, starts))
                batch.append(
                    Appointment(
                        patient_id=patient_id,
                        practitioner=practitioner,
                        location=location,
                        appointment_type=rng.choice(types),
                        starts_at=starts,
                        ends_at=starts + timedelta(minutes=SLOT_MINUTES),
                        status="confirmed" if confirmed else "booked",
                        confirmed_at=now - timedelta(hours=rng.randint(1, 20)) if confirmed else None,
                        confirmed_via="sms_reply" if confirmed else "",
                    )
                )
    created = Appointment.objects.bulk_create(batch, batch_size=BATCH)
    # Booked a few days to a few weeks before the visit (lead time is a risk feature).
    _write_booked([(a.pk, a.starts_at - timedelta(days=rng.randint(1, 30))) for a in created])
    return len(created)


def _write_booked(rows: list[tuple[int, datetime]]) -> None:
    if not rows:
        return
    ids, booked = zip(*rows, strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE patients_appointment a SET created_at = v.booked "
            "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, booked) WHERE a.id = v.id",
            [list(ids), list(booked)],
        )


_LEAD_BY_TYPE = {"new_patient": (7, 40), "annual": (14, 60), "lab": (0, 7), "post_discharge": (1, 7)}
_CANCEL_REASONS = ["patient_request", "illness", "transport", "conflict", "rescheduled", "clinic", "cost"]
_NO_SHOW_REASONS = ["forgot", "transport", "illness", "unknown", "unknown", "conflict"]


def _outcomes(rng: random.Random) -> tuple[int, int]:
    """Give every past visit a lead time, reminders, confirmation and outcome from the model."""
    from engagement.models import OutboundMessage, Rule
    from engagement.services.outbox import reminder_slot
    from patients.models import Appointment

    organization = require_current_organization()
    zone = organization.zone
    now = timezone.now()
    rule = Rule.objects.filter(kind="appointment_reminder", is_active=True).order_by("pk").first()
    visits = list(
        Appointment.objects.filter(starts_at__lt=now, source_id="")
        .order_by("starts_at", "pk")
        .values_list("pk", "patient_id", "starts_at", "appointment_type")
    )
    history: dict[int, list[bool]] = defaultdict(list)
    updates: list[tuple[Any, ...]] = []
    messages: list[Any] = []
    for pk, patient_id, starts, atype in visits:
        low, high = _LEAD_BY_TYPE.get(atype, (2, 30))
        lead = rng.randint(low, high) if rng.random() < 0.9 else 0
        local = starts.astimezone(zone)
        past = history[patient_id]
        prior = (sum(past) + 0.1) / (len(past) + 1)  # smoothed prior no-show rate
        delivered = lead >= 1 and rng.random() < 0.82
        confirmed = delivered and rng.random() < 0.5
        p = no_show_probability(
            lead=lead,
            prior_rate=prior,
            weekday=local.weekday(),
            hour=local.hour,
            confirmed=confirmed,
            delivered=delivered,
        )
        draw = rng.random()
        reason = ""
        changed = starts
        if draw < p:
            status, reason = "no_show", rng.choice(_NO_SHOW_REASONS)
        elif draw < p + 0.04:
            status, reason = "cancelled", rng.choice(_CANCEL_REASONS)
            changed = starts - timedelta(hours=rng.randint(1, 20))  # late cancel
        elif draw < p + 0.10:
            status, reason = "cancelled", rng.choice(_CANCEL_REASONS)
            changed = starts - timedelta(days=rng.randint(2, max(2, lead)))
        else:
            status = "completed"
        history[patient_id].append(status == "no_show")
        booked = starts - timedelta(days=lead, hours=rng.randint(1, 8))
        confirmed_at = starts - timedelta(hours=rng.randint(2, 22)) if confirmed else None
        updates.append((pk, status, changed, reason, confirmed_at, "sms_reply" if confirmed else "", booked))
        if rule is not None and lead >= 1:
            for offset in (72, 24) if lead >= 3 else (24,):
                due = starts - timedelta(hours=offset)
                ok = delivered or rng.random() < 0.3
                channel = "sms" if rng.random() < 0.8 else "email"
                messages.append(
                    OutboundMessage(
                        patient_id=patient_id,
                        rule=rule,
                        template_key=rule.template_key,
                        subject_type="appointment",
                        subject_id=pk,
                        channel=channel,
                        slot=reminder_slot(offset, starts),
                        status=("delivered" if channel == "sms" else "sent") if ok else "failed",
                        due_at=due,
                        next_attempt_at=due,
                        sent_at=due if ok else None,
                        delivered_at=due + timedelta(seconds=5) if ok and channel == "sms" else None,
                        attempts=1,
                        is_urgent=True,
                        expires_at=starts,
                        error_code="" if ok else "30003",
                    )
                )
        if len(updates) >= BATCH:
            _write(updates)
            updates.clear()
        if len(messages) >= BATCH:
            OutboundMessage.objects.bulk_create(messages, ignore_conflicts=True)
            messages.clear()
    _write(updates)
    if messages:
        OutboundMessage.objects.bulk_create(messages, ignore_conflicts=True)
    return len(visits), OutboundMessage.objects.filter(subject_type="appointment", due_at__lt=now).count()


_UPDATE_SQL = """
UPDATE patients_appointment a
   SET status = v.status, status_changed_at = v.changed, status_reason = v.reason,
       confirmed_at = v.confirmed_at, confirmed_via = v.via, created_at = v.booked
  FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::text[], %s::timestamptz[], %s::text[],
              %s::timestamptz[]) AS v(id, status, changed, reason, confirmed_at, via, booked)
 WHERE a.id = v.id
"""


def _write(rows: list[tuple[Any, ...]]) -> None:
    """One UPDATE ... FROM unnest(arrays) per batch: outcome, reason, confirmation and booking time."""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(_UPDATE_SQL, [list(column) for column in columns])


def _measurement_series(rng: random.Random) -> int:
    """BP every ~3 months for hypertensive patients, HbA1c every ~4 months for diabetic ones, over
    18 months; values drift down, faster for patients on an active care plan."""
    from patients.models import CarePlan, Condition, Observation
    from patients.services import blood_pressure_components

    now = timezone.now()
    on_plan = set(CarePlan.objects.filter(status="active").values_list("patient_id", flat=True))
    hypertensive = set(
        Condition.objects.filter(code="38341003", clinical_status="active").values_list("patient_id", flat=True)
    )
    diabetic = set(
        Condition.objects.filter(code="44054006", clinical_status="active").values_list("patient_id", flat=True)
    )
    rows: list[Any] = []
    for patient_id in sorted(hypertensive):
        start = rng.randint(138, 168)
        slope = 14 if patient_id in on_plan else 4
        for k, days_back in enumerate(range(HISTORY_DAYS, 0, -90)):
            systolic = start - slope * k / 6 + rng.randint(-6, 6)
            diastolic = min(systolic - 30, 70 + (systolic - 120) / 2 + rng.randint(-4, 4))
            rows.append(
                Observation(
                    patient_id=patient_id,
                    code="85354-9",
                    display="Blood pressure panel",
                    category="vital-signs",
                    unit="mm[Hg]",
                    effective_at=now - timedelta(days=days_back, hours=rng.randint(0, 6)),
                    components=blood_pressure_components(Decimal(round(systolic)), Decimal(round(diastolic))),
                )
            )
    for patient_id in sorted(diabetic):
        first_a1c = rng.uniform(7.4, 10.5)
        a1c_slope = 1.6 if patient_id in on_plan else 0.4
        for k, days_back in enumerate(range(HISTORY_DAYS, 0, -120)):
            value = max(5.6, first_a1c - a1c_slope * k / 4 + rng.uniform(-0.3, 0.3))
            rows.append(
                Observation(
                    patient_id=patient_id,
                    code="4548-4",
                    display="Hemoglobin A1c/Hemoglobin.total in Blood",
                    category="laboratory",
                    unit="%",
                    value_quantity=Decimal(f"{value:.1f}"),
                    reference_low=Decimal("4.0"),
                    reference_high=Decimal("5.6"),
                    effective_at=now - timedelta(days=days_back, hours=rng.randint(0, 6)),
                )
            )
    for observation in rows:
        observation.abnormal_flag = observation.compute_abnormal_flag()  # bulk_create skips save()
    Observation.objects.bulk_create(rows, batch_size=BATCH)
    return len(rows)
