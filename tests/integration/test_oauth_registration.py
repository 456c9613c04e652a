"""Dynamic client registration (RFC 7591 POST /register) against the real server and Postgres: a budget per
client address (429 with Retry-After past it), and clients registered a day ago that never got a grant swept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import http_server, make_server, platform_config
from tests.support.serving import serving

CLIENT = {"client_name": "agent", "redirect_uris": ["http://127.0.0.1:9/callback"],
          "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
          "response_types": ["code"]}


@pytest.fixture
async def base(store: PgStore) -> AsyncIterator[str]:
    port = free_port()
    # GitHub is never reached by registration: the sign-in settings only need to be complete
    settings = load_settings(http={"port": port}, oauth={
        "enabled": True, "client_id": "Iv1.fake", "client_secret": "fake-secret", "registrations_per_hour": 3})
    server = http_server(settings, make_server(settings, ServerDeps(store=store, config=platform_config(settings)),
                                               "http"))
    async with serving(server):
        yield f"http://127.0.0.1:{port}"


async def client_ids(store: PgStore) -> set[str]:
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT client_id FROM oauth_clients")
        return {r["client_id"] for r in await cur.fetchall()}


async def test_registrations_past_the_budget_get_429_with_retry_after(base: str, store: PgStore) -> None:
    async with httpx.AsyncClient() as h:
        made = [await h.post(base + "/register", json=CLIENT) for _ in range(3)]
        refused = await h.post(base + "/register", json=CLIENT)
        metadata = await h.get(base + "/.well-known/oauth-authorization-server")
    assert [r.status_code for r in made] == [201, 201, 201]
    assert refused.status_code == 429, refused.text
    assert 3500 <= int(refused.headers["retry-after"]) <= 3600
    assert "too many client registrations" in refused.json()["error_description"]
    assert len(await client_ids(store)) == 3  # the refused one was not stored
    assert metadata.status_code == 200  # only /register is budgeted


async def test_a_client_never_granted_is_swept_a_day_after_registering(base: str, store: PgStore) -> None:
    async with httpx.AsyncClient() as h:
        unused, granted = [(await h.post(base + "/register", json=CLIENT)).json()["client_id"] for _ in range(2)]
    await store.create_oauth_grant(
        granted, "acme", "github:octocat", ["apps:read"], None, code="dmcp_oc_test", code_challenge="x" * 43,
        redirect_uri=CLIENT["redirect_uris"][0], redirect_uri_explicit=True,
        expires_at=datetime.now(UTC) + timedelta(minutes=5))
    async with store.pool.connection() as conn:
        await conn.execute("UPDATE oauth_clients SET created_at = now() - interval '25 hours'")
    async with httpx.AsyncClient() as h:
        fresh = (await h.post(base + "/register", json=CLIENT)).json()["client_id"]
    assert unused not in await client_ids(store)
    assert await client_ids(store) == {granted, fresh}
