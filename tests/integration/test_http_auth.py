"""The streamable HTTP transport: bearer API tokens from `api_tokens`, 401 before any tool runs, the
principal of the token in every audit row; every 401 recorded in `auth_refusals` with its reason and remote
address (never the token, only its prefix when it has the platform's format), at most N rows per address per
window and then one row counting the dropped ones; the MCP Inspector CLI as an outside client."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.auth import create_token
from mcp_server.auth_audit import RefusalBudget
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import http_server, make_server, platform_config
from tests.support.serving import serving

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


@pytest.fixture
async def http_url(store: PgStore) -> AsyncIterator[str]:
    settings = load_settings(http={"port": free_port()})
    deps = ServerDeps(store=store, config=platform_config(settings))
    server = http_server(settings, make_server(settings, deps, "http"))
    async with serving(server):
        yield settings.http.mcp_url()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def budget_url(store: PgStore, clock: Clock) -> AsyncIterator[str]:
    """A server whose refused-auth budget is 3 rows per address per minute of the test's clock."""
    settings = load_settings(http={"port": free_port()})
    deps = ServerDeps(store=store, config=platform_config(settings))
    server = http_server(settings, build_server(deps, transport="http", public_url=settings.http.mcp_url(),
                                                refusals=RefusalBudget(3, clock=clock)))
    async with serving(server):
        yield settings.http.mcp_url()


async def refusals(store: PgStore, expected: int) -> list[dict[str, Any]]:
    """The rows, once there are `expected` of them (each is written just after its 401 is sent), and no more."""
    for _ in range(100):
        async with store.pool.connection() as conn:
            cur = await conn.execute("SELECT remote_addr, reason, token_prefix, tenant, dropped FROM auth_refusals "
                                     "ORDER BY id")
            rows = list(await cur.fetchall())
        if len(rows) >= expected:
            await asyncio.sleep(0.2)  # and nothing more comes
            async with store.pool.connection() as conn:
                cur = await conn.execute("SELECT count(*) AS n FROM auth_refusals")
                assert (await cur.fetchone()) == {"n": len(rows)}, rows
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(rows)} auth_refusals rows, expected {expected}: {rows}")


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
    assert {"whoami", "apps", "deployments", "volumes"} <= names
    assert not names & {"get_audit_log", "logs", "create_app"}  # the token lacks their scopes: not offered
    called = await asyncio.to_thread(run, "--method", "tools/call", "--tool-name", "whoami")
    assert called["structuredContent"] == {"tenant": "acme", "subject": "inspector", "scopes": ["apps:read"],
                                           "via": "http-token", "apps_domain": "apps.localhost",
                                           "preflight": None,  # operators only (scope platform:read)
                                           "backups": None}  # a tenant's agent never sees the platform's backups


async def test_every_refused_authentication_is_recorded_with_its_reason(http_url: str, store: PgStore) -> None:
    expired = await create_token(store, "acme", "old", ["apps:read"], datetime.now(UTC) - timedelta(seconds=1))
    revoked = await create_token(store, "acme", "gone", ["apps:read"])
    await store.revoke_token(next(r["id"] for r in await store.list_tokens("acme") if r["subject"] == "gone"))
    unknown = "dmcp_" + "x" * 43
    sent = [None, "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer not-ours", f"Bearer {unknown}", f"Bearer {expired}",
            f"bearer {revoked}"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient() as h:
        for header in sent:
            r = await h.post(http_url, json=body, headers={"Authorization": header} if header else {})
            assert r.status_code == 401
        good = await create_token(store, "acme", "ok", ["apps:read"])
        accepted = await h.post(http_url, json=body, headers={"Authorization": f"Bearer {good}"})
    assert accepted.status_code != 401  # past authentication (the bare POST is no MCP session): no refusal row
    rows = await refusals(store, 6)
    assert sorted((r["reason"], r["token_prefix"] or "", r["tenant"] or "") for r in rows) == sorted([
        ("missing", "", ""), ("malformed", "", ""), ("malformed", "", ""),
        ("unknown", unknown[:12], ""), ("expired", expired[:12], "acme"), ("revoked", revoked[:12], "acme"),
    ])
    assert {r["remote_addr"] for r in rows} == {"127.0.0.1"}
    for token in (unknown, expired, revoked):
        assert all(token not in str(r) for r in rows)  # never the token, only its prefix


async def test_a_flood_of_refusals_writes_a_bounded_number_of_rows(budget_url: str, store: PgStore,
                                                                   clock: Clock) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Authorization": "Bearer dmcp_" + "y" * 43}
    async with httpx.AsyncClient() as h:
        for _ in range(8):
            assert (await h.post(budget_url, json=body, headers=headers)).status_code == 401
        assert [r["reason"] for r in await refusals(store, 3)] == ["unknown"] * 3  # 5 counted, not written
        clock.now += 60  # the window is over: its summary comes with the next refusal
        assert (await h.post(budget_url, json=body)).status_code == 401
    rows = await refusals(store, 5)
    assert [(r["reason"], r["dropped"]) for r in rows] == [("unknown", 0)] * 3 + [("dropped", 5), ("missing", 0)]
    assert rows[3]["remote_addr"] == "127.0.0.1" and rows[3]["token_prefix"] is None


async def test_a_token_of_its_own_budget_is_held_to_it(http_url: str, store: PgStore) -> None:
    token = await create_token(store, "acme", "slow-agent", ["apps:read"])
    other = await create_token(store, "acme", "agent", ["apps:read"])
    async with store.pool.connection() as conn:  # the operator's override, as docs/operations.md shows it
        await conn.execute("UPDATE api_tokens SET calls_per_minute = 2 WHERE prefix = %s", (token[:12],))
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as hc, \
            Client(streamable_http_client(http_url, http_client=hc)) as c:
        results = [await c.call_tool("whoami", {}) for _ in range(3)]
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {other}"}) as hc, \
            Client(streamable_http_client(http_url, http_client=hc)) as c:
        others = [await c.call_tool("whoami", {}) for _ in range(3)]
    assert [r.is_error for r in results] == [False, False, True]
    refused = results[2].content[0].text  # type: ignore[union-attr]
    assert refused.startswith("rate limit: 2 calls per minute for this token; retry after "), refused
    assert not any(r.is_error for r in others)  # the settings' budget (120 a minute) for the other token
