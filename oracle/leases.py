"""Leases in Redis: at most one active listener and one active submitter per operator, on any
number of machines. The others wait as hot standbys and take over when a lease lapses."""

from __future__ import annotations

import time

import redis

_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""

_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """A named lease that one holder at a time renews; :meth:`hold` says whether we have it now."""

    def __init__(self, client: redis.Redis, key: str, holder: str, ttl_s: float = 10.0) -> None:
        self.key = key
        self.holder = holder
        self.ttl_s = ttl_s
        self._hold = client.register_script(_HOLD)
        self._drop = client.register_script(_DROP)
        self._held_until = 0.0

    def hold(self) -> bool:
        """Acquire or renew (renewals at most every third of the TTL); True while we hold it."""
        now = time.monotonic()
        if now < self._held_until - 2 * self.ttl_s / 3:
            return True
        if self._hold(keys=[self.key], args=[self.holder, int(self.ttl_s * 1000)]):
            self._held_until = now + self.ttl_s
            return True
        self._held_until = 0.0
        return False

    def release(self) -> None:
        self._held_until = 0.0
        self._drop(keys=[self.key], args=[self.holder])

    def current_holder(self, client: redis.Redis) -> str | None:
        value = client.get(self.key)
        return value.decode() if value is not None else None
