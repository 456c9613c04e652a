"""The streamable HTTP transport: bearer API tokens from `api_tokens`, 401 before any tool runs, the
principal of the token in every audit row; the MCP Inspector CLI as an outside client."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.auth import create_token
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import http_server, make_server, platform_config

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


@pytest.fixture
async def http_url(store: PgStore) -> AsyncIterator[str]:
    settings = load_settings(http={"port": free_port()})
    deps = ServerDeps(store=store, config=platform_config(settings))
    server = http_server(settings, make_server(settings, deps, "http"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
        if task.done():
            task.result()
    try:
        yield settings.http.mcp_url()
    finally:
        server.should_exit = True
        await task


async def test_missing_or_unknown_token_is_401_before_any_tool(http_url: str, store: PgStore) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    async with httpx.AsyncClient() as h:
        none = await h.post(http_url, json=body)
        unknown = await h.post(http_url, json=body, headers={"Authorization": "Bearer dmcp_" + "x" * 43})
    assert none.status_code == 401 and unknown.status_code == 401
    assert "resource_metadata" in none.headers.get("www-authenticate", "")
    async with store.pool.connection() as conn:
        count = (await (await conn.execute("SELECT count(*) AS n FROM audit_events")).fetchone())
    assert count is not None and count["n"] == 0  # no tool ran


async def test_token_resolves_to_its_tenant_and_scopes(http_url: str, store: PgStore) -> None:
    token = await create_token(store, "acme", "ci-agent", ["apps:read"])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers) as hc, Client(streamable_http_client(http_url, http_client=hc)) as c:
        who = await c.call_tool("whoami", {})
        denied = await c.call_tool("get_audit_log", {})
    assert who.structured_content is not None
    assert (who.structured_content["tenant"], who.structured_content["subject"]) == ("acme", "ci-agent")
    assert who.structured_content["via"] == "http-token"
    assert denied.is_error and "audit:read" in denied.content[0].text  # type: ignore[union-attr]
    async with store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT tool, outcome, tenant, principal, transport FROM audit_events "
                                         "ORDER BY id")).fetchall()
    assert [tuple(r.values()) for r in rows] == [("whoami", "ok", "acme", "ci-agent", "http"),
                                                 ("get_audit_log", "denied", "acme", "ci-agent", "http")]


async def test_revoked_and_expired_tokens_are_refused(http_url: str, store: PgStore) -> None:
    expired = await create_token(store, "acme", "old", ["apps:read"], datetime.now(UTC) - timedelta(seconds=1))
    revoked = await create_token(store, "acme", "gone", ["apps:read"])
    rows = await store.list_tokens("acme")
    await store.revoke_token(next(r["id"] for r in rows if r["subject"] == "gone"))
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient() as h:
        for token in (expired, revoked):
            r = await h.post(http_url, json=body, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401
    assert all(r["prefix"].startswith("dmcp_") and "token_hash" not in r for r in rows)


@pytest.mark.skipif(shutil.which("npx") is None, reason="Node.js (npx) is not installed")
async def test_mcp_inspector_cli_lists_tools_and_calls_whoami(http_url: str, store: PgStore) -> None:
    token = await create_token(store, "acme", "inspector", ["apps:read"])
    base = ["npx", "-y", INSPECTOR, "--cli", http_url, "--transport", "http",
            "--header", f"Authorization: Bearer {token}"]

    def run(*args: str) -> dict[str, object]:
        p = subprocess.run([*base, *args], capture_output=True, text=True, timeout=300, check=False)
        assert p.returncode == 0, p.stderr[-2000:]
        out: dict[str, object] = json.loads(p.stdout)
        return out

    listed = await asyncio.to_thread(run, "--method", "tools/list")
    names = {t["name"] for t in listed["tools"]}  # type: ignore[attr-defined]
    assert {"whoami", "list_apps", "get_app", "get_audit_log"} <= names
    called = await asyncio.to_thread(run, "--method", "tools/call", "--tool-name", "whoami")
    assert called["structuredContent"] == {"tenant": "acme", "subject": "inspector", "scopes": ["apps:read"],
                                           "via": "http-token", "apps_domain": "apps.localhost"}
