"""An external OIDC issuer as the MCP endpoint's authorization server (`oauth.oidc`, mcp_server/oauth/oidc.py),
against the real server (uvicorn, real Postgres) and a fake issuer over real HTTP (tests/fakes/fake_oidc.py):
its tokens act in the tenant their claims map to, through the MCP SDK's client; every forged, foreign or
stale token is refused with a 401 saying why and an `auth_refusals` row; a rotated key is picked up after one
refetch of the key set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from joserfc.jwk import RSAKey
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.auth import create_token
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import http_server, make_server, platform_config
from tests.fakes.fake_oidc import FakeOidcIssuer, fake_oidc_running
from tests.support.serving import serving

ACME_SCOPES = ["apps:read", "apps:write", "logs:read"]
AUDIENCE = "deploy-mcp"  # the client id an issuer such as Keycloak or Dex puts in `aud`


@dataclass
class Env:
    mcp_url: str
    base: str
    issuer: FakeOidcIssuer
    store: PgStore


@pytest.fixture
async def env(store: PgStore, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """The server in OIDC mode; `jwks_refetch_seconds` (indirect parameter, default 0) budgets early refetches."""
    fake = FakeOidcIssuer()
    async with fake_oidc_running(fake) as issuer:
        port = free_port()
        settings = load_settings(http={"port": port}, oauth={"oidc": {
            "issuer": issuer, "audience": AUDIENCE, "jwks_refetch_seconds": getattr(request, "param", 0),
            "rules": [{"claim": "groups", "value": "operators", "tenant": "ops", "scopes": ["apps:read"]},
                      {"scopes": ACME_SCOPES}]}})
        deps = ServerDeps(store=store, config=platform_config(settings))
        server = http_server(settings, make_server(settings, deps, "http"))
        async with serving(server):
            yield Env(settings.http.mcp_url(), f"http://127.0.0.1:{port}", fake, store)


async def whoami(env: Env, token: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as hc, \
            Client(streamable_http_client(env.mcp_url, http_client=hc)) as c:
        who = await c.call_tool("whoami", {})
    assert who.structured_content is not None
    return dict(who.structured_content)


async def mcp_status(env: Env, token: str, method: str = "tools/list",
                     params: dict[str, Any] | None = None) -> tuple[int, str]:
    async with httpx.AsyncClient() as h:
        r = await h.post(env.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}},
                         headers={"Accept": "application/json, text/event-stream",
                                  **({"Authorization": f"Bearer {token}"} if token else {})})
    return r.status_code, r.headers.get("www-authenticate", "")


async def refusal_rows(store: PgStore, expected: int) -> list[dict[str, Any]]:
    for _ in range(100):
        async with store.pool.connection() as conn:
            cur = await conn.execute("SELECT reason, token_prefix, tenant FROM auth_refusals ORDER BY id")
            rows = list(await cur.fetchall())
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(rows)} auth_refusals rows, expected {expected}: {rows}")


async def test_a_valid_token_acts_in_its_mapped_tenant_with_its_scopes_within_the_rules(env: Env) -> None:
    # the token asks for more than the rule allows (audit:read): it gets the intersection
    token = env.issuer.mint(aud=env.mcp_url, tenant="acme", scope="openid apps:read apps:write audit:read")
    who = await whoami(env, token)
    assert who["tenant"] == "acme" and who["subject"] == "oidc:alice"
    assert who["scopes"] == ["apps:read", "apps:write"]
    # acting, not only naming: the tenant's (empty) project list, from the real store
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as hc, \
            Client(streamable_http_client(env.mcp_url, http_client=hc)) as c:
        projects = await c.call_tool("apps", {})
    assert not projects.is_error, projects.content


async def test_an_es256_token_with_the_configured_audience_and_a_scope_list_is_accepted(env: Env) -> None:
    token = env.issuer.mint("ES256", aud=["account", AUDIENCE], tenant="acme", scope=None, scp=["logs:read"])
    # scopes_claim is `scope`: a token carrying its scopes elsewhere gets none of them
    assert (await whoami(env, token))["scopes"] == []
    token = env.issuer.mint("ES256", aud=["account", AUDIENCE], tenant="acme", scope=["logs:read", "apps:read"])
    assert (await whoami(env, token))["scopes"] == ["apps:read", "logs:read"]


async def test_a_rule_over_a_group_claim_picks_its_own_tenant_and_scopes(env: Env) -> None:
    token = env.issuer.mint(aud=env.mcp_url, groups=["staff", "operators"], tenant="acme",
                            scope="apps:read apps:write")
    who = await whoami(env, token)
    assert who["tenant"] == "ops" and who["scopes"] == ["apps:read"]


async def test_a_tool_needing_a_scope_the_token_lacks_is_a_step_up_challenge(env: Env) -> None:
    token = env.issuer.mint(aud=env.mcp_url, tenant="acme", scope="apps:read")
    status, challenge = await mcp_status(env, token, "tools/call",
                                         {"name": "get_audit_log", "arguments": {}})
    assert status == 403, challenge
    assert 'error="insufficient_scope"' in challenge and 'scope="apps:read audit:read"' in challenge


async def test_protected_resource_metadata_names_the_external_issuer(env: Env) -> None:
    async with httpx.AsyncClient() as h:
        prm = await h.get(env.base + "/.well-known/oauth-protected-resource/mcp")
        # this server is no authorization server in OIDC mode
        register = await h.post(env.base + "/register", json={"redirect_uris": ["http://127.0.0.1:9/cb"]})
        metadata = await h.get(env.base + "/.well-known/oauth-authorization-server")
    assert prm.status_code == 200, prm.text
    assert prm.json()["authorization_servers"] == [env.issuer.issuer]
    assert prm.json()["resource"] == env.mcp_url
    assert register.status_code == 404 and metadata.status_code == 404
    # a request without a token is told where to look
    status, challenge = await mcp_status(env, "")
    assert status == 401 and "oauth-protected-resource/mcp" in challenge


def _forged(fake: FakeOidcIssuer, mcp_url: str, case: str) -> str:
    good: dict[str, Any] = {"aud": mcp_url, "tenant": "acme", "scope": "apps:read"}
    if case == "wrong_issuer":
        return fake.mint(**{**good, "iss": "https://elsewhere.example/realms/deploy"})
    if case == "wrong_audience":
        return fake.mint(**{**good, "aud": "https://other.example/mcp"})
    if case == "expired":
        return fake.mint(**{**good, "exp": 1_700_000_000, "iat": 1_699_999_000})
    if case == "alg_none":
        return fake.mint_unsigned(**good)
    if case == "hs256_public_key":
        return fake.mint_hs256_with_public_key(**good)
    if case == "unknown_kid":
        return fake.mint(key=RSAKey.generate_key(2048, parameters={"kid": "never-published"}), **good)
    if case == "bad_signature":  # a published kid, another key's signature
        return fake.mint(key=RSAKey.generate_key(2048, parameters={"kid": str(fake.rsa.kid)}), **good)
    if case == "no_tenant":
        return fake.mint(**{**good, "tenant": None})
    if case == "not_yet_valid":
        return fake.mint(**{**good, "nbf": 4_000_000_000})
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "reason", "says"), [
    ("wrong_issuer", "wrong_issuer", "issuer (iss) is not"),
    ("wrong_audience", "wrong_audience", "audience (aud) is not this endpoint"),
    ("expired", "expired", "has expired"),
    ("alg_none", "algorithm", "alg 'none'"),
    ("hs256_public_key", "algorithm", "alg 'HS256'"),
    ("unknown_kid", "unknown_key", "does not publish"),
    ("bad_signature", "bad_signature", "signature does not verify"),
    ("no_tenant", "no_tenant", "no `tenant` claim"),
    ("not_yet_valid", "invalid_claims", "'nbf'"),
])
async def test_a_bad_token_is_refused_saying_why_and_recorded(env: Env, case: str, reason: str, says: str) -> None:
    token = _forged(env.issuer, env.mcp_url, case)
    status, challenge = await mcp_status(env, token)
    assert status == 401, challenge
    assert 'error="invalid_token"' in challenge and says in challenge, challenge
    assert "resource_metadata=" in challenge
    rows = await refusal_rows(env.store, 1)
    assert [r["reason"] for r in rows] == [reason]
    assert rows[0]["token_prefix"] is None  # never any part of the JWT
    # a token that verifies but is refused for its audience or time still names its tenant
    assert rows[0]["tenant"] == ("acme" if case in ("wrong_audience", "expired", "not_yet_valid") else None)


async def test_an_unknown_kid_is_refused_only_after_the_key_set_was_fetched_again(env: Env) -> None:
    assert (await whoami(env, env.issuer.mint(aud=env.mcp_url, tenant="acme")))["tenant"] == "acme"
    assert env.issuer.jwks_fetches == 1 and env.issuer.discovery_fetches == 1
    status, _ = await mcp_status(env, _forged(env.issuer, env.mcp_url, "unknown_kid"))
    assert status == 401 and env.issuer.jwks_fetches == 2
    assert env.issuer.discovery_fetches == 1  # the jwks_uri is kept


async def test_a_rotated_key_works_after_one_refetch_and_the_removed_one_no_longer(env: Env) -> None:
    old = env.issuer.mint(aud=env.mcp_url, tenant="acme")
    assert (await whoami(env, old))["tenant"] == "acme"
    env.issuer.rotate()
    new = env.issuer.mint(aud=env.mcp_url, tenant="acme")
    assert (await whoami(env, new))["tenant"] == "acme"
    assert env.issuer.jwks_fetches == 2
    # the old key is gone from the issuer, and so from the cache once it was refetched
    status, challenge = await mcp_status(env, old)
    assert status == 401 and "does not publish" in challenge
    assert (await whoami(env, new))["tenant"] == "acme"


@pytest.mark.parametrize("env", [300], indirect=True)
async def test_early_refetches_are_rate_limited(env: Env) -> None:
    assert (await whoami(env, env.issuer.mint(aud=env.mcp_url, tenant="acme")))["tenant"] == "acme"
    for _ in range(5):
        status, challenge = await mcp_status(env, _forged(env.issuer, env.mcp_url, "unknown_kid"))
        assert status == 401 and "does not publish" in challenge
    # a flood of made-up key ids costs the issuer nothing within jwks_refetch_seconds
    assert env.issuer.jwks_fetches == 1


async def test_an_issuer_whose_keys_cannot_be_read_refuses_until_it_answers_and_then_keeps_them(env: Env) -> None:
    token = env.issuer.mint(aud=env.mcp_url, tenant="acme")
    env.issuer.down = True
    status, challenge = await mcp_status(env, token)
    assert status == 401 and "signing keys cannot be read" in challenge
    assert [r["reason"] for r in await refusal_rows(env.store, 1)] == ["keys_unavailable"]
    env.issuer.down = False
    assert (await whoami(env, token))["tenant"] == "acme"
    # down again: an unknown kid's refetch fails, and the keys held still verify the good token
    env.issuer.down = True
    status, _ = await mcp_status(env, _forged(env.issuer, env.mcp_url, "unknown_kid"))
    assert status == 401
    assert (await whoami(env, token))["tenant"] == "acme"


async def test_api_tokens_keep_working_beside_the_issuer(env: Env) -> None:
    api = await create_token(env.store, "acme", "ci", ["apps:read"])
    who = await whoami(env, api)
    assert who["tenant"] == "acme" and who["scopes"] == ["apps:read"]
    status, _ = await mcp_status(env, "dmcp_" + "x" * 43)
    assert status == 401
    assert [r["reason"] for r in await refusal_rows(env.store, 1)] == ["unknown"]
