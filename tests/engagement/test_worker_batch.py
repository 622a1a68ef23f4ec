"""The batched send path with a real Celery worker (same harness as test_worker.py): SIGKILL while
batches are in flight (claims committed, sends done or not, results not recorded), restart, and
every message reaches the fake Twilio exactly once (the stale sweep settles unknown outcomes by
asking the provider); 500s are retried through the database, none sent twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.engagement import test_worker as harness
from tests.engagement.test_worker import _dispatch_until, _once_each, _patients, _statuses
from tests.integrations.fake_twilio import FakeTwilio

# The real-worker harness's fixtures (a subprocess worker, a clean broker).
broker = harness.broker
run_worker = harness.run_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def batching(settings: Any) -> None:
    settings.ENGAGEMENT_SEND_BATCH = 5  # read by dispatch_due, which the test process plays


def test_batches_sigkill_mid_flight_then_restart_every_message_exactly_once(org_a, batching, run_worker) -> None:
    n = 60
    # Slow provider: 2 pool children x 5 concurrent sends at 0.2 s, about 50/s, so the kill lands mid-run.
    with FakeTwilio(delay=0.2) as fake:
        _patients(org_a, n)
        worker = run_worker(fake)
        assert _dispatch_until(lambda: len(fake.accepted) >= 10, 20), "the worker never started sending"
        worker.kill()
        assert len(fake.accepted) < n
        run_worker(fake)
        assert _dispatch_until(lambda: _statuses(org_a) == Counter({"sent": n}), 40), _statuses(org_a)
        recipients = Counter(m.to for m in fake.accepted)
    assert recipients == _once_each(n)  # a failure lists the extra or missing numbers


def test_batches_retry_500s_until_all_are_sent_none_twice(org_a, batching, run_worker) -> None:
    n = 30
    with FakeTwilio(delay=0.01, fail_share=0.34, fail_status=500) as fake:
        _patients(org_a, n)
        run_worker(fake)
        assert _dispatch_until(lambda: _statuses(org_a) == Counter({"sent": n}), 30), _statuses(org_a)
        recipients = Counter(m.to for m in fake.accepted)
        failed = fake.failed
    assert failed >= 5
    assert recipients == _once_each(n)  # a failure lists the extra or missing numbers
