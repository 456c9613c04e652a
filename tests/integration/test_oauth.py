"""OAuth 2.1 for the MCP endpoint (mcp_server/oauth/), against a real server (uvicorn, real Postgres) and a fake
GitHub over real HTTP (tests/fakes/fake_github_oauth.py). The MCP SDK's own OAuth client runs the whole flow
(discovery, dynamic registration, authorize with PKCE, GitHub sign-in, consent, token, refresh on 401); the
refusals are driven with plain HTTP so each asserts the protocol's answer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import httpx2
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_server.auth import create_token
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps
from mcp_server.settings import RateLimitSettings, load_settings
from mcp_server.store import PgStore, token_hash
from mcp_server.wiring import http_server, make_server, platform_config
from tests.fakes.fake_github_oauth import FakeGitHubOAuth, fake_github_oauth_running
from tests.support.memory_tokens import MemoryTokens
from tests.support.serving import serving

# The agent's redirect URI: never connected to; the test reads the code off the Location header.
CLIENT_REDIRECT = "http://127.0.0.1:9/callback"
ACME_SCOPES = ["apps:read", "apps:write", "audit:read", "logs:read"]


@dataclass
class Env:
    mcp_url: str
    issuer: str
    github: FakeGitHubOAuth
    store: PgStore


@pytest.fixture
async def env(store: PgStore, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """The server with OAuth on; `calls_per_minute` (indirect parameter) sets its rate limit."""
    fake = FakeGitHubOAuth()
    fake.add_user("octocat", orgs={"acme": False}, teams={("acme", "deployers"): "active"})
    fake.add_user("invitee", orgs={"acme": True}, teams={("acme", "deployers"): "pending"})
    fake.add_user("listed")
    fake.add_user("stranger", orgs={"elsewhere": True})
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    fake.callback_url = issuer + "/oauth/github/callback"
    async with fake_github_oauth_running(fake) as gh:
        settings = load_settings(http={"port": port}, oauth={
            "enabled": True, "client_id": fake.client_id, "client_secret": fake.client_secret,
            "github_url": gh, "github_api_url": gh + "/api/v3",
            "rules": [{"tenant": "acme", "org": "acme", "team": "deployers", "scopes": ACME_SCOPES},
                      {"tenant": "solo", "users": ["Listed"], "scopes": ["apps:read"]}]})
        deps = ServerDeps(store=store, config=platform_config(settings),
                          rate_limits=RateLimitSettings(calls_per_minute=getattr(request, "param", 120)))
        server = http_server(settings, make_server(settings, deps, "http"))
        async with serving(server):
            yield Env(settings.http.mcp_url(), issuer, fake, store)


# a browser: follows redirects until the agent's redirect URI, which it does not open
async def browse(browser: httpx.AsyncClient, url: str) -> httpx.Response:
    r = await browser.get(url)
    while r.is_redirect and not r.headers["location"].startswith(CLIENT_REDIRECT):
        r = await browser.get(r.headers["location"])
    return r


def redirect_params(r: httpx.Response) -> dict[str, str]:
    assert r.is_redirect, (r.status_code, r.text[:300])
    location = r.headers["location"]
    assert location.startswith(CLIENT_REDIRECT), location
    return dict(parse_qsl(urlsplit(location).query))


async def consent(browser: httpx.AsyncClient, env: Env, page: httpx.Response,
                  decision: str = "allow") -> dict[str, str]:
    assert page.status_code == 200, page.text[:500]
    fields = dict(re.findall(r'name=(login|consent) value="([^"]+)"', page.text))
    assert fields.keys() == {"login", "consent"}, page.text[:500]
    return redirect_params(await browser.post(env.issuer + "/oauth/consent", data={**fields, "decision": decision}))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


async def register(env: Env) -> dict[str, Any]:
    async with httpx.AsyncClient() as h:
        r = await h.post(env.issuer + "/register", json={
            "client_name": "raw agent", "redirect_uris": [CLIENT_REDIRECT], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]})
    assert r.status_code == 201, r.text
    return dict(r.json())


def authorize_url(env: Env, client: dict[str, Any], challenge: str | None, **extra: str) -> str:
    params = {"response_type": "code", "client_id": client["client_id"], "redirect_uri": CLIENT_REDIRECT,
              "state": "st-1", "resource": env.mcp_url, **extra}
    if challenge is not None:
        params.setdefault("code_challenge", challenge)
        params.setdefault("code_challenge_method", "S256")
    return f"{env.issuer}/authorize?{urlencode(params)}"


async def sign_in(env: Env, client: dict[str, Any], user: str = "octocat") -> tuple[str, str]:
    """A code for `client` as GitHub user `user`, and its PKCE verifier."""
    env.github.signed_in = user
    verifier, challenge = pkce()
    async with httpx.AsyncClient() as browser:
        params = await consent(browser, env, await browse(browser, authorize_url(env, client, challenge)))
    assert params["state"] == "st-1"
    return params["code"], verifier


async def token(env: Env, client: dict[str, Any], **form: str) -> httpx.Response:
    async with httpx.AsyncClient() as h:
        return await h.post(env.issuer + "/token", data={"client_id": client["client_id"], **form})


async def exchange(env: Env, client: dict[str, Any], code: str, verifier: str) -> httpx.Response:
    return await token(env, client, grant_type="authorization_code", code=code, code_verifier=verifier,
                       redirect_uri=CLIENT_REDIRECT, resource=env.mcp_url)


async def whoami(env: Env, access_token: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {access_token}"}) as hc, \
            Client(streamable_http_client(env.mcp_url, http_client=hc)) as c:
        who = await c.call_tool("whoami", {})
    assert who.structured_content is not None
    return dict(who.structured_content)


async def mcp_status(env: Env, access_token: str) -> tuple[int, str]:
    """The HTTP status of an MCP request with `access_token`, and its WWW-Authenticate header."""
    async with httpx.AsyncClient() as h:
        r = await h.post(env.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={"Authorization": f"Bearer {access_token}",
                                  "Accept": "application/json, text/event-stream"})
    return r.status_code, r.headers.get("www-authenticate", "")


async def test_the_sdk_client_signs_in_with_github_and_acts_in_the_mapped_tenant(env: Env) -> None:
    env.github.signed_in = "octocat"
    redirected: dict[str, str] = {}
    pages: list[str] = []
    headers: list[httpx.Headers] = []

    async def redirect_handler(url: str) -> None:
        async with httpx.AsyncClient() as browser:
            page = await browse(browser, url)
            pages.append(page.text)
            headers.append(page.headers)
            redirected.update(await consent(browser, env, page))

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirected["code"], state=redirected.get("state"))

    storage = MemoryTokens()
    auth = OAuthClientProvider(
        env.mcp_url, OAuthClientMetadata(client_name="Test Agent", redirect_uris=[AnyUrl(CLIENT_REDIRECT)],
                                         grant_types=["authorization_code", "refresh_token"],
                                         response_types=["code"]),
        storage, redirect_handler, callback_handler)
    async with httpx2.AsyncClient(auth=auth) as hc, Client(streamable_http_client(env.mcp_url, http_client=hc)) as c:
        who = await c.call_tool("whoami", {})
    assert who.structured_content is not None
    assert who.structured_content["tenant"] == "acme"
    assert who.structured_content["subject"] == "github:octocat"
    assert who.structured_content["via"] == "http-oauth"
    assert who.structured_content["scopes"] == ACME_SCOPES
    # the consent page named the client, the GitHub user, the tenant and each scope
    assert len(pages) == 1
    for text in ("Test Agent", "octocat", "acme", *ACME_SCOPES):
        assert text in pages[0]
    assert len(headers) == 1 and "frame-ancestors 'none'" in headers[0]["content-security-policy"]
    assert "form-action" not in headers[0]["content-security-policy"]  # it would block the redirect back
    # the client registered itself, and holds a token bound to this endpoint, stored as a hash only
    assert storage.client is not None and storage.tokens is not None and storage.tokens.refresh_token
    async with env.store.pool.connection() as conn:
        grant = await (await conn.execute("SELECT resource, subject FROM oauth_grants")).fetchall()
        stored = await (await conn.execute("SELECT count(*) AS n FROM oauth_tokens WHERE token_hash = %s",
                                           (token_hash(storage.tokens.access_token),))).fetchone()
    assert [(g["resource"], g["subject"]) for g in grant] == [(env.mcp_url, "github:octocat")]
    assert stored is not None and stored["n"] == 1


async def test_a_tool_needing_a_scope_the_token_lacks_answers_403_and_the_sdk_client_steps_up(env: Env) -> None:
    """The SDK client holds a token of an earlier sign-in that asked for `apps:read` only (its storage kept it);
    `get_audit_log` needs `audit:read`: the 403 challenge makes the client sign in again asking for both."""
    client = await register(env)
    env.github.signed_in = "octocat"
    verifier, challenge = pkce()
    async with httpx.AsyncClient() as browser:
        params = await consent(browser, env, await browse(
            browser, authorize_url(env, client, challenge, scope="apps:read")))
    storage = MemoryTokens()
    storage.client = OAuthClientInformationFull.model_validate(client)
    storage.tokens = OAuthToken.model_validate((await exchange(env, client, params["code"], verifier)).json())
    pages: list[str] = []
    redirected: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        async with httpx.AsyncClient() as browser:
            page = await browse(browser, url)
            pages.append(page.text)
            redirected.update(await consent(browser, env, page))

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirected["code"], state=redirected.get("state"))

    auth = OAuthClientProvider(
        env.mcp_url, OAuthClientMetadata(client_name="raw agent", redirect_uris=[AnyUrl(CLIENT_REDIRECT)],
                                         token_endpoint_auth_method="none"),
        storage, redirect_handler, callback_handler)
    async with httpx2.AsyncClient(auth=auth) as hc, Client(streamable_http_client(env.mcp_url, http_client=hc)) as c:
        who = await c.call_tool("whoami", {})
        assert who.structured_content is not None and who.structured_content["scopes"] == ["apps:read"]
        log = await c.call_tool("get_audit_log", {})
    assert not log.is_error, log.content
    assert len(pages) == 1 and "audit:read" in pages[0]
    assert storage.tokens is not None and "audit:read" in (storage.tokens.scope or "").split()
    async with env.store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT tool, outcome, tenant, error FROM audit_events "
                                         "WHERE outcome = 'denied'")).fetchall()
    assert [(r["tool"], r["tenant"]) for r in rows] == [("get_audit_log", "acme")]
    assert "audit:read" in rows[0]["error"]


async def test_the_scope_challenge_names_the_scopes_held_and_the_one_needed(env: Env) -> None:
    client = await register(env)
    env.github.signed_in = "octocat"
    verifier, challenge = pkce()
    async with httpx.AsyncClient() as browser:
        params = await consent(browser, env, await browse(
            browser, authorize_url(env, client, challenge, scope="apps:read logs:read")))
    access = (await exchange(env, client, params["code"], verifier)).json()["access_token"]
    async with httpx.AsyncClient() as h:
        r = await h.post(env.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                            "params": {"name": "get_audit_log", "arguments": {}}},
                         headers={"Authorization": f"Bearer {access}", "Accept": "application/json, text/event-stream"})
    assert r.status_code == 403
    header = r.headers["www-authenticate"]
    assert header.startswith('Bearer error="insufficient_scope", scope="apps:read audit:read logs:read"')
    assert "/.well-known/oauth-protected-resource/mcp" in header
    # an API token lacking the scope keeps the tool-level refusal
    api = await create_token(env.store, "ci", "ci-agent", ["apps:read"])
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {api}"}) as hc, \
            Client(streamable_http_client(env.mcp_url, http_client=hc)) as c:
        denied = await c.call_tool("get_audit_log", {})
    assert denied.is_error


async def test_metadata_names_the_real_issuer_and_s256_only(env: Env) -> None:
    async with httpx.AsyncClient() as h:
        prm = (await h.get(env.issuer + "/.well-known/oauth-protected-resource/mcp")).json()
        asm = (await h.get(env.issuer + "/.well-known/oauth-authorization-server")).json()
        unauthenticated = await h.post(env.mcp_url, json={})
    assert prm["resource"] == env.mcp_url and prm["authorization_servers"] == [env.issuer]
    assert asm["issuer"] == env.issuer and asm["code_challenge_methods_supported"] == ["S256"]
    assert asm["registration_endpoint"] == env.issuer + "/register"
    assert asm["revocation_endpoint"] == env.issuer + "/revoke"
    assert unauthenticated.status_code == 401
    assert "/.well-known/oauth-protected-resource/mcp" in unauthenticated.headers["www-authenticate"]


async def test_an_allow_listed_user_gets_the_rules_tenant_and_only_its_scopes(env: Env) -> None:
    client = await register(env)
    code, verifier = await sign_in(env, client, "listed")
    r = await exchange(env, client, code, verifier)
    assert r.status_code == 200, r.text
    who = await whoami(env, r.json()["access_token"])
    assert (who["tenant"], who["subject"], who["scopes"]) == ("solo", "github:listed", ["apps:read"])


@pytest.mark.parametrize("user", ["stranger", "invitee"])
async def test_a_github_user_in_no_rule_is_refused_with_a_page_saying_why(env: Env, user: str) -> None:
    client = await register(env)
    env.github.signed_in = user
    async with httpx.AsyncClient() as browser:
        page = await browse(browser, authorize_url(env, client, pkce()[1]))
    assert page.status_code == 403
    assert f"GitHub user {user} matches no sign-in rule" in page.text
    assert "a member of team acme/deployers" in page.text
    assert "Allow" not in page.text
    async with env.store.pool.connection() as conn:
        n = await (await conn.execute("SELECT count(*) AS n FROM oauth_codes")).fetchone()
    assert n is not None and n["n"] == 0


async def test_consent_denied_returns_access_denied(env: Env) -> None:
    client = await register(env)
    env.github.signed_in = "octocat"
    async with httpx.AsyncClient() as browser:
        params = await consent(browser, env, await browse(browser, authorize_url(env, client, pkce()[1])), "deny")
    assert params["error"] == "access_denied" and params["state"] == "st-1" and "code" not in params


async def test_whoever_started_the_login_cannot_consent_for_the_user_who_signed_in(env: Env) -> None:
    """An attacker starts a login for their client, has a victim open the GitHub link (its `state` is the login
    id), then posts the consent themselves: refused, the consent page's nonce reached the victim's browser only."""
    client = await register(env)
    env.github.signed_in = "octocat"  # the victim, signed in at GitHub
    async with httpx.AsyncClient() as attacker:
        to_github = (await attacker.get(authorize_url(env, client, pkce()[1]))).headers["location"]
        login_id = dict(parse_qsl(urlsplit(to_github).query))["state"]
        async with httpx.AsyncClient() as victim:
            page = await browse(victim, to_github)
        assert page.status_code == 200 and "octocat" in page.text
        for forged in ({"login": login_id, "decision": "allow"},
                       {"login": login_id, "consent": "guess", "decision": "allow"}):
            r = await attacker.post(env.issuer + "/oauth/consent", data=forged)
            assert r.status_code == 400 and "location" not in r.headers
    async with env.store.pool.connection() as conn:
        n = await (await conn.execute("SELECT count(*) AS n FROM oauth_codes")).fetchone()
    assert n is not None and n["n"] == 0


@pytest.mark.parametrize("pkce_params", [{"code_challenge_method": "plain"}, None])
async def test_missing_or_plain_pkce_is_refused(env: Env, pkce_params: dict[str, str] | None) -> None:
    client = await register(env)
    env.github.signed_in = "octocat"
    challenge = pkce()[1]
    url = authorize_url(env, client, challenge if pkce_params else None, **(pkce_params or {}))
    async with httpx.AsyncClient() as browser:
        params = redirect_params(await browse(browser, url))
    assert params["error"] == "invalid_request" and params["state"] == "st-1"
    assert not env.github.codes  # nobody was sent to GitHub


async def test_a_redirect_uri_not_registered_is_refused_without_redirecting(env: Env) -> None:
    client = await register(env)
    url = authorize_url(env, client, pkce()[1], redirect_uri="http://127.0.0.1:9/elsewhere")
    async with httpx.AsyncClient() as browser:
        r = await browser.get(url)
    assert r.status_code == 400 and "location" not in r.headers
    assert r.json()["error"] == "invalid_request" and "redirect" in r.json()["error_description"].lower()


async def test_a_wrong_code_verifier_is_refused(env: Env) -> None:
    client = await register(env)
    code, _ = await sign_in(env, client)
    r = await exchange(env, client, code, pkce()[0])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_a_code_used_twice_is_refused_and_revokes_its_tokens(env: Env) -> None:
    client = await register(env)
    code, verifier = await sign_in(env, client)
    first = await exchange(env, client, code, verifier)
    assert first.status_code == 200, first.text
    access = first.json()["access_token"]
    assert (await whoami(env, access))["tenant"] == "acme"
    second = await exchange(env, client, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert (await mcp_status(env, access))[0] == 401  # the replay ended what the code had been exchanged for


async def test_a_resource_other_than_this_endpoint_is_refused(env: Env) -> None:
    client = await register(env)
    env.github.signed_in = "octocat"
    url = authorize_url(env, client, pkce()[1], resource="https://other.example/mcp")
    async with httpx.AsyncClient() as browser:
        params = redirect_params(await browse(browser, url))
    assert params["error"] == "invalid_target"
    assert not env.github.codes


async def test_a_token_whose_audience_is_another_resource_is_refused_on_every_request(env: Env) -> None:
    """A token this server stored for another audience (as a second resource would have it): the bearer check
    compares each token's audience with this endpoint, whatever issued it."""
    client = await register(env)
    grant = await env.store.create_oauth_grant(
        client["client_id"], "acme", "github:octocat", ["apps:read"], "https://other.example/mcp",
        code="dmcp_oc_unused", code_challenge="x", redirect_uri=CLIENT_REDIRECT, redirect_uri_explicit=True,
        expires_at=datetime.now(UTC) + timedelta(minutes=5))
    foreign = "dmcp_oa_" + secrets.token_urlsafe(32)
    await env.store.add_oauth_token(grant, "access", foreign, ["apps:read"], datetime.now(UTC) + timedelta(hours=1))
    status, challenge = await mcp_status(env, foreign)
    assert status == 401 and "invalid_token" in challenge


async def test_an_expired_access_token_is_refused_and_the_sdk_client_refreshes(env: Env) -> None:
    client = await register(env)
    code, verifier = await sign_in(env, client)
    tokens = (await exchange(env, client, code, verifier)).json()
    async with env.store.pool.connection() as conn:
        await conn.execute("UPDATE oauth_tokens SET expires_at = now() - interval '1 second' WHERE kind = 'access'")
    assert (await mcp_status(env, tokens["access_token"]))[0] == 401
    # the refresh token still works, and gives a working access token
    r = await token(env, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert r.status_code == 200, r.text
    assert (await whoami(env, r.json()["access_token"]))["tenant"] == "acme"


async def test_a_revoked_token_is_refused_with_its_whole_grant(env: Env) -> None:
    client = await register(env)
    code, verifier = await sign_in(env, client)
    tokens = (await exchange(env, client, code, verifier)).json()
    assert (await mcp_status(env, tokens["access_token"]))[0] == 200
    async with httpx.AsyncClient() as h:
        # the SDK's revocation handler requires the field even of a public client (mcp 2.3): send it empty
        r = await h.post(env.issuer + "/revoke", data={"client_id": client["client_id"], "client_secret": "",
                                                        "token": tokens["access_token"]})
    assert r.status_code == 200, r.text
    assert (await mcp_status(env, tokens["access_token"]))[0] == 401
    refreshed = await token(env, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    # the refused request is recorded as a revoked token of its tenant, by its prefix only
    for _ in range(50):  # the row is written after the response is sent
        async with env.store.pool.connection() as conn:
            rows = await (await conn.execute("SELECT reason, tenant, token_prefix FROM auth_refusals")).fetchall()
        if rows:
            break
        await asyncio.sleep(0.05)
    assert [(r["reason"], r["tenant"]) for r in rows] == [("revoked", "acme")]
    assert tokens["access_token"] not in str(rows) and tokens["access_token"].startswith(rows[0]["token_prefix"])


async def test_a_refresh_token_reused_after_rotation_is_refused_and_ends_the_grant(env: Env) -> None:
    client = await register(env)
    code, verifier = await sign_in(env, client)
    first = (await exchange(env, client, code, verifier)).json()
    rotated = await token(env, client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    reused = await token(env, client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # the reuse means a copy exists: the rotated tokens end too
    assert (await mcp_status(env, second["access_token"]))[0] == 401
    again = await token(env, client, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert again.status_code == 400


async def test_a_code_is_bound_to_its_client(env: Env) -> None:
    client, other = await register(env), await register(env)
    code, verifier = await sign_in(env, client)
    r = await exchange(env, other, code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_api_tokens_keep_working_beside_oauth(env: Env) -> None:
    api = await create_token(env.store, "ci", "ci-agent", ["apps:read"])
    who = await whoami(env, api)
    assert (who["tenant"], who["subject"], who["via"]) == ("ci", "ci-agent", "http-token")
    assert (await mcp_status(env, "dmcp_not-a-token"))[0] == 401


async def test_a_new_login_sweeps_what_expired(env: Env) -> None:
    client = await register(env)
    code, verifier = await sign_in(env, client)
    tokens = (await exchange(env, client, code, verifier)).json()
    async with env.store.pool.connection() as conn:
        await conn.execute("UPDATE oauth_tokens SET expires_at = now() - interval '2 days' WHERE kind = 'refresh'")
        await conn.execute("UPDATE oauth_codes SET expires_at = now() - interval '2 days'")
    await sign_in(env, client)  # a second login: its code is fresh, the old one goes
    async with env.store.pool.connection() as conn:
        kinds = await (await conn.execute("SELECT kind FROM oauth_tokens")).fetchall()
        codes = await (await conn.execute("SELECT count(*) AS n FROM oauth_codes")).fetchone()
        logins = await (await conn.execute("SELECT count(*) AS n FROM oauth_logins")).fetchone()
    assert [k["kind"] for k in kinds] == ["access"]
    assert codes is not None and codes["n"] == 1 and logins is not None and logins["n"] == 0
    assert (await whoami(env, tokens["access_token"]))["tenant"] == "acme"


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, in `tmp`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@asynccontextmanager
async def document_server(tmp: Path, documents: dict[str, dict[str, Any]]) -> AsyncIterator[str]:
    """Client metadata documents over https on 127.0.0.1; yields the base URL."""
    cert_file, key_file = self_signed(tmp)

    async def document(request: Request) -> Response:
        doc = documents.get(request.url.path)
        return JSONResponse(doc) if doc is not None else JSONResponse({}, status_code=404)

    app = Starlette(routes=[Route("/{path:path}", document)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           lifespan="off", ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)))
    async with serving(server):
        yield f"https://127.0.0.1:{server.config.port}"


@pytest.fixture
async def cimd_env(store: PgStore, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Env, str, dict[str, dict[str, Any]]]]:
    documents: dict[str, dict[str, Any]] = {}
    async with document_server(tmp_path, documents) as base:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # the platform's fetch trusts it
        fake = FakeGitHubOAuth()
        fake.add_user("octocat", orgs={"acme": False}, teams={("acme", "deployers"): "active"})
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        fake.callback_url = issuer + "/oauth/github/callback"
        async with fake_github_oauth_running(fake) as gh:
            settings = load_settings(http={"port": port}, oauth={
                "enabled": True, "client_id": fake.client_id, "client_secret": fake.client_secret,
                "github_url": gh, "github_api_url": gh + "/api/v3", "client_metadata_allowed_hosts": ["127.0.0.1"],
                "rules": [{"tenant": "acme", "org": "acme", "team": "deployers", "scopes": ACME_SCOPES}]})
            server = http_server(settings, make_server(settings, ServerDeps(store=store,
                                                                            config=platform_config(settings)), "http"))
            async with serving(server):
                yield Env(settings.http.mcp_url(), issuer, fake, store), base, documents


async def test_a_client_metadata_document_replaces_registration(
        cimd_env: tuple[Env, str, dict[str, dict[str, Any]]]) -> None:
    env, base, documents = cimd_env
    url = base + "/agents/client.json"
    documents["/agents/client.json"] = {
        "client_id": url, "client_name": "Documented Agent", "redirect_uris": [CLIENT_REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "token_endpoint_auth_method": "none"}
    async with httpx.AsyncClient() as h:
        asm = (await h.get(env.issuer + "/.well-known/oauth-authorization-server")).json()
    assert asm["client_id_metadata_document_supported"] is True
    env.github.signed_in = "octocat"
    redirected: dict[str, str] = {}
    pages: list[str] = []

    async def redirect_handler(auth_url: str) -> None:
        assert dict(parse_qsl(urlsplit(auth_url).query))["client_id"] == url
        async with httpx.AsyncClient() as browser:
            page = await browse(browser, auth_url)
            pages.append(page.text)
            redirected.update(await consent(browser, env, page))

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirected["code"], state=redirected.get("state"))

    storage = MemoryTokens()
    auth = OAuthClientProvider(
        env.mcp_url, OAuthClientMetadata(client_name="Documented Agent", redirect_uris=[AnyUrl(CLIENT_REDIRECT)],
                                         token_endpoint_auth_method="none"),
        storage, redirect_handler, callback_handler, client_metadata_url=url)
    async with httpx2.AsyncClient(auth=auth) as hc, Client(streamable_http_client(env.mcp_url, http_client=hc)) as c:
        who = await c.call_tool("whoami", {})
    assert who.structured_content is not None and who.structured_content["tenant"] == "acme"
    assert "Documented Agent" in pages[0]
    async with env.store.pool.connection() as conn:
        n = await (await conn.execute("SELECT count(*) AS n FROM oauth_clients WHERE client_id = %s",
                                      (url,))).fetchone()
    assert n is not None and n["n"] == 1


@pytest.mark.parametrize("problem", ["wrong client_id", "confidential", "missing"])
async def test_an_unusable_client_metadata_document_is_an_unknown_client(
        cimd_env: tuple[Env, str, dict[str, dict[str, Any]]], problem: str) -> None:
    env, base, documents = cimd_env
    url = base + "/agents/bad.json"
    doc: dict[str, Any] = {"client_id": url, "redirect_uris": [CLIENT_REDIRECT], "token_endpoint_auth_method": "none"}
    if problem == "wrong client_id":
        doc["client_id"] = base + "/agents/other.json"
    elif problem == "confidential":
        doc["token_endpoint_auth_method"] = "client_secret_post"
    if problem != "missing":
        documents["/agents/bad.json"] = doc
    async with httpx.AsyncClient() as browser:
        r = await browser.get(authorize_url(env, {"client_id": url}, pkce()[1]))
    assert r.status_code == 400 and "location" not in r.headers
    assert r.json()["error"] == "invalid_request" and "client" in r.json()["error_description"].lower()


async def test_a_sign_in_github_refuses_or_the_user_cancels_ends_on_a_page_saying_so(env: Env) -> None:
    client = await register(env)
    async with httpx.AsyncClient() as browser:
        to_github = (await browser.get(authorize_url(env, client, pkce()[1]))).headers["location"]
        state = dict(parse_qsl(urlsplit(to_github).query))["state"]
        callback = env.issuer + "/oauth/github/callback"
        forged = await browser.get(callback, params={"state": state, "code": "not-a-github-code"})
        cancelled = await browser.get(callback, params={"state": state, "error": "access_denied"})
        unknown = await browser.get(callback, params={"state": "no-such-login", "code": "x"})
    assert forged.status_code == 502 and "bad_verification_code" in forged.text
    assert env.github.client_secret not in forged.text
    assert cancelled.status_code == 403 and "access_denied" in cancelled.text
    assert unknown.status_code == 400 and "expired" in unknown.text


@pytest.mark.parametrize("env", [2], indirect=True)
async def test_each_users_grant_has_its_own_rate_limit_though_they_share_a_client(env: Env) -> None:
    client = await register(env)
    code, verifier = await sign_in(env, client, "octocat")
    octocat = (await exchange(env, client, code, verifier)).json()["access_token"]
    code, verifier = await sign_in(env, client, "listed")
    listed = (await exchange(env, client, code, verifier)).json()["access_token"]

    async def calls(access_token: str, n: int) -> list[bool]:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {access_token}"}) as hc, \
                Client(streamable_http_client(env.mcp_url, http_client=hc)) as c:
            return [(await c.call_tool("whoami", {})).is_error for _ in range(n)]

    assert await calls(octocat, 3) == [False, False, True]  # 2 per minute
    assert await calls(listed, 2) == [False, False]  # the same client, another user: another budget
