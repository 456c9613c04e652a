"""Per-token budgets over a real MCP client (`auto` and `legacy`) on a real Postgres (and, for the waits, a
real Temporal dev server with no worker, so a release stays pending and its call waits):

- past `calls_per_minute`, a call is refused with "rate limit: N calls per minute for this token; retry
  after S s", audited as `denied`, and nothing else is done (no app row);
- another token keeps its own budget;
- the budget refills with time (the limiter's clock is the test's, so nobody waits a minute);
- past `concurrent_waits`, a call that would wait on a workflow is refused before it records anything,
  while the same call with `wait_seconds=0` passes.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from mcp.client import Client
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter

from mcp_server.rate_limits import CallLimits
from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import RateLimitSettings
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from tests.support.platform import ok
from tests.support.stand_ins import StandInImages
from tools.context import PlatformConfig, Principal
from tools.ports import Workflows

pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])
SCOPES = frozenset({"apps:read", "apps:write", "audit:read"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(store: PgStore, limits: CallLimits, tenant: str, mode: str, workflows: Workflows | None = None,
           ) -> Client:
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test"), workflows=workflows,
                      images=StandInImages())
    server = build_server(deps, transport="memory", principal=Principal(tenant, "agent", SCOPES, "memory"),
                          limits=limits)
    return Client(server, mode=mode)


def text(r: Any) -> str:
    assert r.is_error
    return str(r.content[0].text)


def app_args(name: str, wait: int) -> dict[str, Any]:
    return {"project": "shop", "name": name, "source": {"image": "registry.test/team/web:v1"}, "port": 8080,
            "wait_seconds": wait}


async def test_calls_per_minute_trip_refill_and_stay_per_token(store: PgStore, mode: str) -> None:
    clock = Clock()
    limits = CallLimits(RateLimitSettings(calls_per_minute=3), clock=clock)
    async with client(store, limits, "acme", mode) as a, client(store, limits, "globex", mode) as b:
        for _ in range(3):
            ok(await a.call_tool("whoami", {}))
        refused = text(await a.call_tool("create_app", app_args("web", 0)))
        assert refused.startswith("rate limit: 3 calls per minute for this token; retry after 20 s."), refused
        clock.now += 10
        assert "retry after 10 s" in text(await a.call_tool("whoami", {}))
        assert ok(await b.call_tool("whoami", {}))["tenant"] == "globex"  # another token: its own budget
        clock.now += 10  # 20 s: one call's worth refilled
        ok(await a.call_tool("whoami", {}))
        assert "retry after 20 s" in text(await a.call_tool("whoami", {}))
        clock.now += 60  # a minute: the whole budget back, and no more than it
        audit = ok(await a.call_tool("get_audit_log", {"limit": 50}))
    assert await store.get_app("acme", "shop", "web") is None  # the refused create_app did nothing
    rows = [(e["tool"], e["outcome"]) for e in reversed(audit["entries"])]
    assert rows == [("whoami", "ok")] * 3 + [("create_app", "denied"), ("whoami", "denied"), ("whoami", "ok"),
                                             ("whoami", "denied")]
    denied = [e for e in audit["entries"] if e["outcome"] == "denied"]
    assert all((e["error"] or "").startswith("rate limit: 3 calls per minute") for e in denied)


async def test_concurrent_waits_are_capped_per_token(store: PgStore, temporal_address: str, mode: str) -> None:
    temporal = await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter)
    workflows = TemporalWorkflows(temporal, f"unpolled-{uuid.uuid4().hex[:8]}")  # releases stay pending
    limits = CallLimits(RateLimitSettings(concurrent_waits=1))
    tenant = f"t{uuid.uuid4().hex[:6]}"
    async with client(store, limits, tenant, mode, workflows) as c, \
            client(store, limits, f"o{uuid.uuid4().hex[:6]}", mode, workflows) as other:
        waiting = asyncio.create_task(c.call_tool("create_app", app_args("one", 3)))
        for _ in range(100):  # until the first call holds its wait (its release is recorded)
            if await store.get_app(tenant, "shop", "one") is not None:
                break
            await asyncio.sleep(0.05)
        refused = text(await c.call_tool("create_app", app_args("two", 3)))
        others = ok(await other.call_tool("create_app", app_args("two", 0)))
        at_once = ok(await c.call_tool("create_app", app_args("three", 0)))
        first = ok(await waiting)
        ok(await c.call_tool("create_app", app_args("four", 1)))  # the wait was given back
    assert refused.startswith("rate limit: 1 call(s) waiting on a workflow at once for this token"), refused
    assert "wait_seconds=0" in refused
    assert await store.get_app(tenant, "shop", "two") is None  # refused before anything was recorded
    assert (first["done"], at_once["phase"], others["phase"]) == (False, "pending", "pending")
