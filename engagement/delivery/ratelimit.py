"""The organization's send rate: a GCRA in Redis, shared by every worker process and machine."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings

_RESERVE = """
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > max_wait then return -wait end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.floor((tat + interval - now) / 1000) + 1000)
return wait
"""


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def rate_reserve(organization_id: int, per_second: int) -> float:
    """Reserve the organization's next send slot: seconds to wait before sending (>= 0), or a
    negative number of seconds when the next free slot is further than ENGAGEMENT_RATE_MAX_WAIT.

    Slots are 1/rate apart (plus 2% margin for network jitter), so no second ever holds more than
    `per_second` sends, across every worker.
    """
    interval_us = int(1_000_000 * 1.02 / max(per_second, 1))
    max_wait_us = int(1_000_000 * float(settings.ENGAGEMENT_RATE_MAX_WAIT))
    script = _redis().register_script(_RESERVE)
    wait_us = int(script(keys=[f"engagement:rate:{organization_id}"], args=[interval_us, max_wait_us]))
    return wait_us / 1_000_000
