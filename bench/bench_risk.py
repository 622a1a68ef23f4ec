"""No-show model bench: train and score one organization's model on a large generated history.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/hc_risk .venv/bin/python bench/bench_risk.py
        [BENCH_N=200000 BENCH_UPCOMING=5000 BENCH_INMEMORY=1000000 BENCH_FILL=orm|sql]

Creates (or reuses) the organization "bench-risk" ("bench-risk-sql" with BENCH_FILL=sql) in the
database named in DATABASE_URL (migrated as its owner) with BENCH_N past visits (appointments and
their analytics facts, a known pattern: the no-show chance rises with lead time and the patient's
own propensity, falls when confirmed) and BENCH_UPCOMING booked visits in the next 14 days; a
second run with the same N reuses them.
Then, as the app role under row-level security, times `risk_train` (read the facts, prior no-show
counts, hold-out fit and evaluation, refit on all, store) and `risk_score` (the upcoming visits,
their reasons, the extra-reminder pass), and prints the hold-out AUC and Brier score.

BENCH_FILL=sql writes the history with a few INSERT ... SELECT statements in the database (the
same pattern, PostgreSQL's random()) instead of the ORM: minutes instead of most of an hour at
1,000,000 visits. It reuses the organization's patients (at most 20,000).

BENCH_INMEMORY (0 to skip) also times the same pipeline without the database on that many
synthetic fact rows (tuples as the database would give them), so the fitting part can be measured
at 1,000,000 visits on a machine where writing that many rows would take too long.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthcrm.settings")
N = int(os.environ.get("BENCH_N", "200000"))
UPCOMING = int(os.environ.get("BENCH_UPCOMING", "5000"))
INMEMORY = int(os.environ.get("BENCH_INMEMORY", "1000000"))
FILL = os.environ.get("BENCH_FILL", "orm")
PATIENTS = max(100, N // 10) if os.environ.get("BENCH_FILL", "orm") != "sql" else 20000
PRACTITIONERS = 50
LEADS = np.array([0, 3, 14, 45, 120])
TYPES = np.array(["follow_up", "annual", "new_patient", "chronic_care", "lab"], dtype=object)
AGES = np.array(["0-17", "18-39", "40-64", "65-74", "75+"], dtype=object)


def pattern(rng: np.random.Generator, n: int, patients: int) -> dict[str, np.ndarray]:
    """Columns of n visits: patient index, lead, confirmed, reminded, type, no-show."""
    propensity = rng.normal(0, 1, patients)
    # Each practitioner sees their own band of patients: the visits at one time (one per
    # practitioner) are of different patients (a patient cannot be double-booked).
    band = patients // PRACTITIONERS
    who = (np.arange(n) % PRACTITIONERS) * band + rng.integers(0, band, n)
    lead = rng.choice(LEADS, n)
    confirmed = rng.random(n) < 0.4
    logit = -2.6 + 0.02 * lead + 1.3 * propensity[who] - 1.6 * confirmed
    return {
        "who": who,
        "lead": lead,
        "confirmed": confirmed,
        "reminded": rng.random(n) < 0.7,
        "type": rng.choice(TYPES, n),
        "age": AGES[who % len(AGES)],
        "no_show": rng.random(n) < 1 / (1 + np.exp(-logit)),
    }


FILL_SQL = [
    "DROP TABLE IF EXISTS bench_people, bench_visits",
    """CREATE TEMP TABLE bench_people AS
       SELECT (row_number() OVER (ORDER BY id)) - 1 AS k, id,
              sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z
       FROM patients_patient WHERE organization_id = %(org)s""",
    """CREATE TEMP TABLE bench_visits AS
       SELECT i, (i %% %(pool)s) * (%(patients)s / %(pool)s) + floor(random() * (%(patients)s / %(pool)s))::int AS k,
              (ARRAY[0, 3, 14, 45, 120])[1 + floor(random() * 5)::int] AS lead,
              random() < 0.4 AS confirmed, random() < 0.7 AS reminded,
              (ARRAY['follow_up', 'annual', 'new_patient', 'chronic_care', 'lab'])[1 + floor(random() * 5)::int]
                  AS atype,
              random() AS u
       FROM generate_series(0, %(total)s - 1) AS i""",
    """INSERT INTO patients_appointment (created_at, updated_at, kind, appointment_type, reason, starts_at, ends_at,
           status, telehealth_url, source_system, source_id, organization_id, patient_id, practitioner_id,
           confirmed_via, status_reason)
       SELECT now(), now(), 'in_person', v.atype, %(reason)s, s.at, s.at + interval '20 minutes',
              CASE WHEN v.i >= %(n)s THEN 'booked'
                   WHEN v.u < 1 / (1 + exp(-(-2.6 + 0.02 * v.lead + 1.3 * p.z - 1.6 * v.confirmed::int))) THEN 'no_show'
                   ELSE 'completed' END,
              '', 'bench', v.i::text, %(org)s, p.id, (%(doctors)s::bigint[])[1 + v.i %% %(pool)s], '', ''
       FROM bench_visits v JOIN bench_people p USING (k)
       CROSS JOIN LATERAL (SELECT CASE WHEN v.i < %(n)s THEN %(start)s + (v.i / %(pool)s) * %(step)s
                                       ELSE %(now)s + ((v.i - %(n)s) / %(pool)s + 1) * %(future)s END AS at) s""",
    """INSERT INTO analytics_appointmentfact (created_at, updated_at, appointment_type, kind, starts_at, local_date,
           weekday, hour, lead_days, age_band, outcome, status_reason, exposure, sms_delivered, email_delivered,
           reminded_72h, reminded_24h, reminded_2h, refreshed_at, appointment_id, organization_id, patient_id,
           practitioner_id)
       SELECT now(), now(), a.appointment_type, 'in_person', a.starts_at, (a.starts_at AT TIME ZONE 'UTC')::date,
              extract(isodow FROM a.starts_at AT TIME ZONE 'UTC')::int - 1,
              extract(hour FROM a.starts_at AT TIME ZONE 'UTC')::int, v.lead,
              (ARRAY['0-17', '18-39', '40-64', '65-74', '75+'])[1 + v.k %% 5],
              CASE a.status WHEN 'no_show' THEN 'no_show' WHEN 'completed' THEN 'attended' ELSE 'upcoming' END, '',
              CASE WHEN v.confirmed AND a.status <> 'booked' THEN 'confirmed' ELSE 'none' END,
              v.reminded AND a.status <> 'booked', false, false, false, false, now(),
              a.id, a.organization_id, a.patient_id, a.practitioner_id
       FROM patients_appointment a JOIN bench_visits v ON a.source_id = v.i::text
       WHERE a.organization_id = %(org)s AND a.source_system = 'bench'""",
]


def in_memory(n: int) -> None:
    from analytics import risk

    rng = np.random.default_rng(11)
    cols = pattern(rng, n, max(100, n // 10))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    epoch, step = start.timestamp(), 730 * 86400 / n
    t0 = time.perf_counter()
    rows = [
        (
            i,
            int(cols["who"][i]),
            int(epoch + step * i),
            int(cols["lead"][i]),
            (start + timedelta(seconds=step * i)).weekday(),
            (start + timedelta(seconds=step * i)).hour,
            cols["type"][i],
            cols["age"][i],
            bool(cols["confirmed"][i]),
            bool(cols["reminded"][i]),
            bool(cols["no_show"][i]),
        )
        for i in range(n)
    ]
    t1 = time.perf_counter()
    visits = risk.with_prior_counts(risk.visits_from_rows(rows))
    result = risk.evaluate_and_fit(visits)
    t2 = time.perf_counter()
    print(
        f"in memory, {n:,} visits: features + hold-out fit + evaluation + refit {t2 - t1:.1f} s "
        f"(building the row tuples as the query returns them {t1 - t0:.1f} s, not counted); "
        f"AUC {result.auc:.3f}, Brier {result.brier:.4f}"
    )


def orm_fill(org: Any, now: datetime, patients: list[int], doctors: list[int]) -> None:
    from analytics.models import AppointmentFact
    from healthcrm.tenancy import organization_context
    from patients.models import Appointment

    rng = np.random.default_rng(7)
    cols = pattern(rng, N + UPCOMING, len(patients))
    # One practitioner per visit in turn, each slot far enough apart never to overlap.
    history_start = now - timedelta(days=730)
    past_step = timedelta(days=730) / (N // PRACTITIONERS + 1)
    future_step = timedelta(days=14) / (UPCOMING // PRACTITIONERS + 2)
    for offset in range(0, N + UPCOMING, 5000):
        batch = range(offset, min(offset + 5000, N + UPCOMING))
        appointments, facts = [], []
        for i in batch:
            past = i < N
            slot = i // PRACTITIONERS if past else (i - N) // PRACTITIONERS + 1
            starts_at = history_start + past_step * slot if past else now + future_step * slot
            status = ("no_show" if cols["no_show"][i] else "completed") if past else "booked"
            appointments.append(
                Appointment(
                    organization=org,
                    patient_id=patients[cols["who"][i]],
                    practitioner_id=doctors[i % PRACTITIONERS],
                    starts_at=starts_at,
                    ends_at=starts_at + timedelta(minutes=20),
                    status=status,
                    appointment_type=cols["type"][i],
                )
            )
        with organization_context(org):
            Appointment.objects.bulk_create(appointments)
            for i, appointment in zip(batch, appointments, strict=True):
                past = i < N
                facts.append(
                    AppointmentFact(
                        organization=org,
                        appointment_id=appointment.pk,
                        patient_id=appointment.patient_id,
                        practitioner_id=appointment.practitioner_id,
                        appointment_type=appointment.appointment_type,
                        kind="in_person",
                        starts_at=appointment.starts_at,
                        local_date=appointment.starts_at.date(),
                        weekday=appointment.starts_at.weekday(),
                        hour=appointment.starts_at.hour,
                        lead_days=int(cols["lead"][i]),
                        age_band=cols["age"][i],
                        outcome=("no_show" if cols["no_show"][i] else "attended") if past else "upcoming",
                        exposure="confirmed" if cols["confirmed"][i] and past else "none",
                        sms_delivered=bool(cols["reminded"][i]) and past,
                        refreshed_at=now,
                    )
                )
            AppointmentFact.objects.bulk_create(facts)


def main() -> None:
    subprocess.run([sys.executable, "manage.py", "db_bootstrap"], cwd=REPO, check=True)  # noqa: S603
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],  # noqa: S603
        cwd=REPO,
        check=True,
        env={**os.environ, "DATABASE_LOGIN": "owner"},
    )
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from analytics import risk
    from analytics.models import AppointmentFact
    from healthcrm.models import Organization
    from healthcrm.tenancy import organization_context
    from patients.models import Patient, Practitioner

    slug = "bench-risk-sql" if FILL == "sql" else "bench-risk"
    org, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": slug.title(), "timezone": "UTC"})
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    with organization_context(org):
        have = AppointmentFact.objects.filter(outcome__in=risk.POPULATION).count()
    if have != N:
        started = time.perf_counter()
        with organization_context(org):
            # The bench's own synthetic rows, dropped in SQL (the ORM would write an audit entry per row).
            with connection.cursor() as cursor:
                for table in ("analytics_appointmentrisk", "analytics_appointmentfact", "patients_appointment"):
                    cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [org.pk])  # noqa: S608
            if Patient.objects.count() < PATIENTS:
                Patient.objects.bulk_create(
                    [
                        Patient(mrn=f"risk-{i}", given_name="Pat", family_name="Bench", date_of_birth="1970-01-01")
                        for i in range(Patient.objects.count(), PATIENTS)
                    ],
                    batch_size=2000,
                )
            patients = list(Patient.objects.order_by("pk").values_list("pk", flat=True)[:PATIENTS])
            doctors = list(Practitioner.objects.values_list("pk", flat=True))
            for i in range(len(doctors), PRACTITIONERS):
                doctors.append(Practitioner.objects.create(display_name=f"Dr. Bench {i}").pk)
        if FILL == "sql":
            from patients.models import Appointment as A

            params = {
                "org": org.pk,
                "patients": len(patients),
                "total": N + UPCOMING,
                "n": N,
                "pool": PRACTITIONERS,
                "doctors": doctors,
                "reason": A._meta.get_field("reason").get_db_prep_value("", connection),
                "start": now - timedelta(days=730),
                "step": timedelta(days=730) / (N // PRACTITIONERS + 1),
                "now": now,
                "future": timedelta(days=14) / (UPCOMING // PRACTITIONERS + 2),
            }
            with organization_context(org), connection.cursor() as cursor:
                for statement in FILL_SQL:
                    cursor.execute(statement, params)
        else:
            orm_fill(org, now, patients, doctors)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE analytics_appointmentfact")
        print(f"generated {N:,} past and {UPCOMING:,} upcoming visits in {time.perf_counter() - started:.0f} s")
    else:
        print(f"reusing {N:,} past visits of organization {slug}")
    with organization_context(org):
        started = time.perf_counter()
        model = risk.risk_train(now=now)
        trained = time.perf_counter() - started
    with organization_context(org):
        started = time.perf_counter()
        scored = risk.risk_score(now=now)
        scoring = time.perf_counter() - started
    print(
        f"risk_train: {model.n_train + model.n_test:,} due visits in {trained:.1f} s "
        f"(status {model.status}; hold-out {model.n_test:,} visits: AUC {model.auc:.3f}, Brier {model.brier:.4f})"
    )
    print(f"risk_score: {scored:,} upcoming visits scored in {scoring:.1f} s")
    if INMEMORY:
        in_memory(INMEMORY)


if __name__ == "__main__":
    main()
