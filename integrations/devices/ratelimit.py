"""Per-token request limit for the device endpoint: a fixed window counted in Redis.

Redis keeps the clock (its key expiry), so every web process shares one count per token and no
test depends on the wall clock. Past the limit the endpoint answers 429 with Retry-After.
"""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings

# Returns the window's count after this request, and the milliseconds left in the window.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def device_rate_hit(token_hash: str) -> int:
    """Count one request of a token: 0 when allowed, else the seconds until its window reopens.

    The limit is DEVICE_RATE_LIMIT requests per DEVICE_RATE_WINDOW seconds (defaults 60 per 60).
    The key is a prefix of the token's stored hash (never the token).
    """
    limit = int(getattr(settings, "DEVICE_RATE_LIMIT", 60))
    window_ms = int(float(getattr(settings, "DEVICE_RATE_WINDOW", 60)) * 1000)
    script = _redis().register_script(_HIT)
    count, ttl_ms = script(keys=[f"devices:rate:{token_hash[:32]}"], args=[window_ms])
    if int(count) <= limit:
        return 0
    return max(1, -(-int(ttl_ms) // 1000))
