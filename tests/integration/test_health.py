"""/healthz and /readyz on real services: the server's (in front of its MCP app: no token needed, no audit
row, no rate limit spent) and the worker's (`mcp_server.health.serve_health` with the worker's own checks).
Both ready with Postgres and Temporal up; /readyz answers 503 with the reason while the test's own Postgres
is stopped (/healthz stays 200: the process is alive, restarting it would not help), and ready again once
Postgres is back, in the same process."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from mcp_server.devenv.embedded import EmbeddedPostgres
from mcp_server.devenv.processes import free_port
from mcp_server.health import database_check, serve_health, temporal_check
from mcp_server.server import ServerDeps
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import http_server, make_server, platform_config
from mcp_server.worker import worker_checks
from workflows.volume import VolumeWorkflow

pytestmark = pytest.mark.timeout(240)


async def probe_through_an_outage(base: str, pg: EmbeddedPostgres) -> None:
    """Ready; 503 naming the database while Postgres is stopped (alive all along); ready again after."""
    async with httpx.AsyncClient(timeout=10) as h:
        assert (await h.get(base + "/healthz")).status_code == 200
        r = await h.get(base + "/readyz")
        assert (r.status_code, r.json()) == (200, {"ready": True})
        pg.stop()
        started = time.monotonic()
        r = await h.get(base + "/readyz")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["ready"] is False and body["reason"].startswith("database: "), body
        assert time.monotonic() - started < 5  # bounded: a probe must not hang on a dead database
        assert (await h.get(base + "/healthz")).status_code == 200
        pg.start()
        deadline = time.monotonic() + 60
        while (r := await h.get(base + "/readyz")).status_code != 200:  # the pool reconnects with a backoff
            assert time.monotonic() < deadline, r.text
            await asyncio.sleep(0.5)


async def test_server_readiness_follows_the_database(own_postgres: EmbeddedPostgres, temporal_address: str) -> None:
    store = await PgStore.open(own_postgres.url, min_size=1, max_size=4, timeout=3)
    temporal = await TemporalClient.connect(temporal_address)
    settings = load_settings(http={"port": free_port()})
    deps = ServerDeps(store=store, config=platform_config(settings),
                      health_checks=[database_check(store), temporal_check(temporal)])
    server = http_server(settings, make_server(settings, deps, "http"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
            if task.done():
                task.result()
        base = f"http://127.0.0.1:{settings.http.port}"
        async with httpx.AsyncClient() as h:
            assert (await h.get(base + "/mcp")).status_code == 401  # the MCP path still wants a token
        await probe_through_an_outage(base, own_postgres)
        # the probes were neither refused authentications nor tool calls: only the one 401 above left a row
        refusals = await store._all("SELECT count(*) AS n FROM auth_refusals")
        calls = await store._all("SELECT count(*) AS n FROM audit_events")
        assert (refusals[0]["n"], calls[0]["n"]) == (1, 0), (refusals, calls)
    finally:
        server.should_exit = True
        await task
        await store.close()


async def test_worker_readiness_follows_polling_and_the_database(own_postgres: EmbeddedPostgres,
                                                                 temporal_address: str) -> None:
    store = await PgStore.open(own_postgres.url, min_size=1, max_size=2, timeout=3)
    temporal = await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter)
    w = Worker(temporal, task_queue=f"health-{uuid.uuid4().hex[:8]}", workflows=[VolumeWorkflow], activities=[])
    port = free_port()
    try:
        async with serve_health("127.0.0.1", port, worker_checks(w, store)) as bound:
            assert bound == port
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(timeout=10) as h:
                r = await h.get(base + "/readyz")
                assert r.status_code == 503 and r.json()["reason"].startswith("worker: "), r.text  # not polling
                assert (await h.get(base + "/nope")).status_code == 404
            run = asyncio.create_task(w.run())
            deadline = time.monotonic() + 30
            while not w.is_running:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await probe_through_an_outage(base, own_postgres)
            await w.shutdown()
            await run
            async with httpx.AsyncClient(timeout=10) as h:
                assert (await h.get(base + "/readyz")).status_code == 503  # draining: take it out of rotation
    finally:
        await store.close()


async def test_port_zero_disables_the_worker_endpoints() -> None:
    async with serve_health("127.0.0.1", 0, []) as bound:
        assert bound is None
