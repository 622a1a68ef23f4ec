"""Dispatch bench: N due SMS across two organizations, one Celery worker, the fake Twilio at 20 ms.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/healthcrm_bench REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/bench_dispatch.py            [BENCH_N=10000 BENCH_POOL=threads BENCH_CONCURRENCY=32
                                                             BENCH_BATCH=50]

Creates (or reuses) the database named in DATABASE_URL (migrated as its owner), seeds two
organizations with N/2 patients and N/2 due messages each (plus BENCH_BACKGROUND non-due rows, for
the scan timing), starts one worker (`celery worker -P threads -c 32` by default: any pool is
allowed), plays beat in this process, and prints messages/s, due->sent lag p50/p95/max, the
largest number of sends the fake saw in any one-second window per organization, and the due-scan
time. Flushes the Redis db it is given.

BENCH_BATCH sets ENGAGEMENT_SEND_BATCH for the scan this process plays (beat decides the task
shape): 1 is one outbox_send_task per message (the default setting), more is one
outbox_send_batch_task per chunk of that many ids, sent on the worker's sender threads
(ENGAGEMENT_SEND_THREADS, default 16).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthcrm.settings")
N = int(os.environ.get("BENCH_N", "10000"))
BACKGROUND = int(os.environ.get("BENCH_BACKGROUND", "200000"))
RATE = int(os.environ.get("BENCH_RATE", "400"))  # per organization
BATCH = int(os.environ.get("BENCH_BATCH", "50"))


def main() -> None:
    subprocess.run([sys.executable, "manage.py", "db_bootstrap"], cwd=REPO, check=True)  # noqa: S603
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=REPO,
        check=True,  # noqa: S603
        env={**os.environ, "DATABASE_LOGIN": "owner"},
    )
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from engagement import delivery
    from engagement.models import ChannelSettings, MessageTemplate, OutboundMessage
    from healthcrm.models import Organization
    from healthcrm.tenancy import organization_context
    from patients.models import Patient
    from tests.integrations.fake_twilio import FakeTwilio

    settings.ENGAGEMENT_SEND_BATCH = BATCH  # read by dispatch_due, which this process plays
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    orgs = []
    for slug in ("bench-a", "bench-b"):
        org, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": slug.title(), "timezone": "UTC"})
        orgs.append(org)
    per_org = N // 2
    now = timezone.now()
    for org in orgs:
        with organization_context(org):
            OutboundMessage.objects.all().delete()
            ChannelSettings.objects.update_or_create(
                organization=org,
                defaults={
                    "twilio_account_sid": "AC" + str(len(orgs)) * 32,
                    "twilio_auth_token": "bench-token",
                    "sms_from_number": "+15550000000",
                    "send_rate_per_second": RATE,
                    "quiet_start": "00:00",
                    "quiet_end": "00:00",
                },
            )
            MessageTemplate.objects.get_or_create(
                key="bench",
                language="en",
                channel="sms",
                defaults={"body": "Hi {{ first_name }}, from {{ clinic_name }}."},
            )
            have = Patient.objects.count()
            Patient.objects.bulk_create(
                [
                    Patient(
                        mrn=f"{org.slug}-{i}",
                        given_name="Pat",
                        family_name="Bench",
                        date_of_birth="1970-01-01",
                        phone_mobile=f"+1555{org.pk % 10}{i:06d}",
                        preferred_channel="sms",
                    )
                    for i in range(have, per_org)
                ],
                batch_size=2000,
            )
            ids = list(Patient.objects.values_list("pk", flat=True)[:per_org])
            rows = [
                OutboundMessage(
                    patient_id=p,
                    subject_type="bench",
                    slot="due",
                    channel="sms",
                    template_key="bench",
                    is_urgent=True,
                    due_at=now,
                    next_attempt_at=now,
                )
                for p in ids
            ]
            rows += [
                OutboundMessage(
                    patient_id=ids[i % len(ids)],
                    subject_type="later",
                    slot=str(i),
                    channel="sms",
                    template_key="bench",
                    is_urgent=True,
                    due_at=now + timezone.timedelta(days=30),
                    next_attempt_at=now + timezone.timedelta(days=30),
                )
                for i in range(BACKGROUND // 2)
            ]
            OutboundMessage.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE engagement_outboundmessage")
    # The due-scan among many rows (read-only: the SELECT the scan's UPDATE wraps).
    with organization_context(orgs[0]), connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(
            "SELECT id FROM engagement_outboundmessage WHERE organization_id = %s AND status = 'pending' "
            "AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT 500",
            [orgs[0].pk, now],
        )
        cursor.fetchall()
        scan_ms = (time.perf_counter() - started) * 1000
    total_rows = N + BACKGROUND
    # The messages fall due now (not when they were seeded), so the lag measures dispatch: the
    # worker's start-up (a few seconds) is included, as after a deploy.
    became_due = timezone.now()
    for org in orgs:
        with organization_context(org):
            OutboundMessage.objects.filter(slot="due", status="pending").update(
                due_at=became_due, next_attempt_at=became_due
            )
    with FakeTwilio(delay=0.02) as fake:
        env = {**os.environ, "TWILIO_API_URL": fake.url, "SMS_BACKEND": "twilio", "LOG_LEVEL": "WARNING"}
        pool = os.environ.get("BENCH_POOL", "threads")
        concurrency = os.environ.get("BENCH_CONCURRENCY", "32")
        worker = subprocess.Popen(  # noqa: S603
            [
                str(REPO / ".venv/bin/celery"),
                "-A",
                "healthcrm",
                "worker",
                "-Q",
                "outreach",  # noqa: S603
                "-P",
                pool,
                "-c",
                concurrency,
                "-l",
                "warning",
            ],
            cwd=REPO,
            env=env,
        )
        try:
            started = time.monotonic()
            deadline = started + 600
            while len(fake.accepted) < N and time.monotonic() < deadline:
                delivery.dispatch_due()
                time.sleep(0.5)
            elapsed = max(m.at for m in fake.accepted) - min(m.at for m in fake.accepted)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    lags = []
    for org in orgs:
        with organization_context(org):
            lags += [
                (s - d).total_seconds()
                for s, d in OutboundMessage.objects.filter(status="sent", slot="due").values_list("sent_at", "due_at")
            ]
    per_second: dict[str, Counter[int]] = defaultdict(Counter)
    for m in fake.accepted:
        per_second[m.account_sid][int(m.at)] += 1
    busiest = max((max(c.values()) for c in per_second.values()), default=0)
    lags.sort()
    print(f"messages: {len(fake.accepted)} of {N} (unique recipients {len({m.to for m in fake.accepted})})")
    print(
        f"throughput: {len(fake.accepted) / max(elapsed, 1e-9):.0f} messages/s ({pool} pool, concurrency {concurrency},"
        f" send batch {BATCH})"
    )
    print(
        f"due->sent lag: p50 {statistics.median(lags):.1f} s, p95 {lags[int(len(lags) * 0.95) - 1]:.1f} s, max {lags[-1]:.1f} s"  # noqa: E501
    )
    print(f"busiest second per organization: {busiest} sends (configured rate {RATE}/s)")
    print(f"due scan (LIMIT 500) among {total_rows} outbox rows: {scan_ms:.1f} ms")


if __name__ == "__main__":
    main()
