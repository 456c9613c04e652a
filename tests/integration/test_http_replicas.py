"""Stateless streamable HTTP (`http.stateless`, the default): any replica answers any request of one client.

- Two `deploy-mcp serve --transport http` processes on one Postgres and one Temporal, one MCP client whose
  HTTP requests alternate between them (a transport that round-robins the two ports), in both protocol
  eras (`legacy`: the initialize handshake lands on one replica, the calls on the other): every call
  succeeds, both replicas answered, and each call's audit row is there.
- Progress of a long call over stateless HTTP: a `create_app` waiting on the real deploy workflow sends its
  progress notifications on the call's own SSE stream; the client receives them, increasing, ending at the
  total.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.auth import create_token
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import http_server
from tests.support.platform import ok
from tests.support.processes import DEPLOY_MCP, child, platform_env, wait_healthy
from tests.support.serving import serving
from tests.support.stand_ins import Cluster, StandInImages, stand_in_worker
from tools.context import PlatformConfig
from workflows.domain.secretbox import SecretBox

pytestmark = [pytest.mark.timeout(180), pytest.mark.parametrize("mode", ["auto", "legacy"])]


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request to the next of `ports` (as a Service spreads connections over pods) and counts
    which port answered what."""

    def __init__(self, ports: list[int]) -> None:
        self.next_port = itertools.cycle(ports)
        self.inner = httpx2.AsyncHTTPTransport()
        self.served: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = next(self.next_port)
        request.url = request.url.copy_with(port=port)
        self.served[port] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_one_client_alternating_between_two_replicas(store: PgStore, database_url: str,
                                                           temporal_address: str, tmp_path: Path,
                                                           mode: str) -> None:
    env = platform_env(database_url, temporal_address, f"replicas-{uuid.uuid4().hex[:8]}", tmp_path / "state")
    ports = [free_port(), free_port()]
    tenant = f"t{uuid.uuid4().hex[:6]}"
    token = await create_token(store, tenant, "agent", ["apps:read", "audit:read"])
    with child([DEPLOY_MCP, "serve", "--transport", "http", "--port", str(ports[0])], env, tmp_path / "a.log") as a, \
            child([DEPLOY_MCP, "serve", "--transport", "http", "--port", str(ports[1])], env, tmp_path / "b.log") as b:
        await asyncio.to_thread(wait_healthy, a, f"http://127.0.0.1:{ports[0]}/readyz", tmp_path / "a.log")
        await asyncio.to_thread(wait_healthy, b, f"http://127.0.0.1:{ports[1]}/readyz", tmp_path / "b.log")
        transport = RoundRobin(ports)
        async with httpx2.AsyncClient(transport=transport, headers={"Authorization": f"Bearer {token}"},
                                      timeout=30) as hc, \
                Client(streamable_http_client(f"http://127.0.0.1:{ports[0]}/mcp", http_client=hc),
                       mode=mode) as c:
            assert ok(await c.call_tool("whoami", {}))["tenant"] == tenant
            for _ in range(3):
                listed = ok(await c.call_tool("apps", {}))
                assert listed["projects"] == [] and listed["apps"] == []
            audit = ok(await c.call_tool("get_audit_log", {}))
        assert all(transport.served[p] >= 2 for p in ports), transport.served
    tools = [e["tool"] for e in audit["entries"]]
    assert tools.count("apps") == 3 and tools.count("whoami") == 1, tools


@pytest.fixture
async def http_url(store: PgStore, temporal_address: str) -> AsyncIterator[str]:
    """An HTTP server in this process (stateless, the default) whose deploys run on stand-ins."""
    box = SecretBox(Fernet.generate_key())
    async with stand_in_worker(store, temporal_address, Cluster(), box) as workflows:
        settings = load_settings(http={"port": free_port()})
        assert settings.http.stateless
        deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", progress_wait_seconds=60),
                          workflows=workflows, images=StandInImages(), secretbox=box)
        server = http_server(settings, build_server(deps, transport="http", public_url=settings.http.mcp_url()))
        async with serving(server):
            yield settings.http.mcp_url()


async def test_progress_reaches_the_client_over_stateless_http(store: PgStore, http_url: str, mode: str) -> None:
    token = await create_token(store, f"t{uuid.uuid4().hex[:6]}", "agent", ["apps:read", "apps:write"])
    notes: list[tuple[float, float | None]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append((progress, total))

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as hc, \
            Client(streamable_http_client(http_url, http_client=hc), mode=mode) as c:
        r = ok(await c.call_tool("create_app", {"project": "shop", "name": "web", "port": 8080,
                                               "source": {"image": "registry.test/team/web:v1"}},
                                 progress_callback=progress))
    assert r["phase"] == "succeeded", r
    values = [p for p, _ in notes]
    assert len(values) >= 3 and all(x < y for x, y in itertools.pairwise(values)), notes
    assert notes[-1][0] == notes[-1][1], notes
