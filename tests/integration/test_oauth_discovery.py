"""OAuth discovery as MCP Inspector's client does it, against the real server (uvicorn, real Postgres).

MCP Inspector 2.x signs in with the TypeScript SDK's client, `@modelcontextprotocol/client` (2.3.1 for Inspector
2.12.0), whose `auth()` (src/client/auth.ts) discovers in this order, each step mirrored below under its name:
the 401's `WWW-Authenticate` (`extractWWWAuthenticateParams`: Bearer scheme, `resource_metadata`), the
protected resource metadata at that URL (`discoverOAuthProtectedResourceMetadata`, header `MCP-Protocol-Version`;
without the header's URL, `/.well-known/oauth-protected-resource<path>` then the root one), the resource
checked against the server URL (`selectResourceURL` / `checkResourceAllowed`), then the authorization server
metadata from `authorization_servers[0]` (`buildDiscoveryUrls`: RFC 8414 first, then OpenID; the `issuer`
echoed exactly, trailing slash aside), then what `startAuthorization`, `registerClient` and
`assertSecureTokenEndpoint` refuse. The Inspector's web UI fetches these from a browser page, so CORS too.
Inspector's CLI runs the whole flow in test_oauth_browser.py; this one names which expectation breaks, when one
does, and covers the path the CLI does not take (the well-known fallback, the web UI's CORS)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import http_server, make_server, platform_config
from tests.support.serving import serving

PROTOCOL_VERSION = "2026-07-28"  # what the client sends as MCP-Protocol-Version on discovery requests
INSPECTOR_ORIGIN = "http://localhost:6274"  # the Inspector web UI's default origin


@dataclass
class Env:
    mcp_url: str
    issuer: str


@pytest.fixture
async def env(store: PgStore) -> AsyncIterator[Env]:
    port = free_port()
    # GitHub is never reached by discovery: the sign-in settings only need to be complete
    settings = load_settings(http={"port": port}, oauth={
        "enabled": True, "client_id": "Iv1.fake", "client_secret": "fake-secret"})
    server = http_server(settings, make_server(settings, ServerDeps(store=store, config=platform_config(settings)),
                                               "http"))
    async with serving(server):
        yield Env(settings.http.mcp_url(), f"http://127.0.0.1:{port}")


def www_authenticate_field(header: str, name: str) -> str | None:
    """auth.ts `extractFieldFromWwwAuth`, the same pattern."""
    m = re.search(name + r'=(?:"([^"]+)"|([^\s,]+))', header)
    return (m.group(1) or m.group(2)) if m else None


def resource_allowed(requested: str, configured: str) -> bool:
    """auth.ts `checkResourceAllowed`: same origin, and the configured path a prefix of the requested one."""
    r, c = urlsplit(requested), urlsplit(configured)
    if (r.scheme, r.netloc) != (c.scheme, c.netloc) or len(r.path or "/") < len(c.path or "/"):
        return False
    rp, cp = (p if p.endswith("/") else p + "/" for p in (r.path or "/", c.path or "/"))
    return rp.startswith(cp)


def discovery_urls(authorization_server: str) -> list[tuple[str, str]]:
    """auth.ts `buildDiscoveryUrls`, in its order."""
    u = urlsplit(authorization_server)
    origin, path = f"{u.scheme}://{u.netloc}", (u.path or "/").rstrip("/")
    if not path:
        return [(origin + "/.well-known/oauth-authorization-server", "oauth"),
                (origin + "/.well-known/openid-configuration", "oidc")]
    return [(f"{origin}/.well-known/oauth-authorization-server{path}", "oauth"),
            (f"{origin}/.well-known/openid-configuration{path}", "oidc"),
            (f"{origin}{path}/.well-known/openid-configuration", "oidc")]


def loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def discover_as_the_typescript_client(h: httpx.AsyncClient, mcp_url: str) -> tuple[dict[str, Any],
                                                                                         dict[str, Any]]:
    """The protected resource metadata and the authorization server metadata, found as `auth()` finds them;
    every check that would make it give up is an assertion with its error text."""
    # the first MCP request, unauthenticated: 401 with a Bearer challenge naming the metadata URL
    r = await h.post(mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "inspector", "version": "2"}}},
        headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 401, r.text
    header = r.headers["www-authenticate"]
    assert header.split(" ")[0].lower() == "bearer", header
    metadata_url = www_authenticate_field(header, "resource_metadata")
    assert metadata_url is not None, header
    # discoverOAuthProtectedResourceMetadata: 404 -> "Resource server does not implement ..."
    r = await h.get(metadata_url, headers={"MCP-Protocol-Version": PROTOCOL_VERSION})
    assert r.status_code == 200, (metadata_url, r.status_code)
    prm: dict[str, Any] = r.json()
    assert isinstance(prm.get("resource"), str)  # OAuthProtectedResourceMetadataSchema: resource required
    # selectResourceURL: "Protected resource ... does not match expected ..."
    assert resource_allowed(mcp_url, prm["resource"]), (mcp_url, prm["resource"])
    servers = prm.get("authorization_servers") or []
    # without one, auth() would fall back to the MCP server's origin as the authorization server
    assert servers, prm
    authorization_server = str(servers[0])
    # discoverAuthorizationServerMetadata: the first ok answer in buildDiscoveryUrls' order; < 500 skips on
    asm: dict[str, Any] | None = None
    for url, _kind in discovery_urls(authorization_server):
        r = await h.get(url, headers={"MCP-Protocol-Version": PROTOCOL_VERSION, "Accept": "application/json"})
        if r.is_success:
            asm = r.json()
            break
        assert r.status_code < 500 or r.status_code == 502, (url, r.status_code)
    assert asm is not None, f"no authorization server metadata at {discovery_urls(authorization_server)}"
    # IssuerMismatchError unless the issuer echoes authorization_servers[0] (a trailing slash aside)
    assert asm["issuer"] == authorization_server or (
        authorization_server.endswith("/") and asm["issuer"] == authorization_server[:-1]), \
        (asm["issuer"], authorization_server)
    return prm, asm


async def test_the_metadata_is_found_and_accepted_as_inspectors_sdk_client_finds_it(env: Env) -> None:
    async with httpx.AsyncClient() as h:
        prm, asm = await discover_as_the_typescript_client(h, env.mcp_url)
    assert prm["resource"] == env.mcp_url and prm["authorization_servers"] == [env.issuer]
    # OAuthMetadataSchema's required fields
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "response_types_supported"):
        assert key in asm, key
    # startAuthorization: "Incompatible auth server: does not support response type code / code challenge S256"
    assert "code" in asm["response_types_supported"]
    assert asm["code_challenge_methods_supported"] == ["S256"]
    # no static client and no https client metadata URL (Inspector on a laptop): registerClient, which needs
    # registration_endpoint ("Incompatible auth server: does not support dynamic client registration")
    assert asm["registration_endpoint"] == env.issuer + "/register"
    # it registers as a public client (PKCE, no secret): the metadata says the token endpoint takes that
    assert "none" in asm["token_endpoint_auth_methods_supported"]
    # assertSecureTokenEndpoint: https, or a loopback host
    token = urlsplit(asm["token_endpoint"])
    assert token.scheme == "https" or loopback(token.hostname or ""), asm["token_endpoint"]
    # validateAuthorizationResponseIssuer: advertising RFC 9207's iss makes the client require `iss` on the
    # redirect, which the consent's redirect does not carry (test_oauth_browser sees only code and state)
    assert asm.get("authorization_response_iss_parameter_supported") is not True
    # the refresh and revocation auth() uses later
    assert "refresh_token" in asm["grant_types_supported"]
    assert asm["revocation_endpoint"] == env.issuer + "/revoke"


async def test_without_the_header_the_clients_well_known_fallback_finds_the_same_metadata(env: Env) -> None:
    """discoverMetadataWithFallback: `/.well-known/oauth-protected-resource<path of the MCP URL>` first."""
    path = urlsplit(env.mcp_url).path
    async with httpx.AsyncClient() as h:
        r = await h.get(f"{env.issuer}/.well-known/oauth-protected-resource{path}",
                        headers={"MCP-Protocol-Version": PROTOCOL_VERSION})
        _, asm = await discover_as_the_typescript_client(h, env.mcp_url)
    assert r.status_code == 200 and r.json()["resource"] == env.mcp_url
    assert r.json()["authorization_servers"] == [asm["issuer"]]


async def test_the_metadata_answers_a_browser_page_of_another_origin(env: Env) -> None:
    """The Inspector web UI's page fetches the metadata itself (CORS), sending MCP-Protocol-Version, which
    makes the browser ask first (preflight)."""
    async with httpx.AsyncClient() as h:
        prm_url = f"{env.issuer}/.well-known/oauth-protected-resource{urlsplit(env.mcp_url).path}"
        for url in (prm_url, env.issuer + "/.well-known/oauth-authorization-server"):
            pre = await h.options(url, headers={"Origin": INSPECTOR_ORIGIN, "Access-Control-Request-Method": "GET",
                                                "Access-Control-Request-Headers": "mcp-protocol-version"})
            assert pre.status_code in (200, 204), (url, pre.status_code, pre.text)
            assert pre.headers.get("access-control-allow-origin") in ("*", INSPECTOR_ORIGIN), (url, pre.headers)
            allowed = pre.headers.get("access-control-allow-headers", "").lower()
            assert allowed == "*" or "mcp-protocol-version" in allowed, (url, allowed)
            got = await h.get(url, headers={"Origin": INSPECTOR_ORIGIN, "MCP-Protocol-Version": PROTOCOL_VERSION})
            assert got.status_code == 200
            assert got.headers.get("access-control-allow-origin") in ("*", INSPECTOR_ORIGIN), (url, got.headers)
