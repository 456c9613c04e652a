"""The per-token budgets the server enforces before a tool runs: calls per minute (a token bucket) and
concurrent long waits (a counter), both in this process's memory.

In-process on purpose: the budgets protect this process's pool, Temporal client and event loop, and need no
round trip to enforce. Several server replicas each enforce their own budget, so behind a load balancer a
token gets up to `replicas x` the configured rate; a shared limiter (Postgres or Redis) would be the next
step if that matters. The `limits` package was considered: it offers fixed and moving windows, not a bucket
that refills continuously and says exactly when the next call may pass, which is a dozen lines here.

Kept in `mcp_server` (not `tools`): who a caller is (the token) is known at the server's door, and a call
over its budget never reaches a tool.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mcp_server.settings import RateLimitSettings
from tools.errors import RateLimited

Clock = Callable[[], float]
MAX_TRACKED = 10_000  # buckets kept in memory; past it, full (idle) ones are forgotten: a full bucket is no bucket


@dataclass
class TokenBucket:
    """`capacity` calls at once, refilled continuously at `capacity` per `period` seconds."""

    capacity: float
    period: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Spend one call: 0 if it may pass, else the seconds until it may."""
        rate = self.capacity / self.period
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.capacity / self.period >= self.capacity


class CallLimits:
    """The budgets of every token seen by this process. `key` is the token (its id over HTTP, the principal
    over stdio and in memory); `clock` is injectable so tests need not wait for a refill."""

    def __init__(self, settings: RateLimitSettings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._waits: dict[str, int] = {}

    def admit(self, key: str, per_minute: int | None = None) -> None:
        """Count one call against the token's budget (`per_minute`: the token's own, over the settings'), or
        raise RateLimited (nothing counted) past it."""
        now = self.clock()
        per_minute = per_minute or self.settings.calls_per_minute
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.capacity != per_minute:  # the token's limit changed: start it afresh
            bucket = None
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._forget_idle(now)
            bucket = self._buckets[key] = TokenBucket(per_minute, 60.0, per_minute, now)
        retry_after = bucket.take(now)
        if retry_after > 0:
            seconds = max(1, math.ceil(retry_after))
            raise RateLimited(f"rate limit: {per_minute} calls per minute for this token; retry after {seconds} s.",
                              retry_after=seconds,
                              hint="Calls over the budget are refused and not run; pace them, or ask the "
                                   "operator for a higher limit.")

    @contextmanager
    def long_wait(self, key: str, limit: int | None = None) -> Iterator[None]:
        """Hold one of the token's concurrent waits (`limit`: the token's own, over the settings') for the
        body, or raise RateLimited if all are held."""
        limit = limit or self.settings.concurrent_waits
        held = self._waits.get(key, 0)
        if held >= limit:
            raise RateLimited(
                f"rate limit: {limit} call(s) waiting on a workflow at once for this token; retry when one "
                "of them returns.", retry_after=None,
                hint="Or pass `wait_seconds=0` (logs: `follow_seconds=0`) to get the ids at once, and follow "
                     "the release with `deployments`.")
        self._waits[key] = held + 1
        try:
            yield
        finally:
            left = self._waits[key] - 1
            if left:
                self._waits[key] = left
            else:
                del self._waits[key]

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
