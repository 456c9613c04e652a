"""Concurrent tool calls on a small connection pool, over a real MCP client (`auto` and `legacy`, and over
streamable HTTP with two tenants' tokens) on a real Postgres and a real Temporal dev server (no worker: a
workflow start needs only the server):

- 20 concurrent `create_app` calls with one idempotency key all succeed, on one deployment row and one
  workflow; the store never holds one pooled connection while waiting for another (it did: `create_release`
  held its transaction's connection and `ensure_project` asked for a second, so a pool of N deadlocked once N
  calls did the same, until psycopg_pool's PoolTimeout);
- while one tenant floods the server, another tenant's read tool answers promptly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter

from mcp_server.auth import create_token
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from mcp_server.wiring import http_server
from tests.support.platform import ok
from tests.support.stand_ins import StandInImages
from tools.context import PlatformConfig, Principal

SCOPES = frozenset({"apps:read", "apps:write"})
POOL = 3  # far fewer connections than concurrent calls: a hold-and-wait shows at once
POOL_WAIT = 5.0  # seconds a query waits for a connection; the deadlock used to fail here (30 s by default)


@pytest.fixture
async def small_store(database_url: str) -> AsyncIterator[PgStore]:
    s = await PgStore.open(database_url, min_size=1, max_size=POOL, timeout=POOL_WAIT)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def temporal(temporal_address: str) -> TemporalClient:
    return await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter)


def client(store: PgStore, temporal: TemporalClient, tenant: str, mode: str) -> Client:
    # nobody polls this queue: the tool starts the workflow and returns at once (wait_seconds=0)
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test"),
                      workflows=TemporalWorkflows(temporal, f"unpolled-{uuid.uuid4().hex[:8]}"),
                      images=StandInImages())
    return Client(build_server(deps, transport="memory", principal=Principal(tenant, "agent", SCOPES, "memory")),
                  mode=mode)


def create_args(key: str) -> dict[str, Any]:
    return {"project": "shop", "name": "web", "source": {"image": "registry.test/team/web:v1"}, "port": 8080,
            "idempotency_key": key, "wait_seconds": 0}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_concurrent_creates_with_one_key_make_one_release(small_store: PgStore, temporal: TemporalClient,
                                                                mode: str) -> None:
    tenant, other = f"t{uuid.uuid4().hex[:6]}", f"o{uuid.uuid4().hex[:6]}"
    async with client(small_store, temporal, tenant, mode) as flood, \
            client(small_store, temporal, other, mode) as reader:
        calls = [asyncio.create_task(flood.call_tool("create_app", create_args("one-key"))) for _ in range(20)]
        await asyncio.sleep(0.05)  # the flood is under way
        t0 = time.monotonic()
        listed = await reader.call_tool("apps", {})
        read_seconds = time.monotonic() - t0
        results = await asyncio.gather(*calls)
    errors = [r.content[0].text for r in results if r.is_error]  # type: ignore[union-attr]
    assert errors == []
    assert ok(listed)["apps"] == []
    assert read_seconds < POOL_WAIT / 2, f"another tenant's list_apps took {read_seconds:.1f} s during the flood"
    ids = {(ok(r)["deployment_id"], ok(r)["workflow_id"]) for r in results}
    assert len(ids) == 1, ids
    await one_release(small_store, temporal, tenant, ids.pop()[1])


async def one_release(store: PgStore, temporal: TemporalClient, tenant: str, workflow_id: str) -> None:
    async with store.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM deployments d JOIN apps a ON a.id = d.app_id JOIN projects p "
            "ON p.id = a.project_id JOIN tenants t ON t.id = p.tenant_id WHERE t.name = %s", (tenant,))
        row = await cur.fetchone()
    assert row is not None and row["n"] == 1
    runs = [w async for w in temporal.list_workflows(f'WorkflowId STARTS_WITH "deploy/{tenant}/"')]
    assert [w.id for w in runs] == [workflow_id]


async def test_over_http_a_flooding_tenant_leaves_the_others_served(small_store: PgStore,
                                                                    temporal: TemporalClient) -> None:
    tenant, other = f"t{uuid.uuid4().hex[:6]}", f"o{uuid.uuid4().hex[:6]}"
    settings = load_settings(http={"port": free_port()})
    deps = ServerDeps(store=small_store, config=PlatformConfig(apps_domain="apps.test"),
                      workflows=TemporalWorkflows(temporal, f"unpolled-{uuid.uuid4().hex[:8]}"),
                      images=StandInImages())
    server = http_server(settings, build_server(deps, transport="http", public_url=settings.http.mcp_url()))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
        if task.done():
            task.result()
    url = settings.http.mcp_url()
    flood_token = await create_token(small_store, tenant, "flood", sorted(SCOPES))
    read_token = await create_token(small_store, other, "reader", ["apps:read"])
    try:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {flood_token}"}, timeout=60) as fh, \
                Client(streamable_http_client(url, http_client=fh)) as flood, \
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {read_token}"}, timeout=60) as rh, \
                Client(streamable_http_client(url, http_client=rh)) as reader:
            calls = [asyncio.create_task(flood.call_tool("create_app", create_args("one-key"))) for _ in range(20)]
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            listed = await reader.call_tool("apps", {})
            read_seconds = time.monotonic() - t0
            results = await asyncio.gather(*calls)
    finally:
        server.should_exit = True
        await task
    assert [r.content[0].text for r in results if r.is_error] == []  # type: ignore[union-attr]
    assert ok(listed)["apps"] == []
    assert read_seconds < POOL_WAIT / 2, f"another tenant's list_apps took {read_seconds:.1f} s during the flood"
    ids = {ok(r)["workflow_id"] for r in results}
    assert len(ids) == 1, ids
    await one_release(small_store, temporal, tenant, ids.pop())
