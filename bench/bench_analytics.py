"""Analytics bench: pages and dashboards on pre-aggregated facts vs the same figures from base tables.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/healthcrm REDIS_URL=redis://127.0.0.1:6379/11 \
        .venv/bin/python bench/bench_analytics.py [--samples 20] [--patients 100000] [--appointments 1000000]

Its own database (`<name>_bench`, shared with bench_patients.py: 100,000 patients and 1,000,000
appointments in `northside`, reused). On top it adds, once: visit outcomes, booking lead times and
confirmations; one reminder per appointment in the outbox (1,000,000: delivered, failed, sent);
100,000 inbound replies; 2,000,000 observations (BP panels and HbA1c). Then, as the app role under
RLS, in one run:
  - full rebuild of the analytics facts (refresh_run(full=True)) and an incremental refresh after
    one day's changes (3,000 visits and their reminders updated);
  - p50/p95 of each analytics page and each role's dashboard (Django test client, full stack);
  - p50/p95 of the same figures computed on the fly from the base tables ("naive"), with both query
    plans printed (EXPLAIN), over the same 90 days, on the same indexes, after VACUUM ANALYZE.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_patients import _bench_url, _manage, _percentiles, _timed  # noqa: E402


def _pcts(samples: list[float]) -> str:
    p50, p95 = _percentiles(samples)
    return f"p50 {p50:8.1f} ms   p95 {p95:8.1f} ms"


def _repeat(fn, samples: int) -> list[float]:  # type: ignore[no-untyped-def]
    """`fn()` timed `samples` times (bench_patients' _timed over no inputs)."""
    return _timed(lambda _: fn(), range(samples))


def _per_builder(run) -> str:  # type: ignore[no-untyped-def]
    """Each builder's seconds and rows in that run (Refresh.seconds), slowest first."""
    order = sorted(run.seconds, key=lambda name: -run.seconds[name])
    return ", ".join(f"{name} {run.seconds[name]:.1f} s ({run.rows[name]})" for name in order)


ADD_HISTORY = """
UPDATE patients_appointment SET
    status = CASE WHEN starts_at >= now() THEN status
                  WHEN (id * 7919) %% 100 < 10 THEN 'no_show'
                  WHEN (id * 7919) %% 100 < 18 THEN 'cancelled' ELSE 'completed' END,
    status_changed_at = CASE WHEN (id * 7919) %% 100 BETWEEN 10 AND 13 THEN starts_at - interval '3 hours'
                             ELSE starts_at - interval '4 days' END,
    created_at = starts_at - ((id * 104729) %% 40) * interval '1 day',
    confirmed_at = CASE WHEN (id * 31) %% 100 < 40 THEN starts_at - interval '20 hours' END,
    confirmed_via = CASE WHEN (id * 31) %% 100 < 40 THEN 'sms_reply' ELSE '' END
WHERE organization_id = %(org)s
"""

ADD_OUTBOX = """
INSERT INTO engagement_outboundmessage (organization_id, created_at, updated_at, patient_id, rule_id, template_key,
    subject_type, subject_id, channel, slot, is_urgent, status, due_at, next_attempt_at, expires_at, attempts,
    to_address, body, provider_sid, error_code, status_reason, sent_at)
SELECT a.organization_id, now(), now(), a.patient_id, %(rule)s, 'appointment_reminder', 'appointment', a.id,
       CASE WHEN a.id %% 5 = 0 THEN 'email' ELSE 'sms' END,
       '24h@' || to_char(a.starts_at AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MI'), true,
       CASE WHEN a.starts_at - interval '24 hours' > now() THEN 'pending'
            WHEN (a.id * 13) %% 10 = 0 THEN 'failed'
            WHEN (a.id * 13) %% 10 = 1 THEN 'sent' ELSE 'delivered' END,
       a.starts_at - interval '24 hours', a.starts_at - interval '24 hours', a.starts_at, 1,
       %(empty)s, %(empty)s, '', '', '',
       CASE WHEN a.starts_at - interval '24 hours' <= now() THEN a.starts_at - interval '24 hours' END
FROM patients_appointment a WHERE a.organization_id = %(org)s
ON CONFLICT DO NOTHING
"""

ADD_REPLIES = """
INSERT INTO engagement_conversationmessage (organization_id, created_at, updated_at, patient_id, direction, phone,
    body, provider_sid, keyword)
SELECT o.organization_id, o.sent_at + interval '2 hours', now(), o.patient_id, 'in', %(empty)s, %(empty)s, '',
       CASE WHEN o.id %% 20 = 0 THEN 'STOP' ELSE 'C' END
FROM engagement_outboundmessage o
WHERE o.organization_id = %(org)s AND o.status = 'delivered' AND o.id %% 8 = 0
"""

ADD_OBSERVATIONS = """
INSERT INTO patients_observation (organization_id, created_at, updated_at, patient_id, code_system, code, display,
    category, value_quantity, value_text, unit, components, effective_at, abnormal_flag)
SELECT p.organization_id, now(), now(), p.id, 'http://loinc.org',
       CASE WHEN g %% 2 = 0 THEN '85354-9' ELSE '4548-4' END,
       CASE WHEN g %% 2 = 0 THEN 'Blood pressure panel' ELSE 'Hemoglobin A1c' END,
       CASE WHEN g %% 2 = 0 THEN 'vital-signs' ELSE 'laboratory' END,
       CASE WHEN g %% 2 = 0 THEN NULL ELSE 5 + ((p.id * g) %% 60) / 10.0 END, %(empty)s,
       CASE WHEN g %% 2 = 0 THEN 'mm[Hg]' ELSE '%%' END,
       CASE WHEN g %% 2 = 0 THEN jsonb_build_array(
           jsonb_build_object('code', '8480-6', 'value', (110 + (p.id * g) %% 60)::text),
           jsonb_build_object('code', '8462-4', 'value', (70 + (p.id * g) %% 25)::text)) ELSE '[]'::jsonb END,
       now() - (g * 30 + p.id %% 30) * interval '1 day', ''
FROM patients_patient p, generate_series(1, %(per)s) AS g
WHERE p.organization_id = %(org)s
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--observations", type=int, default=2_000_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--pages-only", action="store_true", help="skip the rebuilds (facts already built)")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = _bench_url(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:54329/healthcrm")
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthcrm.settings")
    _manage("db_bootstrap")
    _manage("migrate", "--noinput", owner=True)

    import django

    django.setup()
    import psycopg
    from django.db import connection
    from django.test import Client
    from django.utils import timezone
    from encrypted_model_fields.fields import encrypt_str

    from analytics.models import AppointmentFact
    from analytics.refresh import refresh_run
    from bench.patients_data import _owner_dsn, ensure_data
    from engagement.models import OutboundMessage, Rule
    from healthcrm.models import Membership, Organization
    from healthcrm.tenancy import organization_context
    from patients.models import Appointment, Observation
    from tests.mfa import verify_session

    started = time.perf_counter()
    facts = ensure_data(patients=args.patients, appointments=args.appointments)
    organization = Organization.objects.get(slug=facts["slug"])
    empty = encrypt_str("").decode()
    with organization_context(organization):
        rule = Rule.objects.filter(kind="appointment_reminder").order_by("pk").first()
        if not OutboundMessage.objects.exists():
            with connection.cursor() as cursor:
                cursor.execute(ADD_HISTORY, {"org": organization.pk})
                cursor.execute(ADD_OUTBOX, {"org": organization.pk, "rule": rule.pk, "empty": empty})
                cursor.execute(ADD_REPLIES, {"org": organization.pk, "empty": empty})
                cursor.execute(
                    "UPDATE patients_patient SET preferred_language = 'es' WHERE organization_id = %s AND id %% 5 = 0",
                    [organization.pk],
                )
        have = Observation.objects.count()
        if have < args.observations:
            per = max(1, (args.observations - have) // max(1, facts["patients"]))
            with connection.cursor() as cursor:
                cursor.execute(ADD_OBSERVATIONS, {"org": organization.pk, "per": per, "empty": empty})
        counts = (Appointment.objects.count(), OutboundMessage.objects.count(), Observation.objects.count())
    with psycopg.connect(**_owner_dsn(), autocommit=True) as conn:
        for table in (
            "patients_appointment",
            "engagement_outboundmessage",
            "engagement_conversationmessage",
            "patients_observation",
            "patients_patient",
        ):
            conn.execute(f"VACUUM (ANALYZE) {table}")
    print(
        f"data: {facts['patients']} patients, {counts[0]} appointments, {counts[1]} outbox messages, "
        f"{counts[2]} observations in {facts['slug']} (ready in {time.perf_counter() - started:.0f} s)"
    )

    if not args.pages_only:
        with organization_context(organization):
            t0 = time.perf_counter()
            run = refresh_run(full=True)
            full = time.perf_counter() - t0
            print(f"full rebuild (refresh_run(full=True)): {full:.1f} s")
            print("  per builder, full:  " + _per_builder(run))
        with psycopg.connect(**_owner_dsn(), autocommit=True) as conn:
            for table in (
                "analytics_appointmentfact",
                "analytics_appointmentdaily",
                "analytics_patientfact",
                "analytics_outreachdaily",
            ):
                conn.execute(f"VACUUM (ANALYZE) {table}")
        with organization_context(organization):
            # One day's changes: 3,000 visits of yesterday get their outcome, their reminders a receipt.
            day_ids = list(
                Appointment.objects.filter(starts_at__lt=timezone.now())
                .order_by("-starts_at")
                .values_list("pk", flat=True)[:3000]
            )
            Appointment.objects.filter(pk__in=day_ids).update(updated_at=timezone.now())
            OutboundMessage.objects.filter(subject_id__in=day_ids).update(updated_at=timezone.now())
            t0 = time.perf_counter()
            run = refresh_run()
            print(f"incremental refresh after one day's changes: {time.perf_counter() - t0:.2f} s")
            print("  per builder, incremental:  " + _per_builder(run))
            assert AppointmentFact.objects.count() == counts[0]

    from django.contrib.auth import get_user_model
    from django.db.models import Count

    users = {}
    for role in ("provider", "nurse", "coordinator", "frontdesk", "admin", "analyst", "compliance"):
        user, _ = get_user_model().objects.get_or_create(
            username=f"bench-{role}@northside.example", defaults={"email": f"bench-{role}@northside.example"}
        )
        with organization_context(organization):  # memberships are rows of the organization (RLS)
            Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": role})
        users[role] = user
    print(f"\npages (full Django stack, as the app role under RLS, {args.samples} samples each, 90 days with data):")
    # The 90 days that end at the last visit that fell due (the bench's visits need not reach today).
    with organization_context(organization):
        last_day = (
            AppointmentFact.objects.exclude(outcome="upcoming")
            .order_by("-local_date")
            .values_list("local_date", flat=True)[0]
        )
    from datetime import timedelta

    window = f"?start={last_day - timedelta(days=89)}&end={last_day}"
    with organization_context(organization):  # the busiest provider: the page reads facts, not the cube
        busiest = (
            AppointmentFact.objects.values_list("practitioner_id", flat=True).annotate(n=Count("id")).order_by("-n")[0]
        )
    pages = [("analyst", "/analytics/attendance/" + window), ("analyst", "/analytics/reminders/" + window)]
    pages += [("analyst", f"/analytics/attendance/{window}&practitioner={busiest}")]
    pages += [("analyst", f"/analytics/reminders/{window}&practitioner={busiest}")]
    pages += [
        (role, "/") for role in ("provider", "nurse", "coordinator", "frontdesk", "admin", "analyst", "compliance")
    ]
    for role, url in pages:
        client = Client()
        client.force_login(users[role])
        if users[role].is_staff:
            verify_session(client, users[role])
        assert client.get(url).status_code == 200
        samples = _repeat(lambda: client.get(url), args.samples)  # noqa: B023
        where = " (one provider)" if "practitioner=" in url else ""
        print(f"  {url.split('?')[0] + where:40} {role:12} {_pcts(samples)}")

    print("\nthe same figures from the base tables (naive) vs the facts, 90 days:")
    from analytics import adherence, reminders
    from analytics.filters import Filters, Period

    filters = Filters(Period(last_day - timedelta(days=89), last_day), None, None, None)
    naive_sql = {
        "outcomes by provider": NAIVE_OUTCOMES,
        "attendance by reminder exposure": NAIVE_EXPOSURE,
    }
    with organization_context(organization):
        fact_fns = {
            "outcomes by provider": lambda: adherence.outcome_table(filters, "provider"),
            "attendance by reminder exposure": lambda: reminders.by_exposure(filters),
        }
        from datetime import datetime
        from datetime import time as clock

        start_ts = datetime.combine(filters.period.start, clock.min, tzinfo=organization.zone)
        end_ts = datetime.combine(filters.period.end + timedelta(days=1), clock.min, tzinfo=organization.zone)
        params = {"start_ts": start_ts, "end_ts": end_ts, "late": 24}
        for name, sql in naive_sql.items():
            fact = _repeat(fact_fns[name], args.samples)
            with connection.cursor() as cursor:

                def naive(sql: str = sql) -> None:
                    with connection.cursor() as c:
                        c.execute(sql, params)
                        c.fetchall()

                slow = _repeat(naive, max(3, args.samples // 4))
                cursor.execute("EXPLAIN " + sql, params)
                plan = "\n      ".join(row[0] for row in cursor.fetchall()[:12])
            ratio = statistics.median(slow) / statistics.median(fact)
            print(f"  {name:34} facts {_pcts(fact)}\n  {'':34} naive {_pcts(slow)}   ratio {ratio:.0f}x")
            print(f"    naive plan:\n      {plan}")


NAIVE_OUTCOMES = """
SELECT a.practitioner_id,
  CASE WHEN a.status IN ('completed', 'checked_in') THEN 'attended' WHEN a.status = 'no_show' THEN 'no_show'
       WHEN a.status = 'cancelled' AND a.status_changed_at >= a.starts_at - make_interval(hours => %(late)s)
         THEN 'late_cancel'
       ELSE 'cancelled' END AS outcome, count(*)
FROM patients_appointment a
WHERE a.status IN ('completed', 'checked_in', 'no_show', 'cancelled')
  AND a.starts_at >= %(start_ts)s AND a.starts_at < %(end_ts)s
GROUP BY 1, 2
"""

NAIVE_EXPOSURE = """
SELECT CASE WHEN a.confirmed_at < a.starts_at AND a.confirmed_via IN ('sms_reply', 'link') THEN 'confirmed'
            WHEN EXISTS (SELECT 1 FROM engagement_outboundmessage o WHERE o.subject_type = 'appointment'
                         AND o.subject_id = a.id
                         AND (o.status = 'delivered' OR (o.status = 'sent' AND o.channel = 'email'))
                         AND o.sent_at < a.starts_at) THEN 'delivered' ELSE 'none' END AS exposure,
       a.status, count(*)
FROM patients_appointment a
WHERE a.status IN ('completed', 'checked_in', 'no_show', 'cancelled')
  AND a.starts_at >= %(start_ts)s AND a.starts_at < %(end_ts)s
GROUP BY 1, 2
"""


if __name__ == "__main__":
    main()
