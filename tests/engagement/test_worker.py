"""Reliability with a real Celery worker (subprocess, prefork, 2 children) on real Redis, against
the local fake Twilio: exactly once across SIGKILL, retries through 500/429, opt-outs and quiet
hours. The test process plays beat (dispatch_due in a loop).

The worker is another process, on the real clock: time-machine cannot freeze it, so these tests are
left out of the suite's frozen wall clocks (tests/clocks.py) and stay hour-independent by choosing
the patients' zones from the clock; each clock read says why with a `# real-clock:` comment."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from datetime import time as clock
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from engagement import delivery, services
from engagement.models import OutboundMessage
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import configure
from tests.factories import PatientFactory
from tests.integrations.fake_twilio import FakeTwilio

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
# A claim is settled by asking the provider only once it is well past the send timeout (production:
# 300 s against 10 s): with the two equal, a send slowed past its timeout on a loaded machine could
# be asked about before the provider recorded it, "not found", and sent again (seen once: 61 of 60).
# Start-up refuses a stale time below the longest send (batch / threads rounds of limiter wait +
# the Twilio or SMTP timeout): batches of at most 5, a 1 s limiter wait and 2 s timeouts make that
# 3 s here, against 6.
TIMING = {
    "ENGAGEMENT_RETRY_BASE_SECONDS": "0.2",
    "ENGAGEMENT_SENDING_STALE_AFTER_SECONDS": "6",
    "ENGAGEMENT_REQUEUE_AFTER_SECONDS": "1.5",
    "ENGAGEMENT_SEND_BATCH": "5",
    "ENGAGEMENT_RATE_MAX_WAIT_SECONDS": "1",
    "EMAIL_TIMEOUT_SECONDS": "2",
}


def _test_database_url() -> str:
    """DATABASE_URL with the test database's name (the worker logs in as the app role itself)."""
    parts = urlsplit(os.environ.get("DATABASE_URL", django_settings.DATABASE_URL))
    return urlunsplit((parts.scheme, parts.netloc, "/" + django_settings.DATABASES["default"]["NAME"], parts.query, ""))


class Worker:
    def __init__(self, fake: FakeTwilio) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "DATABASE_LOGIN": "app",
            "REDIS_URL": django_settings.REDIS_URL,
            "TWILIO_API_URL": fake.url,
            "SMS_BACKEND": "twilio",
            "TWILIO_TIMEOUT_SECONDS": "2",
            "LOG_LEVEL": "WARNING",
            **TIMING,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            str(REPO / ".venv/bin/celery"),
            "-A",
            "healthcrm",
            "worker",
            "-Q",
            "outreach,default",
            "--concurrency",
            "2",
            "-P",
            "prefork",
            "-l",
            "warning",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        # Its own process group, so the kill reaches the pool children too (by this group's id).
        self.proc = subprocess.Popen(command, cwd=REPO, env=self.env, start_new_session=True)  # noqa: S603

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def broker() -> Iterator[None]:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.delete("outreach", "default", "unacked", "unacked_index")
    yield
    client.delete("outreach", "default", "unacked", "unacked_index")


@pytest.fixture
def run_worker(broker: None, settings: Any) -> Iterator[Callable[[FakeTwilio], Worker]]:
    for name, value in TIMING.items():
        setattr(settings, name.removesuffix("_SECONDS"), float(value))
    workers: list[Worker] = []

    def start(fake: FakeTwilio) -> Worker:
        worker = Worker(fake)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.kill()


def _dispatch_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery.dispatch_due()
        if done():
            return True
        time.sleep(0.3)
    return False


def _patients(org: Any, n: int, **kw: Any) -> list[Any]:
    configure(org, quiet_start=clock(0), quiet_end=clock(0))  # no quiet hours unless a test sets some
    with organization_context(org):
        patients = [PatientFactory(phone_mobile=_number(i), preferred_channel="sms", **kw) for i in range(n)]
        for patient in patients:
            services.outbox_enqueue(
                patient=patient,
                subject_type="observation",
                subject_id=1,
                slot="w",
                # real-clock: due now; quiet hours are off (00:00-00:00) unless a test sets some
                due_at=timezone.now(),
                template_key="lab_results",
                channel="sms",
                urgent=True,
            )
    return patients


def _once_each(n: int) -> Counter[str]:
    """What the provider should have accepted from _patients(org, n): one message to each number."""
    return Counter(_number(i) for i in range(n))


def _number(i: int) -> str:
    return f"+1312555{2000 + i:04d}"


def _statuses(org: Any) -> Counter[str]:
    with organization_context(org):
        return Counter(OutboundMessage.objects.values_list("status", flat=True))


@pytest.fixture(autouse=True)
def _one_task_per_message(settings) -> None:  # type: ignore[no-untyped-def]
    # These tests cover the one-task-per-message path (dispatch_due runs in this process); the
    # batched path, the default, has the same tests in test_worker_batch.py.
    settings.ENGAGEMENT_SEND_BATCH = 1


def test_sigkill_mid_batch_then_restart_every_message_reaches_twilio_exactly_once(org_a, run_worker) -> None:
    n = 40
    with FakeTwilio(delay=0.05) as fake:
        _patients(org_a, n)
        worker = run_worker(fake)
        assert _dispatch_until(lambda: len(fake.accepted) >= 8, 20), "the worker never started sending"
        worker.kill()  # SIGKILL, parent and children, mid-batch
        sent_before_kill = len(fake.accepted)
        assert sent_before_kill < n
        run_worker(fake)
        assert _dispatch_until(lambda: _statuses(org_a) == Counter({"sent": n}), 25), _statuses(org_a)
        recipients = Counter(m.to for m in fake.accepted)
    assert recipients == _once_each(n)  # a failure lists the extra or missing numbers


def test_500_and_429_answers_are_retried_until_all_are_sent_none_twice(org_a, run_worker) -> None:
    n = 30
    with FakeTwilio(delay=0.01, fail_share=0.34, fail_status=500) as fake:
        _patients(org_a, n)
        run_worker(fake)
        assert _dispatch_until(lambda: fake.failed >= 3, 20)
        fake.fail_status = 429
        assert _dispatch_until(lambda: _statuses(org_a) == Counter({"sent": n}), 25), _statuses(org_a)
        recipients = Counter(m.to for m in fake.accepted)
        failed = fake.failed
    assert failed >= 5
    assert recipients == _once_each(n)  # a failure lists the extra or missing numbers
    with organization_context(org_a):
        assert OutboundMessage.objects.filter(attempts__gt=1).exists()


def _zone_where_the_hour_is(hours: range) -> str:
    """An Etc/GMT zone (no DST) whose local hour is now in `hours`: the worker runs in another process,
    so the clock cannot be frozen there; the patients' zones are chosen from the clock instead."""
    import zoneinfo

    # real-clock: the worker is another process: zones are chosen from the real hour
    now = timezone.now()
    for offset in range(-12, 15):
        name = f"Etc/GMT{'+' if offset < 0 else '-'}{abs(offset)}" if offset else "Etc/GMT"
        if now.astimezone(zoneinfo.ZoneInfo(name)).hour in hours:
            return name
    raise AssertionError(f"some zone always has a local hour in {hours}")


def _zone_where_it_is_night() -> str:
    return _zone_where_the_hour_is(range(0, 6))


def _zone_where_it_is_midday() -> str:
    return _zone_where_the_hour_is(range(11, 15))


def test_opted_out_patient_gets_nothing_and_a_night_message_waits_for_0800(org_a, run_worker) -> None:
    import zoneinfo

    with FakeTwilio(delay=0.01) as fake:
        # The reachable patient lives where it is midday whatever the hour here, so the quiet hours
        # set below hold back only the sleeper (this test failed at night before).
        opted_out, reachable = _patients(org_a, 2, timezone=_zone_where_it_is_midday())
        night = _zone_where_it_is_night()
        with organization_context(org_a):
            services.consent_set(patient=opted_out, channel="sms", status="opted_out", source="staff")
            sleeper = PatientFactory(phone_mobile="+13125559999", preferred_channel="sms", timezone=night)
            configure(org_a, quiet_start=clock(8), quiet_end=clock(21))
            late = services.outbox_enqueue(
                patient=sleeper,
                subject_type="observation",
                subject_id=1,
                slot="night",
                # real-clock: the sleeper lives where it is night now, whatever the hour here
                due_at=timezone.now(),
                template_key="lab_results",
                channel="sms",
                urgent=True,
            )
            # Make it due now, as if it had been scheduled before the organization set quiet hours.
            # real-clock: the same: due now, night in the sleeper's zone
            OutboundMessage.objects.filter(pk=late.pk).update(next_attempt_at=timezone.now())
        run_worker(fake)
        assert _dispatch_until(lambda: fake.bodies_to(reachable.phone_mobile) != [], 20)
        _dispatch_until(lambda: False, 2)  # a few more scans: nothing else may go
        assert fake.bodies_to(opted_out.phone_mobile) == [] and fake.bodies_to("+13125559999") == []
    with organization_context(org_a):
        row = OutboundMessage.objects.get(pk=late.pk)
    local = row.next_attempt_at.astimezone(zoneinfo.ZoneInfo(night))
    assert row.status == "pending" and (local.hour, local.minute) == (8, 0)
    # real-clock: only "later than now": the 08:00 is checked in the sleeper's zone above
    assert row.next_attempt_at > timezone.now()
    assert isinstance(row.next_attempt_at, datetime)
