"""Postgres stopped under the HTTP server and started again: every request needs the database (the bearer
token is looked up in it), so while it is down the client gets a 503 with the agent-facing "cannot be reached,
call again" text and a Retry-After, never a bare 500; once it is back, the same server process serves the same
token again. The test owns its Postgres (the session's serves the other tests and must not stop)."""

from __future__ import annotations

import asyncio
import time

import httpx
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.auth import create_token
from mcp_server.devenv.embedded import EmbeddedPostgres
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import http_server, make_server, platform_config
from tests.support.platform import ok

UNAVAILABLE = "The platform's database cannot be reached now. Call again in a minute"


async def test_http_says_the_database_is_unreachable_and_recovers(own_postgres: EmbeddedPostgres) -> None:
    store = await PgStore.open(own_postgres.url, min_size=2, max_size=4, timeout=3)
    settings = load_settings(http={"port": free_port()})
    server = http_server(settings, make_server(settings, ServerDeps(store=store, config=platform_config(settings)),
                                               "http"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
            if task.done():
                task.result()
        url = settings.http.mcp_url()
        token = await create_token(store, "acme", "ci-agent", ["apps:read"])
        headers = {"Authorization": f"Bearer {token}"}

        async def list_apps() -> None:
            async with httpx2.AsyncClient(headers=headers) as hc, \
                    Client(streamable_http_client(url, http_client=hc)) as c:
                ok(await c.call_tool("apps", {}))

        await list_apps()
        own_postgres.stop()
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "faults", "version": "0"}}}
        async with httpx.AsyncClient(timeout=30) as h:
            r = await h.post(url, json=init, headers={**headers, "Accept": "application/json, text/event-stream"})
        assert r.status_code == 503, (r.status_code, r.text)
        assert UNAVAILABLE in r.text and r.headers.get("retry-after")
        assert token not in r.text

        own_postgres.start()
        deadline = time.monotonic() + 90
        while True:  # the pool reconnects with a growing backoff
            try:
                await list_apps()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)
    finally:
        server.should_exit = True
        await task
        await store.close()
