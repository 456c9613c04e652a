"""The budgets' arithmetic on a clock the test moves: the token bucket's refill and retry delay, the
concurrent waits given back whatever the body does, the refused-auth windows (summaries of ended windows,
the shared `*` window past `MAX_TRACKED` addresses) and the forgetting of idle buckets that bounds memory."""

from __future__ import annotations

import pytest

from mcp_server import auth_audit, rate_limits
from mcp_server.auth_audit import RefusalBudget
from mcp_server.rate_limits import CallLimits, TokenBucket
from mcp_server.settings import RateLimitSettings
from tools.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_continuously_and_names_the_delay() -> None:
    b = TokenBucket(capacity=6, period=60, tokens=6, updated=0)
    assert [b.take(0) for _ in range(6)] == [0.0] * 6
    assert b.take(0) == pytest.approx(10.0)  # 6 a minute: one every 10 s
    assert b.take(4) == pytest.approx(6.0)
    assert b.take(10) == 0.0
    assert not b.full(10) and b.full(70)


def test_waits_are_given_back_when_the_call_fails() -> None:
    limits = CallLimits(RateLimitSettings(concurrent_waits=1))
    with pytest.raises(ZeroDivisionError), limits.long_wait("k"):
        1 / 0  # noqa: B018
    with limits.long_wait("k"):
        with pytest.raises(RateLimited) as e, limits.long_wait("k"):
            pass
        assert e.value.retry_after is None and "1 call(s) waiting" in str(e.value)
        with limits.long_wait("other"):
            pass
    assert limits._waits == {}


def test_a_token_limit_overrides_the_settings() -> None:
    clock = Clock()
    limits = CallLimits(RateLimitSettings(calls_per_minute=100), clock=clock)
    limits.admit("k", per_minute=1)
    with pytest.raises(RateLimited) as e:
        limits.admit("k", per_minute=1)
    assert str(e.value).startswith("rate limit: 1 calls per minute for this token; retry after 60 s.")
    assert e.value.outcome == "denied" and e.value.retry_after == 60


def test_idle_buckets_are_forgotten_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limits, "MAX_TRACKED", 3)
    clock = Clock()
    limits = CallLimits(RateLimitSettings(calls_per_minute=2), clock=clock)
    for k in "abc":
        limits.admit(k)
    clock.now = 60  # all full again
    limits.admit("d")
    assert set(limits._buckets) == {"d"}


def test_refusal_windows_summarise_what_they_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_audit, "MAX_TRACKED", 2)
    clock = Clock()
    budget = RefusalBudget(2, clock=clock)
    assert [budget.admit("a")[0] for _ in range(5)] == [True, True, False, False, False]
    assert budget.admit("b") == (True, [])
    assert budget.admit("c") == (True, [])  # a third address: the shared window
    assert budget.admit("d") == (True, [])
    assert budget.admit("e") == (False, [])
    clock.now = 60
    write, summaries = budget.admit("a")
    assert write and sorted(summaries) == [("*", 1), ("a", 3)]
